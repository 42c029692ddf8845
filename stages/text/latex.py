"""LaTeX source to training text: the cleaning NeMo Curator applies to arXiv papers.

The semantics follow NeMo Curator's arXiv extractor (`nemo_curator/stages/text/download/
arxiv/extract.py`, itself taken from RedPajama's arXiv preparation): the text stays LaTeX
(sections stay `\\section{...}` headings, math stays math), comments are removed, the
preamble goes, the bibliography and appendix go (everything from the first `\\appendix`,
`\\bibliography{...}`, `\\begin{thebibliography}` or `\\begin{references}`), and macros the
authors defined are expanded so that papers by different authors read alike.

Where this goes further than NeMo Curator, it says so:

- `\\input` / `\\include` are resolved against the paper's files (NeMo concatenates every
  `.tex` file, each cut on its own, so a section kept in its own file without a heading is
  lost there);
- macro definitions are parsed with balanced braces (NeMo matches a definition ending its
  line) and removed from the text; macros *with arguments* are expanded too (NeMo leaves
  them as a TODO), including an optional first argument with a default;
- a `%` preceded by an escaped backslash (`\\\\%`) starts a comment, `\\%` does not (NeMo's
  pattern also eats the character before an inline comment); `comment` environments go;
- `\\printbibliography` (biblatex) ends the text like `\\bibliography{...}`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

_LINE_COMMENT = re.compile(r"^[ \t]*%.*(?:\n|$)", re.MULTILINE)
_INLINE_COMMENT = re.compile(r"(^|[^\\])((?:\\\\)*)%.*$", re.MULTILINE)
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.DOTALL)
_CONTROL = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_INPUT = re.compile(r"\\(input|include|subfile)\b\s*(?:\{([^{}]*)\}|([^\s{}\\%]+))")
_DOCUMENT_CLASS = re.compile(r"\\document(?:class|style)\b")
_BEGIN_DOCUMENT = re.compile(r"\\begin\s*\{document\}")
_END_DOCUMENT = re.compile(r"\\end\s*\{document\}")
_BACK_MATTER = re.compile(
    r"\\appendix\b|\\begin\{references\}|\\begin\{REFERENCES\}|\\begin\{thebibliography\}"
    r"|\\bibliography\{[^}]*\}|\\printbibliography\b"
)
_SECTION = re.compile(r"\\(?:chapter|part|section|subsection|subsubsection|paragraph)\b\*?\s*[\[{]")
# Commands the cleaning itself relies on: a redefinition of these changes their look in
# the PDF, never what they are, so they are not expanded.
_STRUCTURE = {
    "part", "chapter", "section", "subsection", "subsubsection", "paragraph",
    "subparagraph", "appendix", "begin", "end", "input", "include", "subfile",
    "bibliography", "printbibliography", "documentclass", "item",
}  # fmt: skip
_DEFINERS = {"newcommand", "renewcommand", "providecommand", "def", "gdef", "edef", "xdef"}
_NAME = re.compile(r"\\([A-Za-z]+)")
_PARAMS = re.compile(r"(?:#[1-9])*")
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")

MAX_INPUT_DEPTH = 16  # \input nesting followed, deeper is left as written
MAX_EXPANSION_PASSES = 10  # macros defined by other macros expand this deep
MAX_GROWTH = 4  # expansion stops when the text grows past this many times its size


@dataclass(frozen=True)
class Macro:
    """A macro an author defined: `\\name` takes `arguments` (the first optional, with
    `default`, when `default` is not None) and becomes `body` with `#k` substituted.
    `expandable` is False for definitions this module cannot or should not expand
    (delimited `\\def` parameters, bodies of LaTeX internals with `@`, redefinitions of
    sectioning and other structural commands): they are removed, and their uses are left
    as written."""

    name: str
    arguments: int
    body: str
    default: str | None = None
    expandable: bool = True


def strip_comments(tex: str) -> str:
    """`tex` without comments: lines holding only a comment go whole, a comment after
    text goes up to the end of its line (the newline stays), and so do `comment`
    environments. `\\%` is a percent sign, not a comment."""
    tex = _LINE_COMMENT.sub("", tex)
    tex = _INLINE_COMMENT.sub(r"\1\2", tex)
    return _COMMENT_ENV.sub("", tex)


def is_main_file(tex: str) -> bool:
    """Whether a file (comments removed) is a document's root: it has `\\documentclass`
    (or LaTeX 2.09's `\\documentstyle`)."""
    return _DOCUMENT_CLASS.search(tex) is not None


def input_targets(tex: str) -> list[str]:
    """The files a source names with `\\input`, `\\include` or `\\subfile`, in order."""
    return [m.group(2) if m.group(2) is not None else m.group(3) for m in _INPUT.finditer(tex)]


def inline_inputs(
    tex: str, load: Callable[[str, str], tuple[str, str] | None], path: str = ""
) -> tuple[str, list[str]]:
    """`tex` (the file at `path` in the paper) with each `\\input{x}` / `\\include{x}` /
    `\\subfile{x}` replaced by the file it names, recursively, and the files inlined in
    order.

    `load(name, here)` finds a file named in the source from the folder `here` of the file
    naming it: `(path, text with comments removed)`, or None when the paper has no such
    file (the command is then left as written). A file that includes itself, directly or
    not, or nesting deeper than `MAX_INPUT_DEPTH`, is left as written.
    """
    used: list[str] = []

    def inline(text: str, folder: str, stack: tuple[str, ...]) -> str:
        def replace(match: re.Match) -> str:
            name = (match.group(2) if match.group(2) is not None else match.group(3)).strip()
            found = load(name, folder) if name else None
            if found is None or found[0] in stack or len(stack) >= MAX_INPUT_DEPTH:
                return match.group(0)
            path, body = found
            used.append(path)
            return inline(body, posixpath.dirname(path), (*stack, path))

        return _INPUT.sub(replace, text)

    return inline(tex, posixpath.dirname(path), (path,) if path else ()), used


def document_body(tex: str) -> str:
    """What lies between `\\begin{document}` and `\\end{document}` (to the end when there
    is no `\\end{document}`). Without `\\begin{document}`, a file meant to be included
    (no `\\documentclass`) is all body, a main file has none."""
    begin = _BEGIN_DOCUMENT.search(tex)
    if begin is not None:
        tex = tex[begin.end() :]
    elif is_main_file(tex):
        return ""
    end = _END_DOCUMENT.search(tex)
    return tex[: end.start()] if end is not None else tex


def from_first_section(tex: str) -> str:
    """`tex` from its first `\\chapter`, `\\part`, `\\section`, `\\subsection`,
    `\\subsubsection` or `\\paragraph` on, as NeMo Curator cuts a paper (title and abstract
    go); empty when there is none."""
    match = _SECTION.search(tex)
    return tex[match.start() :] if match is not None else ""


def without_back_matter(tex: str) -> str:
    """`tex` up to the first `\\appendix`, `\\bibliography{...}`, `\\printbibliography`,
    `\\begin{thebibliography}` or `\\begin{references}` (NeMo Curator's cut)."""
    match = _BACK_MATTER.search(tex)
    return tex[: match.start()] if match is not None else tex


def tidy_blank_lines(tex: str) -> str:
    """Runs of blank lines as one, and no blank lines at either end."""
    return _BLANK_RUNS.sub("\n\n", tex).strip()


def macro_definitions(tex: str) -> tuple[dict[str, Macro], str]:
    """The macros `tex` defines with `\\newcommand`, `\\renewcommand`, `\\providecommand`
    (starred or not) and `\\def` / `\\gdef` / `\\edef` / `\\xdef`, by name (a later
    definition wins, as in TeX), and `tex` without those definitions."""
    macros: dict[str, Macro] = {}
    out: list[str] = []
    at = 0
    for match in _CONTROL.finditer(tex):
        if match.start() < at or match.group(1) not in _DEFINERS:
            continue
        parsed = _definition(tex, match.end(), match.group(1))
        if parsed is None:
            continue
        macro, end = parsed
        macros[macro.name] = macro
        out.append(tex[at : match.start()])
        at = end
    out.append(tex[at:])
    return macros, "".join(out)


def expand_macros(tex: str, macros: dict[str, Macro]) -> str:
    """`tex` with every use of an expandable macro replaced by its body, arguments
    substituted. An argument is a brace group or, as in TeX, a single control word or
    character; an empty `{}` right after a macro without arguments goes with it. Macros
    that use macros expand in further passes, up to `MAX_EXPANSION_PASSES`; a macro that
    uses itself (directly or not) is not expanded, and expansion stops before the text
    grows `MAX_GROWTH` times."""
    usable = {name: m for name, m in macros.items() if m.expandable}
    for name in _recursive(usable):
        del usable[name]
    if not usable:
        return tex
    limit = MAX_GROWTH * len(tex) + (1 << 16)
    for _ in range(MAX_EXPANSION_PASSES):
        expanded, changed = _expand_once(tex, usable)
        if not changed or len(expanded) > limit:
            return expanded if len(expanded) <= limit else tex
        tex = expanded
    return tex


def _recursive(macros: dict[str, Macro]) -> set[str]:
    """The macros that use themselves, directly or through others: TeX would expand them
    forever, so they are left as written."""
    uses = {
        name: {m.group(1) for m in _NAME.finditer(macro.body)} & macros.keys()
        for name, macro in macros.items()
    }
    found = set()
    for name in macros:
        seen: set[str] = set()
        todo = list(uses[name])
        while todo:
            other = todo.pop()
            if other == name:
                found.add(name)
                break
            if other not in seen:
                seen.add(other)
                todo.extend(uses[other])
    return found


def _expand_once(tex: str, macros: dict[str, Macro]) -> tuple[str, bool]:
    out: list[str] = []
    at = 0
    changed = False
    for match in _CONTROL.finditer(tex):
        if match.start() < at:
            continue
        macro = macros.get(match.group(1))
        if macro is None:
            continue
        used = _apply(tex, match.end(), macro)
        if used is None:
            continue
        text, end = used
        out.append(tex[at : match.start()])
        out.append(text)
        at = end
        changed = True
    out.append(tex[at:])
    return "".join(out), changed


def _apply(tex: str, pos: int, macro: Macro) -> tuple[str, int] | None:
    """The expansion of `macro` used at `pos` (just after its name) and where its use
    ends; None when its arguments are missing."""
    if macro.arguments == 0:
        if tex.startswith("{}", pos):
            pos += 2
        return macro.body, pos
    args: list[str] = []
    count = macro.arguments
    if macro.default is not None:
        j = _skip_spaces(tex, pos)
        if tex.startswith("[", j):
            found = _bracketed(tex, j)
            if found is None:
                return None
            value, pos = found
        else:
            value = macro.default
        args.append(value)
        count -= 1
    for _ in range(count):
        found = _argument(tex, pos)
        if found is None:
            return None
        value, pos = found
        args.append(value)
    return _substitute(macro.body, args), pos


def _substitute(body: str, args: list[str]) -> str:
    def value(match: re.Match) -> str:
        token = match.group(0)
        if token == "##":
            return "#"
        k = int(token[1]) - 1
        return args[k] if k < len(args) else token

    return re.sub(r"##|#[1-9]", value, body)


def _definition(tex: str, pos: int, definer: str) -> tuple[Macro, int] | None:
    """The macro defined by the `\\<definer>` whose name ends at `pos`, and where the
    definition ends; None when it does not parse."""
    if definer in ("newcommand", "renewcommand", "providecommand"):
        if tex.startswith("*", pos):
            pos += 1
        pos = _skip_spaces(tex, pos)
        if tex.startswith("{", pos):
            found = _group(tex, pos)
            if found is None:
                return None
            name, pos = found
            name = name.strip()
        else:
            match = _CONTROL.match(tex, pos)
            if match is None:
                return None
            name, pos = match.group(0), match.end()
        if not re.fullmatch(r"\\[A-Za-z]+", name):
            return None
        arguments, default = 0, None
        j = _skip_spaces(tex, pos)
        if tex.startswith("[", j):
            found = _bracketed(tex, j)
            if found is None or not found[0].strip().isdigit():
                return None
            arguments, pos = int(found[0]), found[1]
            j = _skip_spaces(tex, pos)
            if tex.startswith("[", j):
                found = _bracketed(tex, j)
                if found is None:
                    return None
                default, pos = found
        pos = _skip_spaces(tex, pos)
        found = _group(tex, pos)
        if found is None or arguments > 9:
            return None
        body, end = found
        return Macro(name[1:], arguments, body, default, _expandable(name[1:], body)), end
    pos = _skip_spaces(tex, pos)
    match = _NAME.match(tex, pos)
    if match is None:
        return None
    brace = tex.find("{", match.end())
    if brace < 0:
        return None
    params = tex[match.end() : brace]
    found = _group(tex, brace)
    if found is None:
        return None
    body, end = found
    simple = _PARAMS.fullmatch(params.strip()) is not None
    numbered = [int(p) for p in re.findall(r"#([1-9])", params)]
    expandable = simple and numbered == list(range(1, len(numbered) + 1))
    expandable = expandable and _expandable(match.group(1), body)
    return Macro(match.group(1), len(numbered), body, None, expandable), end


def _expandable(name: str, body: str) -> bool:
    return name not in _STRUCTURE and "@" not in body


def _argument(tex: str, pos: int) -> tuple[str, int] | None:
    """One undelimited TeX argument at `pos` (spaces before it skipped): a brace group's
    content, a control sequence, or a character."""
    pos = _skip_spaces(tex, pos)
    if pos >= len(tex) or tex[pos] in "}]":
        return None
    if tex[pos] == "{":
        return _group(tex, pos)
    if tex[pos] == "\\":
        match = _CONTROL.match(tex, pos)
        if match is None:
            return None
        return match.group(0), match.end()
    return tex[pos], pos + 1


def _group(tex: str, pos: int) -> tuple[str, int] | None:
    """The content of the brace group opening at `pos` and the position after it; None
    when `pos` opens none or it never closes (escaped braces do not count)."""
    if not tex.startswith("{", pos):
        return None
    depth = 0
    i = pos
    n = len(tex)
    while i < n:
        c = tex[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return tex[pos + 1 : i], i + 1
        i += 1
    return None


def _bracketed(tex: str, pos: int) -> tuple[str, int] | None:
    """The content of the `[...]` opening at `pos` (brackets inside braces do not close
    it) and the position after it."""
    depth = 0
    i = pos + 1
    n = len(tex)
    while i < n:
        c = tex[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "]" and depth == 0:
            return tex[pos + 1 : i], i + 1
        i += 1
    return None


def _skip_spaces(tex: str, pos: int) -> int:
    """`pos` past spaces, tabs and at most one newline (a blank line ends an argument
    list in TeX)."""
    n = len(tex)
    newline = False
    while pos < n and tex[pos] in " \t\n":
        if tex[pos] == "\n":
            if newline:
                break
            newline = True
        pos += 1
    return pos
