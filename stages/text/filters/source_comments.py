"""The comments of a source file, by MIME type, and the natural text of Python source.

`extract_comments(source, mime)` returns the text of each comment (without its markers:
`//`, `/* */`, `#`, `<!-- -->`) in order. The rules per language are those of the
`comment_parser` package (1.2.x), which NeMo Curator's `GeneralCommentToCodeFilter`
calls; they are written again here so that the package is not needed:

- C, C++, Java (`text/x-c`, `text/x-c++`, `text/x-java`, `text/x-java-source`): `//` to
  the end of the line and `/* ... */`, outside double-quoted strings (a string does not
  span lines and has no escapes);
- JavaScript (`application/javascript`, `text/x-javascript`) and Go (`text/x-go`): the
  same comments, read character by character outside `'...'` and `"..."` strings (Go also
  `` `...` ``), with backslash escapes inside strings;
- Python (`text/x-python`, `text/x-script.python`): `#` comments as Python's tokenizer
  finds them;
- Ruby (`text/x-ruby`): `#` to the end of the line, outside quoted strings;
- shell (`text/x-shellscript`): `#` to the end of the line, outside quotes and not escaped;
- HTML and XML (`text/html`, `text/xml`): `<!-- ... -->`.

An unterminated `/*` or `<!--` raises `CommentSyntaxError`, and so does Python source the
tokenizer rejects.

`python_natural_text_length(source)` is what NeMo Curator's `PythonCommentToCodeFilter`
measures: the docstrings of the module, classes and functions (`ast.get_docstring`,
joined with newlines) and the comments (`#` included), or None when the source does not
parse.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from collections.abc import Callable


class CommentSyntaxError(ValueError):
    """The source cannot be read for comments (an unterminated comment, bad Python)."""


_C_FAMILY = re.compile(
    r'(?P<string>(?:"[^"\n]*")+)'
    r"|//(?P<line>.*)$"
    r"|/\*(?P<block>(?:.|\n)*?)\*/"
    r"|(?P<open>/\*)",
    re.MULTILINE,
)
_HTML = re.compile(
    r'(?P<string>(?:"[^"\n]*")+)'
    r"|<!--(?P<line>.*?)-->"
    r"|<!--(?P<block>(?:.|\n)*?)-->"
    r"|(?P<open><!--)",
    re.MULTILINE,
)
_RUBY = re.compile(
    r"(?P<string>([\"'])(?:\\\2|(?!\2).)*\2)"
    r"|\#(?P<line>.*?)$",
    re.MULTILINE,
)


def _regex_comments(pattern: re.Pattern, source: str) -> list[str]:
    comments = []
    for match in pattern.finditer(source):
        kind = match.lastgroup
        if kind in ("line", "block"):
            comments.append(match.group(kind))
        elif kind == "open":
            raise CommentSyntaxError("unterminated comment")
    return comments


def _c_family(source: str) -> list[str]:
    return _regex_comments(_C_FAMILY, source)


def _html(source: str) -> list[str]:
    return _regex_comments(_HTML, source)


def _ruby(source: str) -> list[str]:
    comments = []
    for match in _RUBY.finditer(source):
        if match.group("line") is not None:
            comments.append(match.group("line"))
    return comments


def _slash_comments(source: str, quotes: str) -> list[str]:
    """`//` and `/* */` comments outside strings quoted with any of `quotes`."""
    comments: list[str] = []
    state = "code"
    current: list[str] = []
    quote = ""
    for ch in source:
        if state == "code":
            if ch == "/":
                state = "slash"
            elif ch in quotes:
                quote, state = ch, "string"
        elif state == "slash":
            # The character after a lone '/' is not looked at again (a quote there does
            # not open a string), as in comment_parser.
            state = {"/": "line", "*": "block"}.get(ch, "code")
        elif state == "line":
            if ch == "\n":
                comments.append("".join(current))
                current, state = [], "code"
            else:
                current.append(ch)
        elif state == "block":
            if ch == "*":
                state = "star"
            else:
                current.append(ch)
        elif state == "star":
            if ch == "/":
                comments.append("".join(current))
                current, state = [], "code"
            elif ch == "*":
                current.append("*")
            else:
                current.extend(("*", ch))
                state = "block"
        elif state == "string":
            if ch == quote:
                state = "code"
            elif ch == "\\":
                state = "escape"
        elif state == "escape":
            state = "string"
    if state in ("block", "star"):
        raise CommentSyntaxError("unterminated /* comment")
    if state == "line":
        comments.append("".join(current))
    return comments


def _javascript(source: str) -> list[str]:
    return _slash_comments(source, "'\"")


def _go(source: str) -> list[str]:
    return _slash_comments(source, "'\"`")


def _shell(source: str) -> list[str]:
    comments: list[str] = []
    state = "code"
    current: list[str] = []
    quote = ""
    for ch in source:
        if state == "code":
            if ch == "#":
                state = "comment"
            elif ch in "'\"":
                quote, state = ch, "string"
            elif ch == "\\":
                state = "escape"
        elif state == "comment":
            if ch == "\n":
                comments.append("".join(current))
                current, state = [], "code"
            else:
                current.append(ch)
        elif state == "string":
            if ch == quote:
                state = "code"
            elif ch == "\\":
                state = "string_escape"
        elif state == "string_escape":
            state = "string"
        elif state == "escape":
            state = "code"
    if state == "comment":
        comments.append("".join(current))
    return comments


def _python(source: str) -> list[str]:
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source.encode()).readline))
    except (tokenize.TokenError, SyntaxError, UnicodeError) as error:
        raise CommentSyntaxError(f"Python tokenizer: {error}") from error
    return [tok.string[1:] for tok in tokens if tok.type == tokenize.COMMENT]


PARSERS: dict[str, Callable[[str], list[str]]] = {
    "application/javascript": _javascript,
    "text/html": _html,
    "text/x-c": _c_family,
    "text/x-c++": _c_family,
    "text/x-go": _go,
    "text/x-java": _c_family,
    "text/x-java-source": _c_family,
    "text/x-javascript": _javascript,
    "text/x-python": _python,
    "text/x-ruby": _ruby,
    "text/x-script.python": _python,
    "text/x-shellscript": _shell,
    "text/xml": _html,
}


def extract_comments(source: str, mime: str) -> list[str]:
    """The text of each comment of `source`, in order (see the module docstring)."""
    parser = PARSERS.get(mime)
    if parser is None:
        raise ValueError(f"unsupported MIME type {mime!r}; supported: {sorted(PARSERS)}")
    return parser(source)


# --- Python: docstrings and comments -------------------------------------------------

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef)  # not async functions, as NeMo


def python_natural_text_length(source: str) -> int | None:
    """Characters of natural text in Python `source`: its docstrings (cleaned by
    `ast.get_docstring`, the non-empty ones joined with newlines) plus its comments (each
    with its `#`). None when the source does not parse or does not tokenize."""
    try:
        with warnings.catch_warnings():  # invalid escapes in the file are not our concern
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
        docstrings = [
            ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, _DOCUMENTED)
        ]
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return None
    docstrings = [d for d in docstrings if d]
    docstring_chars = sum(map(len, docstrings)) + max(len(docstrings) - 1, 0)
    try:
        comment_chars = sum(
            len(tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        )
    except (tokenize.TokenError, SyntaxError):
        return None
    return docstring_chars + comment_chars
