"""Web archives (`.warc`, `.warc.gz`: Common Crawl's WARC files): one row per HTML response.

The file is read as a stream with FastWARC (Bevendorff et al., "FastWARC: Optimizing
Large-Scale Web Archive Analytics", 2021), over fsspec: a local path, `s3://...`, or an
`http(s)://` URL (fsspec's HTTP filesystem, which reads by range requests where the server
allows them). A WARC file is one shard: it is never split.

Rows: `id` (the WARC-Record-ID without `<urn:uuid:` and `>`, as NeMo Curator's
`warc_id`), `source` (the WARC URI), `_order` (`file_index << 32 | record number`), then
`url` (WARC-Target-URI), `warc_id` (as `id`), `warc_date` (the WARC-Date header as
written, ISO 8601), `content_type` (the HTTP MIME type, lower case, no parameters),
`charset` (the HTTP Content-Type's charset, lower case, or null) and `html` (binary: the
HTTP body as archived, after undoing a chunked transfer encoding and a gzip, deflate or
zstd content encoding). The HTML stays bytes: `stages.text.extract.HtmlExtractor` decodes
it (charset from `charset`, else detection) and adds `text` and `language`, so a WARC read
has no `text` column until that stage; it is the first stage of a WARC pipeline. `columns`
keeps only the listed metadata columns (`html` is always kept); `text_field`, `id_field`
and `required_field` do not apply.

Every record is a row, a quarantine record or counted as skipped, never silently lost:

- a response whose HTTP Content-Type (else Common Crawl's WARC-Identified-Payload-Type,
  else the first bytes of the body) is `text/html` or `application/xhtml+xml` is a row;
- any other response is a quarantine record `"... not HTML: application/pdf"`, as is a
  response with an empty body, one that is not HTTP (no status line) or whose content
  encoding cannot be undone. `raw` is null (a PDF is not worth copying into the
  quarantine); `offset` and `length` locate the record as stored in the file (the gzip
  member of a `.warc.gz`, as Common Crawl's index gives them), so `source[offset : offset
  + length]` reads it back;
- records that are not responses (warcinfo, request, metadata, revisit, resource, ...) are
  no rows and no quarantine records: they are counted in `ReadResult.blank_lines`, as the
  JSONL reader counts blank lines, so the run's counts still add up;
- damaged data (a truncated record, an invalid WARC header, a corrupt gzip member) is a
  quarantine record `"... damaged record at offset N (why)"` whose `raw`, `offset` and
  `length` hold the bytes skipped. Reading then resumes at the next record that parses (the
  next gzip member, or the next `WARC/1.x` line of an uncompressed file), so one bad record
  does not lose the rest of a file; a file compressed as one gzip stream cannot resume and
  ends at the damage.

`line` in a quarantine record is the record's number in the file (1-based, every record
counted; a damaged stretch counts as one). An error of the storage itself (a network
failure) is raised, not quarantined: the flow retries the shard. In strict mode the first
quarantine record raises `InputError`, and on web crawls that is usually the first PDF.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import NamedTuple

import pyarrow as pa
from fastwarc.warc import ArchiveIterator, WarcRecordType

from stages.io.formats.base import Format
from stages.io.fs import filesystem
from stages.io.quarantine import RAW_BYTES, Record
from stages.io.rows import ReadResult, assemble

HTML_TYPES = frozenset(["text/html", "application/xhtml+xml"])
METADATA_COLUMNS = ("url", "warc_id", "warc_date", "content_type", "charset")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_LINE = b"\nWARC/1."
_SCAN_BYTES = 1 << 20
_HEADER_BYTES = 64 << 10


class WarcFormat(Format):
    name = "warc"
    extensions = (".warc", ".warc.gz")

    def read(self, shard, reader) -> Iterator[ReadResult]:
        fs, path = filesystem(shard.uri, reader.storage_options)
        rows = _Rows(shard, reader)
        with fs.open(path, "rb") as f:
            records = _Records(shard.uri, _Source(f), _size(fs, path))
            for event in records:
                rows.add(event)
                if rows.full():
                    yield rows.flush()
            if records.count == 0 and not rows.bad:
                why = f"{shard.uri}: line 0: empty file (no WARC record)"
                rows.bad.append(Record(shard.uri, 0, why, None))
        yield rows.flush()


class _Source:
    """The file FastWARC reads, remembering an error of the storage itself, so that a
    network failure is raised as such rather than taken for damaged data."""

    def __init__(self, f):
        self.f = f
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            return self.f.read(n)
        except Exception as err:
            self.error = err
            raise

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, pos: int) -> None:
        if self.f.tell() != pos:
            self.f.seek(pos)

    def bytes_at(self, start: int, end: int | None, limit: int = RAW_BYTES) -> bytes | None:
        """Up to `limit` bytes of `[start, end)` (None when the file cannot seek back). The
        position is kept: FastWARC may be reading on."""
        try:
            here = self.f.tell()
            self.seek(start)
            n = limit if end is None else min(limit, end - start)
            data = self.read(n) if n > 0 else b""
            self.seek(here)
            return data
        except (OSError, ValueError):
            if self.error is not None:
                raise self.error from None
            return None


class _Row(NamedTuple):
    number: int
    url: str | None
    warc_id: str | None
    warc_date: str | None
    content_type: str
    charset: str | None
    html: bytes


class _Records:
    """The events of one WARC file, in order: `_Row`s, quarantine `Record`s, and None for
    each record skipped (not a response). Resumes after damage at the next record that
    parses."""

    def __init__(self, uri: str, source: _Source, size: int | None):
        self.uri = uri
        self.source = source
        self.size = size
        self.count = 0
        self.gzip: bool | None = None

    def __iter__(self) -> Iterator[_Row | Record | None]:
        start = 0
        damage: tuple[int, str, int] | None = None  # (offset, why, record number)
        pending: list[Record] = []  # quarantined responses waiting for their length
        while True:
            self.source.seek(start)
            last = None  # offset of the last record read since `start`
            records = iter(ArchiveIterator(self.source, parse_http=True, auto_decode="none"))
            while True:
                broken_at = None  # offset of a record whose body is damaged
                try:
                    record = next(records)
                except StopIteration:
                    error = None
                    break
                except BaseException as err:
                    error = self._damaged(err)
                    break
                pos = record.stream_pos
                try:
                    event = self._event(record, self.count + 1)
                except BaseException as err:
                    error, broken_at = self._damaged(err), pos
                    break
                if damage is not None:
                    yield self._damage(*damage, end=pos)
                    damage = None
                for bad in pending:
                    yield _with_length(bad, pos)
                pending = []
                self.count += 1
                last = pos
                if isinstance(event, Record):
                    pending.append(event)
                else:
                    yield event
            if error is None:
                end = self.size
            elif broken_at is not None:
                end = broken_at
            else:
                end = self._end_of(last) if last is not None else start
            for bad in pending:
                yield _with_length(bad, end)
            pending = []
            if error is None:
                if damage is not None:
                    yield self._damage(*damage, end=self.size)
                return
            if damage is None:
                self.count += 1
                damage = (end, error, self.count)
            resume = self._next_start(max(start, damage[0]) + 1)
            if resume is None:
                yield self._damage(*damage, end=self.size)
                return
            start = resume

    def _damaged(self, err: BaseException) -> str:
        """Why reading stopped, when it is damaged data; re-raises an error of the storage
        (a network failure) and anything else that is not FastWARC's verdict on the data."""
        if self.source.error is not None:
            raise self.source.error from err
        if isinstance(err, OSError | ValueError | _Damaged) or type(err).__name__ == (
            "PanicException"  # FastWARC panics on some malformed input
        ):
            return str(err) or type(err).__name__
        raise err

    def _event(self, record, number: int) -> _Row | Record | None:
        """What one record becomes: a row, a quarantine record, or None (skipped)."""
        headers = record.headers
        if "Content-Length" not in headers:
            raise _Damaged("no Content-Length in the WARC header")
        if record.record_type != WarcRecordType.response:
            return None
        pos = record.stream_pos
        url = headers.get("WARC-Target-URI") or ""
        where = f"{self.uri}: line {number}: offset {pos}: {url or 'no WARC-Target-URI'}"
        if record.is_http and record.http_headers.status_code is None:
            return self._bad(number, pos, f"{where}: not an HTTP response (no status line)")
        mime = (record.http_content_type if record.is_http else headers.get("Content-Type")) or ""
        mime = mime.split(";", 1)[0].strip().lower()
        if not mime or mime == "application/octet-stream":
            identified = headers.get("WARC-Identified-Payload-Type") or ""
            mime = identified.split(";", 1)[0].strip().lower() or mime
        if mime and mime not in HTML_TYPES and mime != "application/octet-stream":
            expected = record.content_length
            got = record.reader.consume()
            if got < expected:
                raise _Damaged(f"record ends after {got} of {expected} body bytes")
            return self._bad(number, pos, f"{where}: not HTML: {mime}")
        body = record.reader.read()
        if len(body) < record.content_length:
            raise _Damaged(f"record ends after {len(body)} of {record.content_length} body bytes")
        if not mime:
            if not _looks_like_html(body):
                return self._bad(number, pos, f"{where}: not HTML: no Content-Type")
            mime = "text/html"
        elif mime == "application/octet-stream":
            if not _looks_like_html(body):
                return self._bad(number, pos, f"{where}: not HTML: {mime}")
            mime = "text/html"
        if record.is_http:
            try:
                body = decode_body(body, record.http_headers)
            except ValueError as err:
                return self._bad(number, pos, f"{where}: {err}")
        if not body.strip():
            return self._bad(number, pos, f"{where}: empty HTML body")
        record_id = headers.get("WARC-Record-ID")
        return _Row(
            number,
            url or None,
            _warc_id(record_id) if record_id else None,
            headers.get("WARC-Date"),
            mime,
            (record.http_charset or None) if record.is_http else None,
            body,
        )

    def _bad(self, number: int, pos: int, reason: str) -> Record:
        return Record(self.uri, number, reason, None, 1, pos, None)

    def _damage(self, offset: int, why: str, number: int, end: int | None) -> Record:
        """The quarantine record of damaged bytes `[offset, end)` (end None: to the end)."""
        raw = self.source.bytes_at(offset, end)
        if end is not None:
            tail = f"{end - offset} bytes skipped, reading resumed at offset {end}"
            if end == self.size:
                tail = f"the last {end - offset} bytes of the file skipped"
        else:
            tail = "the rest of the file skipped"
        reason = f"{self.uri}: line {number}: damaged record at offset {offset} ({why}); {tail}"
        length = end - offset if end is not None else (len(raw) if raw is not None else None)
        return Record(self.uri, number, reason, raw, 1, offset, length)

    def _is_gzip(self) -> bool:
        if self.gzip is None:
            self.gzip = self.source.bytes_at(0, None, len(_GZIP_MAGIC)) == _GZIP_MAGIC
        return self.gzip

    def _next_start(self, pos: int) -> int | None:
        """The offset of the next gzip member (or `WARC/1.x` line) at or after `pos`."""
        magic = _GZIP_MAGIC if self._is_gzip() else _WARC_LINE
        skip = 0 if magic is _GZIP_MAGIC else 1
        at = pos - skip
        while True:
            chunk = self.source.bytes_at(at, None, _SCAN_BYTES)
            if not chunk:
                return None
            found = chunk.find(magic)
            if found >= 0:
                return at + found + skip
            if len(chunk) < _SCAN_BYTES:
                return None
            at += len(chunk) - len(magic) + 1

    def _end_of(self, pos: int | None) -> int:
        """Where the (good) record starting at `pos` ends: the end of its gzip member, or
        of its block and the two CRLFs after it; `pos + 1` when that cannot be told."""
        if pos is None:
            return 0
        if self._is_gzip():
            inflate = zlib.decompressobj(31)
            at = pos
            while not inflate.eof:
                chunk = self.source.bytes_at(at, None, _SCAN_BYTES)
                if not chunk:
                    return pos + 1
                try:
                    inflate.decompress(chunk)
                except zlib.error:
                    return pos + 1
                at += len(chunk)
            return at - len(inflate.unused_data)
        head = self.source.bytes_at(pos, None, _HEADER_BYTES) or b""
        split = head.find(b"\r\n\r\n")
        if split < 0:
            return pos + 1
        length = None
        for line in head[:split].split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip()) if value.strip().isdigit() else None
        if length is None:
            return pos + 1
        end = pos + split + 4 + length
        trailer = self.source.bytes_at(end, None, 4) or b""
        return end + len(trailer) if trailer == b"\r\n\r\n" else end


class _Damaged(Exception):
    """A record FastWARC reads without complaint but that is damaged: no Content-Length,
    or a body shorter than its Content-Length says."""


def _with_length(record: Record, end: int | None) -> Record:
    """A non-HTML record's quarantine entry, with its stored length once the next record's
    offset (or the file's end) is known."""
    if end is None or record.offset is None or end <= record.offset:
        return record
    return record._replace(length=end - record.offset)


def _warc_id(record_id: str) -> str:
    """`<urn:uuid:X>` -> `X` (as NeMo Curator's `warc_id`); other forms without `<>`."""
    value = record_id.strip().removeprefix("<").removesuffix(">")
    return value.removeprefix("urn:uuid:")


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def decode_body(body: bytes, http_headers) -> bytes:
    """The HTTP body with its transfer and content encodings undone (chunked; gzip,
    deflate, zstd). ValueError naming the encoding when that fails or is unknown."""
    transfer = (http_headers.get("Transfer-Encoding") or "").strip().lower()
    if "chunked" in transfer:
        body = _dechunk(body)
    encoding = (http_headers.get("Content-Encoding") or "").strip().lower()
    for coding in [c.strip() for c in encoding.split(",") if c.strip()][::-1]:
        if coding in ("identity", "none"):
            continue
        if coding not in _DECODERS:
            raise ValueError(f"content encoding {coding!r} is not supported")
        try:
            body = _DECODERS[coding](body)
        except Exception as err:  # zlib.error, zstandard.ZstdError
            raise ValueError(f"content encoding {coding!r} cannot be undone: {err}") from None
    return body


def _inflate(body: bytes) -> bytes:
    """`deflate` as servers send it: a zlib stream, or (wrongly, but often) a raw one."""
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -15)


def _unzstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


_DECODERS = {
    "gzip": lambda body: zlib.decompress(body, 47),
    "x-gzip": lambda body: zlib.decompress(body, 47),
    "deflate": _inflate,
    "zstd": _unzstd,
}


def _dechunk(body: bytes) -> bytes:
    """A chunked transfer-encoded body, joined (ValueError when malformed)."""
    out = bytearray()
    at = 0
    while True:
        end = body.find(b"\r\n", at)
        if end < 0:
            raise ValueError("chunked transfer encoding: a chunk size line is missing")
        size_text = body[at:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError(
                f"chunked transfer encoding: bad chunk size {size_text[:20]!r}"
            ) from None
        if size == 0:
            return bytes(out)
        start = end + 2
        if start + size > len(body):
            raise ValueError("chunked transfer encoding: a chunk is cut short")
        out += body[start : start + size]
        at = start + size + 2


def _size(fs, path: str) -> int | None:
    try:
        size = fs.size(path)
    except (OSError, ValueError, NotImplementedError):
        return None
    return int(size) if size is not None else None


class _Rows:
    """Rows and quarantine records, turned into a `ReadResult` every `batch_bytes` of
    HTML."""

    def __init__(self, shard, reader):
        self.shard, self.reader = shard, reader
        wanted = reader.columns
        self.columns = [c for c in METADATA_COLUMNS if wanted is None or c in wanted]
        self.rows: list[_Row] = []
        self.bad: list[Record] = []
        self.skipped = 0
        self.bytes = 0

    def add(self, event: _Row | Record | None) -> None:
        if event is None:
            self.skipped += 1
        elif isinstance(event, Record):
            self.bad.append(event)
        else:
            self.rows.append(event)
            self.bytes += len(event.html)

    def full(self) -> bool:
        return self.bytes >= self.reader.batch_bytes

    def flush(self) -> ReadResult:
        rows, bad, skipped = self.rows, self.bad, self.skipped
        self.rows, self.bad, self.skipped, self.bytes = [], [], 0, 0
        quarantine = self.reader.quarantine(bad)
        extras = {
            name: pa.array([getattr(r, name) for r in rows], pa.string()) for name in self.columns
        }
        extras["html"] = pa.array([r.html for r in rows], pa.binary())
        ids = [r.warc_id for r in rows]
        numbers = [r.number for r in rows]
        table = assemble(self.shard, None, ids, numbers, extras)
        return ReadResult(table, quarantine, skipped)
