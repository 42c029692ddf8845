"""arXiv bulk source tarballs (`.tar`, `.tar.gz`): one row per paper.

arXiv's bulk source files (`arXiv_src_2301_001.tar`, requester-pays on `s3://arxiv/src/`)
are tars of one member per paper: `2301/2301.00001.gz`, a gzipped tar of the paper's
sources, or a gzipped single `.tex` file; a paper submitted as PDF only is a `.pdf`
member. Read with `format="arxiv"` (the extension is WebDataset's, so it is never
detected).

The semantics follow NeMo Curator's arXiv reader (`nemo_curator/stages/text/download/
arxiv/`: `iterator.py` for the tarball, `extract.py` for the text; itself from RedPajama):

- `id`: the arXiv id of the member name, as NeMo formats it: `2301.00001`, and for the
  old scheme `astro-ph0001001` -> `astro-ph/0001001` (a name of another shape stays as it
  is);
- `text`: the paper's LaTeX cleaned by `stages.text.latex`: the main `.tex` files (those
  with `\\documentclass`, else every `.tex` file; NeMo takes every `.tex` file), less those
  another one includes, with their `\\input` / `\\include` / `\\subfile` files inlined,
  concatenated in path order; comments removed; macro definitions removed and the macros
  expanded (with or without arguments); the preamble before `\\begin{document}` removed
  (`start_at="section"` cuts to the first sectioning command instead, as NeMo does, so
  the title and abstract go too); everything from the first `\\appendix` or bibliography
  on removed; sections stay as `\\section{...}` headings;
- `source` (the tarball), `_order` (`file_index << 32 | member number`), `tex_files`
  (the files the text came from, in order).

The outer tar is read as a stream (works on `s3://` and `http://`). Each member ends in
one row or one quarantine record (`line` = member number, `raw` = the member's first
bytes, `offset`/`length` = where they lie in the tar stream) naming the member and the
reason: not a readable gzip or tar, a PDF or PostScript submission, no `.tex` file, a
`.tex` file that is not UTF-8 (NeMo drops those papers; `fallback_encoding="latin-1"`
reads them), no text left after cleaning, a link, sources the cleaning fails on. A
truncated tarball keeps the papers before the damage and quarantines the member it broke
in; the rest of the tarball is read past any bad paper.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import Literal

import pyarrow as pa

from stages.io.formats.base import Format
from stages.io.formats.webdataset import TAR_ERRORS, ends_inside_a_header, open_tar_stream
from stages.io.fs import filesystem
from stages.io.quarantine import RAW_BYTES, Record
from stages.io.rows import ReadResult, assemble
from stages.text import latex

MAX_PAPER_BYTES = 1 << 30  # a paper's decompressed sources; larger is quarantined
_ID = re.compile(r"^([a-zA-Z-]*)([\d.]+)$")
_MEMBER_EXTENSIONS = (".gz", ".tgz", ".tar", ".tex", ".pdf", ".ps")
_BLOCK = 512


class PaperError(ValueError):
    """Why one paper of a tarball gives no row."""


class ArxivFormat(Format):
    """See the module docstring. `start_at`: `"document"` keeps the text from
    `\\begin{document}` (title, abstract), `"section"` from the first sectioning command
    (NeMo Curator's cut). `fallback_encoding`: how to decode a `.tex` file that is not
    UTF-8 (None quarantines the paper)."""

    name = "arxiv"
    extensions = (".tar", ".tar.gz", ".tgz")
    detected = False

    def __init__(
        self,
        start_at: Literal["document", "section"] = "document",
        fallback_encoding: str | None = None,
    ):
        if start_at not in ("document", "section"):
            raise ValueError(f"start_at must be 'document' or 'section', got {start_at!r}")
        self.start_at = start_at
        self.fallback_encoding = fallback_encoding

    def read(self, shard, reader) -> Iterator[ReadResult]:
        uri = shard.uri
        fs, path = filesystem(uri, reader.storage_options)
        rows = _Rows(shard, reader)
        with fs.open(path, "rb") as f:
            tar, unreadable = open_tar_stream(f, fs, path, uri, reader, with_text=True)
            if unreadable is not None:
                yield unreadable
                return
            number, done, name = 0, 0, ""
            try:
                for info in tar:
                    if info.isdir():
                        continue
                    number, name = number + 1, info.name
                    self._member(tar, info, number, rows)
                    done = number
                    if rows.full():
                        yield rows.flush()
                broken = ends_inside_a_header(tar)
            except TAR_ERRORS as err:
                broken = str(err) or type(err).__name__
            if broken is not None:
                where = f"member {name}" if name else "line 0"
                reason = f"{uri}: {where}: truncated tar at or after this member ({broken})"
                rows.bad.append(Record(uri, done + 1, reason, None))
            elif number == 0:
                rows.bad.append(Record(uri, 0, f"{uri}: line 0: tar holds no paper", None))
        yield rows.flush()

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, number: int, rows) -> None:
        uri = rows.shard.uri
        where = f"{uri}: member {info.name}"
        if not info.isfile():
            rows.bad.append(Record(uri, number, f"{where}: not a regular file (a link)", None))
            return
        data = tar.extractfile(info).read()
        if len(data) < info.size:
            raise EOFError("unexpected end of data")
        try:
            sources = paper_sources(data, posixpath.basename(info.name))
            text, used = self.paper_text(sources)
        except Exception as err:  # noqa: BLE001 (one paper's sources never stop the tarball)
            why = str(err) if isinstance(err, PaperError) else f"{type(err).__name__}: {err}"
            raw = data[:RAW_BYTES]
            rows.bad.append(
                Record(uri, number, f"{where}: {why}", raw, 1, info.offset_data, info.size)
            )
            return
        rows.add(arxiv_id(info.name), text, used, number)

    def paper_text(self, sources: dict[str, bytes]) -> tuple[str, list[str]]:
        """The cleaned text of a paper from its files (path -> bytes), and the `.tex`
        files it came from; `PaperError` when there is none."""
        texts: dict[str, str] = {}

        def text_of(path: str) -> str:
            if path not in texts:
                texts[path] = latex.strip_comments(self._decode(path, sources[path]))
            return texts[path]

        tex_paths = sorted(p for p in sources if p.lower().endswith(".tex"))
        if not tex_paths:
            has = ", ".join(sorted(sources)[:10]) or "nothing"
            raise PaperError(f"no .tex file (has: {has})")

        def find(name: str, here: str) -> str | None:
            name = name.strip().strip('"')
            for folder in dict.fromkeys((here, "")):
                path = posixpath.normpath(posixpath.join(folder, name))
                for candidate in (path, path + ".tex"):
                    if candidate in sources:
                        return candidate
            return None

        def load(name: str, here: str) -> tuple[str, str] | None:
            path = find(name, here)
            if path is None:
                return None
            try:
                text = text_of(path)
            except PaperError:
                if path.lower().endswith(".tex"):
                    raise
                return None  # a binary file named by \input: left as written
            # A main file included by another (the `subfiles` package) brings its body.
            return path, latex.document_body(text) if latex.is_main_file(text) else text

        candidates = [p for p in tex_paths if latex.is_main_file(text_of(p))] or tex_paths
        included = {
            path
            for p in candidates
            for name in latex.input_targets(text_of(p))
            if (path := find(name, posixpath.dirname(p))) is not None and path != p
        }
        roots = [p for p in candidates if p not in included] or candidates
        parts: list[str] = []
        used: list[str] = []
        macros: dict[str, latex.Macro] = {}
        for root in roots:
            if root in used:
                continue  # inlined into an earlier root already
            whole, inlined = latex.inline_inputs(text_of(root), load, root)
            defined, rest = latex.macro_definitions(whole)
            macros.update(defined)
            parts.append(rest)
            used += [root, *inlined]
        texts_out = []
        for part in parts:
            body = latex.document_body(part)
            if self.start_at == "section":
                body = latex.from_first_section(body)
            body = latex.without_back_matter(body)
            texts_out.append(latex.expand_macros(body, macros))
        text = latex.tidy_blank_lines("\n".join(texts_out))
        if not text:
            cut = "first section" if self.start_at == "section" else "\\begin{document}"
            raise PaperError(f"no text left after cleaning (from {cut} to the bibliography)")
        return text, list(dict.fromkeys(used))

    def _decode(self, path: str, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as bad:
            if self.fallback_encoding is not None:
                return data.decode(self.fallback_encoding, errors="replace")
            raise PaperError(f"{path}: not UTF-8 (invalid byte at {bad.start})") from None


def paper_sources(data: bytes, member: str) -> dict[str, bytes]:
    """A paper's files (path -> bytes) from its member in the tarball: a gzipped tar, a
    gzipped single file (named `<id>.tex`) or a plain tar; `PaperError` for a PDF or
    PostScript submission and for anything unreadable."""
    stem = _stem(member)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data)
    if data[:5] == b"%PDF-":
        raise PaperError("a PDF submission, no TeX source")
    if data[:2] == b"%!":
        raise PaperError("a PostScript submission, no TeX source")
    if _looks_like_tar(data):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                return {
                    posixpath.normpath(info.name.lstrip("/")): tar.extractfile(info).read()
                    for info in tar
                    if info.isfile()
                }
        except TAR_ERRORS as err:
            raise PaperError(f"not a readable tar archive: {err}") from None
    if not data.strip():
        raise PaperError("empty paper (no bytes)")
    return {f"{stem}.tex": data}


def arxiv_id(member: str) -> str:
    """The arXiv id of a tarball member name, as NeMo Curator formats it."""
    stem = _stem(posixpath.basename(member))
    match = _ID.match(stem)
    if match is None:
        return stem
    archive, number = match.groups()
    return f"{archive}/{number}" if archive else number


def _stem(name: str) -> str:
    lower = name.lower()
    for ext in _MEMBER_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def _gunzip(data: bytes) -> bytes:
    """`data` decompressed (every gzip member), at most `MAX_PAPER_BYTES` of it."""
    out: list[bytes] = []
    total = 0
    while data:
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            chunk = decoder.decompress(data, MAX_PAPER_BYTES - total + 1)
        except zlib.error as err:
            raise PaperError(f"not a readable gzip file: {err}") from None
        total += len(chunk)
        if total > MAX_PAPER_BYTES:
            raise PaperError(f"sources larger than {MAX_PAPER_BYTES} bytes decompressed")
        out.append(chunk)
        if not decoder.eof:
            raise PaperError("not a readable gzip file: truncated stream")
        data = decoder.unused_data.lstrip(b"\0")
    return b"".join(out)


def _looks_like_tar(data: bytes) -> bool:
    """Whether `data` starts with a tar header (ustar magic, or a valid old-style
    header checksum)."""
    if len(data) < _BLOCK:
        return False
    if data[257:262] == b"ustar":
        return True
    header = data[:_BLOCK]
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(header[:148]) + 8 * 32 + sum(header[156:])


class _Rows:
    """Papers read so far, turned into a `ReadResult` every `batch_bytes` of text."""

    def __init__(self, shard, reader):
        self.shard, self.reader = shard, reader
        self._clear()

    def _clear(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.files: list[list[str]] = []
        self.numbers: list[int] = []
        self.bad: list[Record] = []
        self.bytes = 0

    def add(self, paper_id: str, text: str, files: list[str], number: int) -> None:
        self.ids.append(paper_id)
        self.texts.append(text)
        self.files.append(files)
        self.numbers.append(number)
        self.bytes += len(text)

    def full(self) -> bool:
        return self.bytes >= self.reader.batch_bytes

    def flush(self) -> ReadResult:
        columns = self.reader.columns
        extras = {}
        if columns is None or "tex_files" in columns:
            extras["tex_files"] = pa.array(self.files, pa.list_(pa.string()))
        table = assemble(self.shard, self.texts, self.ids, self.numbers, extras)
        result = ReadResult(table, self.reader.quarantine(self.bad))
        self._clear()
        return result
