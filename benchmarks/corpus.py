"""Real, openly licensed prose that every Debian + CPython machine already has, split into
paragraph-sized documents, plus seeded junk to exercise filters.

Sources, walked in sorted order so the output is the same on every run:

- `python-stdlib:` docstrings of the CPython standard library (modules, classes,
  functions; PSF licence) and the language reference topics shipped in
  `pydoc_data/topics.py`. Found through `sysconfig`, parsed with `ast` (nothing imported).
- `python-site:` docstrings of the installed third-party packages (`sysconfig`'s
  `purelib`), each under its own open-source licence (see the package's dist-info).
- `vim-help:` Vim's help files (Vim licence, GPL-compatible), when Vim is installed.
- `debian-license:` the licence texts in `/usr/share/common-licenses`.
- `debian-doc:` README, NEWS, FAQ, changelog and copyright files of installed Debian
  packages.

Documents are built from blocks (paragraphs, docstrings): consecutive blocks of one file
are merged until a document reaches `target_words`, a heading closes a document that has
at least `min_words`, a block longer than `max_words` is cut at line boundaries, and a short
tail joins the document before it. Exact repeats (the same licence text in many packages)
are yielded once.
"""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import os
import random
import re
import struct
import sysconfig
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SHARE_DIR = "/usr/share"
MIN_WORDS = 50
TARGET_WORDS = 100
MAX_WORDS = 2000

_BLANK_LINES = re.compile(r"\n[ \t]*\n")
# Vim help sections start after a line of '=' or '-'; Markdown/reST after '#' or underlines.
_HEADING = re.compile(r"^(?:={5,}|-{5,}|#{1,6} |\*[\w.-]+\*\s)", re.MULTILINE)


# --- splitting -------------------------------------------------------------------------


def _cut_long(block: str, max_words: int) -> list[str]:
    """`block` cut at line boundaries into pieces of at most `max_words` words."""
    pieces, current, words = [], [], 0
    for line in block.splitlines():
        n = len(line.split())
        if current and words + n > max_words:
            pieces.append("\n".join(current))
            current, words = [], 0
        current.append(line)
        words += n
    if current:
        pieces.append("\n".join(current))
    return pieces


def split_sections(
    blocks: Iterable[tuple[str, bool]],
    min_words: int = MIN_WORDS,
    target_words: int = TARGET_WORDS,
    max_words: int = MAX_WORDS,
) -> list[str]:
    """Merge `(block, starts_section)` pairs of one file into documents (see module doc)."""
    docs: list[str] = []
    current: list[str] = []
    words = 0

    def flush() -> None:
        nonlocal current, words
        if current:
            docs.append("\n\n".join(current))
        current, words = [], 0

    for block, starts_section in blocks:
        block = block.strip("\n").rstrip()
        if not block.strip():
            continue
        if starts_section and words >= min_words:
            flush()
        for piece in _cut_long(block, max_words):
            n = len(piece.split())
            if current and words + n > max_words:
                flush()
            current.append(piece)
            words += n
            if words >= target_words:
                flush()
    if current:
        if words < min_words and docs and len(docs[-1].split()) + words <= max_words:
            docs[-1] = docs[-1] + "\n\n" + "\n\n".join(current)
        else:
            flush()
    return docs


def _paragraph_blocks(text: str) -> list[tuple[str, bool]]:
    """Blocks of a plain-text file: paragraphs, flagged when they open a section."""
    text = text.replace("\r\n", "\n").replace("\x0c", "\n")
    return [(b, bool(_HEADING.match(b.lstrip("\n")))) for b in _BLANK_LINES.split(text)]


# --- sources ---------------------------------------------------------------------------


def _docstring_blocks(path: str) -> list[tuple[str, bool]]:
    """Docstrings of one Python file (and the topic texts of pydoc_data/topics.py)."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (SyntaxError, ValueError, OSError, RecursionError):
        return []
    blocks: list[tuple[str, bool]] = []
    if path.endswith(os.path.join("pydoc_data", "topics.py")):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if len(node.value) > 200:
                    blocks.extend(_paragraph_blocks(node.value))
        return blocks

    def visit(node: ast.AST, prefix: str) -> None:
        doc = ast.get_docstring(node)  # type: ignore[arg-type]
        if doc and len(doc.split()) >= 3:
            heading = prefix or Path(path).stem
            paragraphs = _BLANK_LINES.split(doc)
            blocks.append((f"{heading}\n\n{paragraphs[0]}", True))
            blocks.extend((p, False) for p in paragraphs[1:])
        for child in getattr(node, "body", []):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, f"{prefix}.{child.name}" if prefix else child.name)

    visit(tree, "")
    return blocks


_SKIP_DIRS = ("__pycache__", "test", "tests", "testing", "site-packages", "dist-packages")
_MAX_PY_BYTES = 1_000_000  # generated tables, not prose; slow to parse


def _python_files(root: str) -> list[str]:
    """Python files under `root` except tests (few docstrings, a quarter of the bytes)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if (
                name.endswith(".py")
                and not name.startswith("test_")
                and os.path.getsize(path) <= _MAX_PY_BYTES
            ):
                files.append(path)
    return sorted(files)


def _python_sources(
    workers: int, site_packages: bool
) -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    paths = sysconfig.get_paths()
    stdlib = paths["stdlib"]
    site = paths["purelib"]
    jobs: list[tuple[str, str]] = []
    for path in _python_files(stdlib):
        jobs.append((f"python-stdlib:{os.path.relpath(path, stdlib)}", path))
    if site_packages and os.path.isdir(site) and os.path.realpath(site) != os.path.realpath(stdlib):
        for path in _python_files(site):
            jobs.append((f"python-site:{os.path.relpath(path, site)}", path))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_docstring_blocks, [p for _, p in jobs], chunksize=64)
            for (source, _), blocks in zip(jobs, results, strict=True):
                yield source, blocks
    else:
        for source, path in jobs:
            yield source, _docstring_blocks(path)


def _read_text(path: str) -> str | None:
    try:
        data = Path(path).read_bytes()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def _text_sources(share_dir: str) -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    vim_docs = sorted(glob.glob(os.path.join(share_dir, "vim", "vim*", "doc", "*.txt")))
    licenses = sorted(glob.glob(os.path.join(share_dir, "common-licenses", "*")))
    debian_docs = sorted(
        path
        for pattern in ("README*", "NEWS*", "FAQ*", "copyright", "changelog*")
        for path in glob.glob(os.path.join(share_dir, "doc", "*", pattern))
        if os.path.isfile(path) and not path.endswith((".html", ".htm"))
    )
    for prefix, base, files in (
        ("vim-help", os.path.join(share_dir, "vim"), vim_docs),
        ("debian-license", os.path.join(share_dir, "common-licenses"), licenses),
        ("debian-doc", os.path.join(share_dir, "doc"), debian_docs),
    ):
        for path in files:
            text = _read_text(path)
            if text:
                name = os.path.relpath(path, base)
                if prefix == "vim-help":
                    name = os.path.basename(path)
                yield f"{prefix}:{name.removesuffix('.gz')}", _paragraph_blocks(text)


def documentation_sections(
    limit: int | None = None,
    *,
    share_dir: str = SHARE_DIR,
    workers: int | None = None,
    site_packages: bool = True,
) -> Iterator[dict]:
    """Yield `{"id", "text", "source"}` documents from the sources in the module doc.

    Deterministic: the same machine gives the same documents in the same order. `limit`
    stops after that many documents; `workers` processes parse Python files (default: the
    CPU count, at most 4); `site_packages=False` leaves out the third-party docstrings.
    """
    if limit is not None and limit <= 0:
        return
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    seen: set[bytes] = set()
    count = 0

    def files() -> Iterator[tuple[str, list[tuple[str, bool]]]]:
        yield from _python_sources(workers, site_packages)
        yield from _text_sources(share_dir)

    for source, blocks in files():
        for n, text in enumerate(split_sections(blocks)):
            key = hashlib.md5(" ".join(text.split()).encode()).digest()
            if key in seen:
                continue
            seen.add(key)
            yield {"id": f"{source}#{n}", "text": text, "source": source}
            count += 1
            if limit is not None and count >= limit:
                return


# --- junk ------------------------------------------------------------------------------

_BOILERPLATE = [
    "Home",
    "About us",
    "Contact",
    "Privacy policy",
    "Cookie policy",
    "Terms of use",
    "Sitemap",
    "Login",
    "Register",
    "Share on Facebook",
    "Share on Twitter",
    "Subscribe",
    "Click here to read more",
    "All rights reserved",
    "Accept cookies",
    "Newsletter",
    "Back to top",
    "Next page",
    "Previous page",
    "Skip to content",
    "Search",
]
_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat"
).split()
_SYMBOLS = "!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~§±©®™°•¤"
_DOMAINS = ["example.com", "example.org", "example.net", "shop.example", "cdn.example.io"]
# Used only when no translated messages are installed (see `_translated_paragraphs`).
_FALLBACK_FOREIGN = {
    "de": [
        "Die Datei konnte nicht geöffnet werden, weil sie von einem anderen Programm "
        "verwendet wird. Bitte schließen Sie das Programm und versuchen Sie es erneut.",
        "Der Zug nach München fährt heute wegen Bauarbeiten eine Stunde später ab. "
        "Wir bitten alle Reisenden um Verständnis für die Verspätung.",
    ],
    "fr": [
        "Le fichier n'a pas pu être ouvert parce qu'il est utilisé par un autre "
        "programme. Veuillez fermer ce programme et réessayer plus tard.",
        "La bibliothèque municipale sera fermée pendant les vacances d'été, mais les "
        "livres empruntés peuvent être rendus dans la boîte prévue à cet effet.",
    ],
    "es": [
        "No se pudo abrir el archivo porque otro programa lo está usando. Cierre ese "
        "programa y vuelva a intentarlo dentro de unos minutos.",
        "El mercado del barrio abre todos los sábados por la mañana y ofrece frutas, "
        "verduras y pan recién hecho de los productores de la región.",
    ],
}


def _mo_messages(path: str) -> list[str]:
    """Translated strings of a gettext .mo file (format from the GNU gettext manual)."""
    try:
        data = Path(path).read_bytes()
        magic = struct.unpack("<I", data[:4])[0]
        order = "<" if magic == 0x950412DE else ">"
        count, _, trans_offset = struct.unpack(order + "3I", data[8:20])
        out = []
        for i in range(count):
            length, offset = struct.unpack(order + "2I", data[trans_offset + 8 * i :][:8])
            out.append(data[offset : offset + length].decode("utf-8"))
        return out
    except (OSError, struct.error, UnicodeDecodeError):
        return []


def _is_sentence(message: str) -> bool:
    """True for a long translated message that reads as prose, not an option list."""
    if not 120 <= len(message) <= 1200 or "--" in message or "%" in message:
        return False
    if not message[0].isupper() or not message.rstrip().endswith("."):
        return False
    letters = sum(c.isalpha() or c.isspace() for c in message)
    return letters / len(message) > 0.9


def _translated_paragraphs(lang: str, share_dir: str) -> list[str]:
    """Long translated messages (GPL/LGPL programs' .mo catalogues), or built-in ones."""
    paragraphs = []
    for path in sorted(glob.glob(os.path.join(share_dir, "locale", lang, "LC_MESSAGES", "*.mo"))):
        for message in _mo_messages(path):
            message = message.split("\x00")[0].strip()
            if _is_sentence(message):
                paragraphs.append(" ".join(message.split()))
    return sorted(set(paragraphs)) or _FALLBACK_FOREIGN[lang]


def junk_documents(n: int, seed: int = 0, *, share_dir: str = SHARE_DIR) -> list[dict]:
    """`n` seeded junk documents (`source` = `junk:<kind>`): menus and boilerplate, lorem
    ipsum, symbol soup, URL lists, repeated lines, tiny fragments and German, French or
    Spanish paragraphs (`junk:non-english-de` / `-fr` / `-es`). The same `n` and
    `seed` give the same documents."""
    rng = random.Random(seed)
    foreign = {lang: _translated_paragraphs(lang, share_dir) for lang in ("de", "fr", "es")}

    def boilerplate() -> str:
        return "\n".join(rng.choice(_BOILERPLATE) for _ in range(rng.randint(8, 30)))

    def lorem() -> str:
        sentences = []
        for _ in range(rng.randint(3, 12)):
            words = [rng.choice(_LOREM) for _ in range(rng.randint(6, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        return " ".join(sentences)

    def symbols() -> str:
        return "".join(rng.choice(_SYMBOLS + "     ") for _ in range(rng.randint(80, 600)))

    def urls() -> str:
        return "\n".join(
            f"https://{rng.choice(_DOMAINS)}/{rng.choice(_LOREM)}/{rng.randint(1, 99999)}"
            for _ in range(rng.randint(5, 25))
        )

    def repeated() -> str:
        line = rng.choice(_BOILERPLATE + [" ".join(rng.sample(_LOREM, 6))])
        return "\n".join([line] * rng.randint(10, 40))

    def fragment() -> str:
        return " ".join(rng.choice(_LOREM + _BOILERPLATE) for _ in range(rng.randint(1, 4)))

    def non_english(lang: str):
        def make() -> str:
            pool = foreign[lang]
            return " ".join(rng.sample(pool, min(len(pool), rng.randint(2, 5))))

        return make

    kinds = {
        "boilerplate": boilerplate,
        "lorem": lorem,
        "symbols": symbols,
        "urls": urls,
        "repeated": repeated,
        "fragment": fragment,
        "non-english-de": non_english("de"),
        "non-english-fr": non_english("fr"),
        "non-english-es": non_english("es"),
    }
    names = list(kinds)
    docs = []
    for i in range(n):
        kind = names[i % len(names)] if i < len(names) else rng.choice(names)
        docs.append({"id": f"junk-{seed}-{i:06d}", "text": kinds[kind](), "source": f"junk:{kind}"})
    return docs
