"""MediaWiki XML dumps (`.xml`, `.xml.bz2`): one row per article.

Wikimedia's dumps (`enwiki-20240601-pages-articles-multistream.xml.bz2`, ...) are one XML
document of `<page>` elements. Read with `format="wikipedia"` (never detected from the
extension). The dump is read as a stream (bz2 decompressed as it is read, multistream
files included; `s3://` and `http://` work) and each page is dropped from the XML tree once
read, so memory stays constant however large the dump.

The semantics follow NeMo Curator's Wikipedia reader (`nemo_curator/stages/text/download/
wikipedia/`: `iterator.py` for the dump, `extract.py` for the text; itself from
HuggingFace's `wikipedia` dataset script):

- rows: `id` (the page id), `text`, `source` (the dump), `_order` (`file_index << 32 |
  page number`), `title`, `url`, `language`;
- `url`: the dump's site base (`<siteinfo><base>`, up to `/wiki/`) and the quoted title;
  without a base, `https://<language>.wikipedia.org/wiki/<title>` as NeMo builds it;
- `language`: the `language` given to the format, else the dump's `xml:lang`, else `en`;
- `text`: the wikitext of the page's last revision, parsed with mwparserfromhell and
  stripped of markup section by section, sections joined by a blank line: templates,
  `<ref>`s, tables, comments, file and image links (`File:`, `Image:`, `Media:` and the
  wiki's own names for them, from the dump's `<namespaces>`, where NeMo keeps a table per
  language) and magic words (`__NOTOC__`) are removed; links become their text;
  headings stay as lines of their own; lines are trimmed. Category links are removed
  (NeMo keeps their names as text at the end of the article; `keep_categories=True` does
  the same).

Pages that are no articles are dropped, as NeMo drops them, and counted: redirects
(`<redirect>`, or text starting `#REDIRECT`) and pages outside the main namespace
(`<ns>` other than 0: talk, user, file, category pages...). They are no rows and no
quarantine records; each batch's `ReadResult.blank_lines` counts them, the channel that
carries the inputs a reader skips on purpose (blank lines of line-based formats) to the
commit and the run report.

A page that cannot be read is a quarantine record (`line` = page number, `raw` = the
page's XML), the pages around it are kept: no title, no id or a non-numeric namespace,
no revision text (a deleted revision), or wikitext that does not parse. A damaged dump
(a truncated or corrupt bz2 stream, XML that stops parsing) keeps the pages before the
damage and ends in one quarantine record saying where it broke: the pages after it are
lost.
"""

from __future__ import annotations

import bz2
import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote

import pyarrow as pa

from stages.io.formats.base import Format
from stages.io.fs import filesystem
from stages.io.quarantine import Record
from stages.io.rows import ReadResult, assemble

_CHUNK = 1 << 20
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_REDIRECT = re.compile(r"\s*#redirect", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_MEDIA = ("File", "Image", "Media")  # the canonical names every wiki knows
_CATEGORY = ("Category",)


class WikipediaFormat(Format):
    """See the module docstring. `language`: the wiki's language code for the `language`
    column (and `url` when the dump names no site base); None takes the dump's own
    `xml:lang`. `keep_categories`: keep category names as text (NeMo's output)."""

    name = "wikipedia"
    extensions = (".xml", ".xml.bz2")
    detected = False

    def __init__(self, language: str | None = None, keep_categories: bool = False):
        self.language = language
        self.keep_categories = keep_categories

    def read(self, shard, reader) -> Iterator[ReadResult]:
        uri = shard.uri
        fs, path = filesystem(uri, reader.storage_options)
        rows = _Rows(shard, reader)
        dump = _Dump(self, uri)
        with fs.open(path, "rb") as f:
            try:
                for chunk in _decompressed(f, uri.lower().endswith(".bz2")):
                    for _ in dump.feed(chunk, rows):
                        yield rows.flush()
                for _ in dump.close(rows):
                    yield rows.flush()
            except _Damaged as err:
                line = dump.pages + 1
                rows.bad.append(Record(uri, line, f"{uri}: page {line}: {dump.why(err)}", None))
        yield rows.flush()


class _Damaged(Exception):
    """The dump stops being readable (compression or XML), or is no MediaWiki dump."""


class _Dump:
    """Pulls pages out of the dump's XML as it is fed, and turns each into a row, a
    skipped page or a quarantine record."""

    def __init__(self, fmt: WikipediaFormat, uri: str):
        self.fmt = fmt
        self.uri = uri
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.root: ET.Element | None = None
        self.language = fmt.language
        self.base: str | None = None
        self.pages = 0
        self.last_title: str | None = None
        self.bytes = 0
        self.media = list(_MEDIA)
        self.categories = list(_CATEGORY)
        self.cleaner: _Cleaner | None = None

    def feed(self, data: bytes, rows: _Rows) -> Iterator[None]:
        """Parse `data`; yields each time `rows` is full (the caller flushes it)."""
        self.bytes += len(data)
        self.parser.feed(data)
        yield from self._events(rows)

    def close(self, rows: _Rows) -> Iterator[None]:
        if self.bytes == 0:
            raise _Damaged("empty file")
        try:
            self.parser.close()
        except ET.ParseError as err:
            raise _Damaged(f"XML ends early ({err})") from None
        yield from self._events(rows)

    def why(self, err: _Damaged) -> str:
        """The reason for a damaged dump: where it broke, and what is lost."""
        if self.root is None:
            return str(err)
        after = f"page {self.pages}" + (f" ({self.last_title!r})" if self.last_title else "")
        return f"{err} after {after}; the pages after it are lost"

    def _events(self, rows: _Rows) -> Iterator[None]:
        try:
            for event, elem in self.parser.read_events():
                tag = elem.tag.rsplit("}", 1)[-1]
                if event == "start":
                    if self.root is None:
                        if tag != "mediawiki":
                            raise _Damaged(f"not a MediaWiki dump (root element <{tag}>)")
                        self.root = elem
                        if self.language is None:
                            self.language = elem.get(_XML_LANG)
                    continue
                if tag == "page":
                    self.pages += 1
                    self._page(elem, rows)
                    self.root.clear()
                    if rows.full():
                        yield
                elif tag == "siteinfo":
                    base = _child_text(elem, "base")
                    if base and "/" in base:
                        self.base = base.rsplit("/", 1)[0] + "/"
                    self._namespaces(elem)
                    self.root.clear()
        except ET.ParseError as err:
            raise _Damaged(f"invalid XML ({err})") from None

    def _namespaces(self, siteinfo: ET.Element) -> None:
        """The dump's own names of the media, file and category namespaces (`-2`, `6`,
        `14`), beside the English ones."""
        namespaces = _find(siteinfo, "namespaces")
        for ns in namespaces if namespaces is not None else ():
            key, name = ns.get("key"), (ns.text or "").strip()
            if name and key in ("-2", "6"):
                self.media.append(name)
            elif name and key == "14":
                self.categories.append(name)

    def _page(self, page: ET.Element, rows: _Rows) -> None:
        number = self.pages
        title = _child_text(page, "title")
        page_id = _child_text(page, "id")
        ns = _child_text(page, "ns")
        self.last_title = title
        why = None
        if not title:
            why = "no <title>"
        elif not page_id:
            why = "no <id>"
        elif ns is None or not ns.strip().lstrip("-").isdigit():
            why = f"<ns> is {ns!r}, expected a number"
        if why is None and (int(ns) != 0 or _find(page, "redirect") is not None):
            rows.skipped += 1
            return
        text = ""
        if why is None:
            revisions = [c for c in page if c.tag.rsplit("}", 1)[-1] == "revision"]
            found = _find(revisions[-1], "text") if revisions else None
            if found is None or found.get("deleted") is not None:
                why = "no revision text (missing or deleted)"
            elif _REDIRECT.match(found.text or ""):
                rows.skipped += 1
                return
            else:
                text = found.text or ""
        if why is None:
            try:
                text = self._cleaner().text(text)
            except Exception as err:  # noqa: BLE001 (the parser's errors are not typed)
                why = f"wikitext does not parse: {type(err).__name__}: {err}"
        if why is not None:
            place = f"page {number}" + (f" ({title!r})" if title else "")
            raw = ET.tostring(page, encoding="utf-8")
            rows.bad.append(Record(self.uri, number, f"{self.uri}: {place}: {why}", raw))
            return
        language = self.language or "en"
        base = self.base or f"https://{language}.wikipedia.org/wiki/"
        rows.add(page_id.strip(), text, number, title, base + quote(title), language)

    def _cleaner(self) -> _Cleaner:
        if self.cleaner is None:
            self.cleaner = _Cleaner(self.media, self.categories, self.fmt.keep_categories)
        return self.cleaner


class _Cleaner:
    """Wikitext to plain text, as NeMo Curator's Wikipedia extractor strips it."""

    def __init__(self, media: list[str], categories: list[str], keep_categories: bool):
        media = "|".join(re.escape(p) for p in dict.fromkeys(media))
        category = "|".join(re.escape(p) for p in dict.fromkeys(categories))
        self.media = re.compile(rf"^\s*:?\s*(?:{media})\s*:", re.IGNORECASE)
        self.category = re.compile(rf"^\s*(?:{category})\s*:", re.IGNORECASE)
        self.keep_categories = keep_categories

    def text(self, wikitext: str) -> str:
        import mwparserfromhell

        code = mwparserfromhell.parse(wikitext)
        for link in code.filter_wikilinks(recursive=True):
            title = str(link.title)
            if self.media.match(title):
                _remove(code, link)
            elif self.category.match(title):
                if self.keep_categories:
                    with contextlib.suppress(ValueError):
                        link.text = self.category.sub("", title).strip()
                else:
                    _remove(code, link)
        for tag in code.filter_tags(recursive=True):
            if str(tag.tag).strip().lower() in ("ref", "table"):
                _remove(code, tag)
        sections = []
        for section in code.get_sections(flat=True, include_lead=True, include_headings=True):
            plain = _MAGIC_WORD.sub("", section.strip_code())
            lines = (line.strip() for line in plain.split("\n"))
            sections.append("\n".join(lines).strip())
        return _BLANK_RUNS.sub("\n\n", "\n\n".join(s for s in sections if s))


def _remove(code, node) -> None:
    # A node inside one removed before is no longer found: nothing left to do.
    with contextlib.suppress(ValueError):
        code.remove(node)


def _find(elem: ET.Element, tag: str) -> ET.Element | None:
    for child in elem:
        if child.tag.rsplit("}", 1)[-1] == tag:
            return child
    return None


def _child_text(elem: ET.Element, tag: str) -> str | None:
    child = _find(elem, tag)
    return child.text if child is not None else None


def _decompressed(f, is_bz2: bool) -> Iterator[bytes]:
    """The bytes of the dump: bz2 decompressed (one or more streams, as multistream dumps
    are), raising `_Damaged` where the stream is cut or corrupt."""
    if not is_bz2:
        while chunk := f.read(_CHUNK):
            yield chunk
        return
    decoder = bz2.BZ2Decompressor()
    inside = False  # the decoder has taken input, and its stream has not ended
    while raw := f.read(_CHUNK):
        data = raw
        # At most `_CHUNK` out per call: a small input can hold a great deal of text.
        while data or not decoder.needs_input:
            try:
                out = decoder.decompress(data, _CHUNK)
            except (OSError, EOFError) as err:
                raise _Damaged(f"corrupt bz2 stream ({err})") from None
            inside, data = True, b""
            if out:
                yield out
            if decoder.eof:
                data = decoder.unused_data
                decoder = bz2.BZ2Decompressor()
                inside = False
    if inside:
        raise _Damaged("truncated bz2 stream")


class _Rows:
    """Articles read so far, turned into a `ReadResult` every `batch_bytes` of text."""

    def __init__(self, shard, reader):
        self.shard, self.reader = shard, reader
        self._clear()

    def _clear(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.numbers: list[int] = []
        self.titles: list[str] = []
        self.urls: list[str] = []
        self.languages: list[str] = []
        self.bad: list[Record] = []
        self.skipped = 0
        self.bytes = 0

    def add(self, page_id, text, number, title, url, language) -> None:
        self.ids.append(page_id)
        self.texts.append(text)
        self.numbers.append(number)
        self.titles.append(title)
        self.urls.append(url)
        self.languages.append(language)
        self.bytes += len(text)

    def full(self) -> bool:
        return self.bytes >= self.reader.batch_bytes

    def flush(self) -> ReadResult:
        columns = self.reader.columns
        extras = {
            name: pa.array(values, pa.string())
            for name, values in (
                ("title", self.titles),
                ("url", self.urls),
                ("language", self.languages),
            )
            if columns is None or name in columns
        }
        table = assemble(self.shard, self.texts, self.ids, self.numbers, extras)
        result = ReadResult(table, self.reader.quarantine(self.bad), self.skipped)
        self._clear()
        return result
