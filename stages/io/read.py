"""Read one `Shard` (JSONL, gzip/zstd JSONL, Parquet) into Arrow tables.

Good rows come out with `id`, `text`, `source` (the input URI) and `_order` (a global,
deterministic input position: `file_index * 2**32 + line`), plus the projected fields.
Datasets without text (images, audio as Parquet `binary` columns) are read with
`text_field=None`: no `text` column, every other field as stored (bytes stay bytes).
Bad input never crashes a run and is never dropped silently: each bad line (or file) is a
quarantine record naming the file and line, and the good rows around it are kept.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import xxhash
import zstandard

from stages.io.errors import InputError
from stages.io.fs import filesystem
from stages.io.shards import Shard, _first_lines, detect_format

QUARANTINE_SCHEMA = pa.schema(
    [("source", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())]
)
RESERVED = ("id", "text", "source", "_order")
_RAW_CHARS = 1000
_CHUNK = 8 << 20
_PROBE = 64 << 10
_JSON_BLOCK = 4 << 20
_MISSING = object()


@dataclass
class ReadResult:
    """Rows read from a shard, and one quarantine record per bad input."""

    table: pa.Table
    quarantine: pa.Table

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


class _Damaged(Exception):
    """A compressed stream ended early (`detail` None) or is corrupt."""

    def __init__(self, detail: str | None = None):
        super().__init__(detail)
        self.detail = detail


class ShardReader:
    """Reads shards into `ReadResult`s.

    - `text_field`: the input field holding the text; it comes out as `text`. None reads
      rows without text (media, tabular data): no `text` column is made or required.
    - `id_field`: the input field holding a document id (cast to string); rows without one
      get a generated id `<file stem>-<hash of uri>-<line>`, stable across runs.
    - `columns`: the other input fields to keep (None keeps all). An input field whose name
      clashes with an output column (`source`, ...) is kept as `input_<name>`.
    - `required_field`: an input field every row must hold (not null, any type, kept under
      its own name and always read, whatever `columns` says); rows without it are
      quarantined. Dedup of an `image` column reads with `text_field=None,
      required_field="image"`.
    - `strict`: raise `InputError` at the first bad row instead of quarantining it.
    - `batch_bytes`: `iter_batches` yields about this much input per batch.
    """

    def __init__(
        self,
        text_field: str | None = "text",
        id_field: str = "id",
        columns: list[str] | None = None,
        storage_options: dict | None = None,
        strict: bool = False,
        batch_bytes: int = 32 << 20,
        required_field: str | None = None,
    ):
        self.text_field = text_field
        self.id_field = id_field
        self.required_field = required_field
        self.columns = list(columns) if columns is not None else None
        if (
            self.columns is not None
            and required_field is not None
            and required_field not in (text_field, id_field, *self.columns)
        ):
            self.columns.append(required_field)
        self.storage_options = storage_options
        self.strict = strict
        self.batch_bytes = batch_bytes

    def read(self, shard: Shard) -> ReadResult:
        """The whole shard as one result."""
        parts = list(self.iter_batches(shard))
        return ReadResult(
            table=_concat([p.table for p in parts], self.text_field is not None),
            quarantine=pa.concat_tables([empty_quarantine()] + [p.quarantine for p in parts]),
        )

    def iter_batches(self, shard: Shard) -> Iterator[ReadResult]:
        """The shard in pieces of about `batch_bytes` of input, in input order."""
        if shard.format == "parquet":
            yield from self._parquet(shard)
        else:
            yield from self._jsonl(shard)

    # -- JSONL -------------------------------------------------------------------------

    def _jsonl(self, shard: Shard) -> Iterator[ReadResult]:
        uri = shard.uri
        line = shard.first_line
        if line is None:
            line = (
                1 if shard.start == 0 else _first_lines(uri, [shard.start], self.storage_options)[0]
            )
        fs, path = filesystem(uri, self.storage_options)
        compression = shard.compression
        pending: list[bytes] = []
        pending_bytes = 0
        carry = b""
        total = 0
        damage: _Damaged | None = None
        with fs.open(path, "rb") as f:
            if compression == "gzip":
                chunks = _gzip_chunks(f)
            elif compression == "zstd":
                chunks = _zstd_chunks(f)
            else:
                chunks = _plain_chunks(f, shard.start, shard.end)
            try:
                for chunk in chunks:
                    total += len(chunk)
                    buf = carry + chunk if carry else chunk
                    cut = buf.rfind(b"\n")
                    if cut < 0:
                        carry = buf
                        continue
                    pending.append(buf[: cut + 1])
                    carry = buf[cut + 1 :]
                    pending_bytes += cut + 1
                    if pending_bytes >= self.batch_bytes:
                        result, line = self._parse(b"".join(pending), line, shard)
                        pending, pending_bytes = [], 0
                        yield result
            except _Damaged as err:
                damage = err
        if pending:
            result, line = self._parse(b"".join(pending), line, shard)
            yield result
        if damage is not None:
            last = line - 1
            if damage.detail is None:
                why = f"truncated {compression} stream after line {last}"
            else:
                why = f"corrupt {compression} stream after line {last}: {damage.detail}"
            reason = f"{uri}: line {last}: {why}"
            raw = carry[: _RAW_CHARS * 4].decode("utf-8", "replace")[:_RAW_CHARS] if carry else None
            yield self._bad_only(uri, last, reason, raw)
        elif carry:
            result, line = self._parse(carry, line, shard)
            yield result
        elif total == 0 and shard.start == 0:
            yield self._bad_only(uri, 0, f"{uri}: line 0: empty file", None)

    def _parse(self, block: bytes, first_line: int, shard: Shard) -> tuple[ReadResult, int]:
        """Parse complete lines; returns the result and the number of the next line."""
        lines = block.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        fast = self._parse_clean(block, len(lines), first_line, shard)
        if fast is not None:
            return ReadResult(fast, empty_quarantine()), first_line + len(lines)
        loads = orjson.loads
        text_field = self.text_field
        required = self.required_field
        objs: list[dict] = []
        numbers: list[int] = []
        bad: list[tuple[int, str, bytes]] = []
        n = first_line
        for raw in lines:
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError as err:
                if raw.strip():
                    bad.append((n, _why_unparsable(raw, err), raw))
                n += 1
                continue
            if type(obj) is dict:
                text = obj.get(text_field, _MISSING) if text_field is not None else ""
                value = obj.get(required, _MISSING) if required is not None else ""
                if type(text) is not str:
                    if text is _MISSING:
                        bad.append((n, f"missing field {text_field!r}", raw))
                    else:
                        kind = _json_kind(text)
                        bad.append((n, f"field {text_field!r} is {kind}, expected a string", raw))
                elif value is _MISSING:
                    bad.append((n, f"missing field {required!r}", raw))
                elif value is None:
                    bad.append((n, f"field {required!r} is null", raw))
                else:
                    objs.append(obj)
                    numbers.append(n)
            else:
                bad.append((n, f"expected a JSON object, got {_json_kind(obj)}", raw))
            n += 1
        quarantine = self._quarantine(shard.uri, bad)
        return ReadResult(self._table(objs, numbers, shard), quarantine), n

    def _parse_clean(self, block: bytes, n_lines: int, first_line: int, shard: Shard):
        """The fast path: Arrow's multi-threaded JSON reader on a block of clean lines.

        Returns None (so the per-line parser runs and pinpoints the bad lines) unless every
        line is a JSON object with a string text field (and a non-null required field) and
        no line is blank. Blocks whose
        schema holds a type the per-line parser would not produce (Arrow infers timestamps
        from date-like strings) also take the per-line path, so both give the same table.
        """
        try:
            table = pa_json.read_json(
                pa.BufferReader(block),
                read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK),
                parse_options=pa_json.ParseOptions(newlines_in_values=False),
            )
            table.validate(full=True)  # Arrow's JSON reader does not check UTF-8 itself
        except (pa.ArrowException, ValueError):
            return None
        text_field = self.text_field
        names = table.column_names
        if table.num_rows != n_lines or any(_has_timestamp(field.type) for field in table.schema):
            return None
        if text_field is not None and (
            text_field not in names
            or not pa.types.is_string(table.schema.field(text_field).type)
            or table.column(text_field).null_count
        ):
            return None
        required = self.required_field
        if required is not None and (
            required not in names
            or pa.types.is_null(table.schema.field(required).type)
            or table.column(required).null_count
        ):
            return None
        if self.columns is not None:
            keys = [c for c in self.columns if c not in (text_field, self.id_field)]
        else:
            keys = [k for k in names if k not in (text_field, self.id_field)]
        extras = {k: (table.column(k) if k in names else pa.nulls(table.num_rows)) for k in keys}
        ids = table.column(self.id_field) if self.id_field in names else None
        if ids is not None and not (
            pa.types.is_string(ids.type)
            or pa.types.is_integer(ids.type)
            or pa.types.is_null(ids.type)
        ):
            return None  # the per-line path formats float and nested ids
        numbers = pa.array(range(first_line, first_line + n_lines), pa.int64())
        text = table.column(text_field) if text_field is not None else None
        return _assemble(shard, text, ids, numbers, extras)

    def _table(self, objs: list[dict], numbers: list[int], shard: Shard) -> pa.Table:
        text = [o[self.text_field] for o in objs] if self.text_field is not None else None
        ids = [o.get(self.id_field) for o in objs]
        if self.columns is not None:
            keys = [c for c in self.columns if c not in (self.text_field, self.id_field)]
        else:
            seen: dict[str, None] = {}
            previous = None
            for o in objs:
                ks = o.keys()
                if ks != previous:
                    seen.update(dict.fromkeys(ks))
                    previous = ks
            keys = [k for k in seen if k not in (self.text_field, self.id_field)]
        extras = {k: _to_arrow([o.get(k) for o in objs]) for k in keys}
        return _assemble(shard, text, ids, numbers, extras)

    # -- Parquet -----------------------------------------------------------------------

    def _parquet(self, shard: Shard) -> Iterator[ReadResult]:
        uri = shard.uri
        fs, path = filesystem(uri, self.storage_options)
        with fs.open(path, "rb") as f:
            try:
                pf = pq.ParquetFile(f)
            except (pa.ArrowInvalid, EOFError, OSError) as err:
                if fs.size(path) == 0:
                    yield self._bad_only(uri, 0, f"{uri}: line 0: empty file", None)
                else:
                    yield self._bad_only(
                        uri, 0, f"{uri}: line 0: unreadable Parquet file: {err}", None
                    )
                return
            names = pf.schema_arrow.names
            text_field, required = self.text_field, self.required_field
            checks = []  # (field, why a null there is bad), in the order they are reported
            if text_field is not None:
                checks.append((text_field, f"field {text_field!r} is null, expected a string"))
            if required is not None and required != text_field:
                checks.append((required, f"field {required!r} is null"))
            for field, _ in checks:
                if field not in names:
                    reason = f"{uri}: line 0: missing column {field!r}"
                    yield self._bad_only(uri, 0, reason, None)
                    return
            wanted = self.columns if self.columns is not None else names
            extras = [c for c in wanted if c not in (text_field, self.id_field)]
            read = [text_field] if text_field is not None else []
            read += [c for c in [self.id_field, *extras] if c in names]
            read = list(dict.fromkeys(read))
            if text_field is not None:
                text_type = pf.schema_arrow.field(text_field).type
                if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
                    why = f"column {text_field!r} is {text_type}, expected strings"
                    reason = f"{uri}: line 0: {why}"
                    yield self._bad_only(uri, 0, reason, None)
                    return
            offset = 0
            rows_per_batch = 65536
            for batch in pf.iter_batches(batch_size=rows_per_batch, columns=read):
                numbers = pa.array(range(offset + 1, offset + 1 + batch.num_rows), pa.int64())
                offset += batch.num_rows
                table = pa.Table.from_batches([batch])
                reasons: dict[int, str] = {}
                valid = None
                for field, why in checks:
                    ok = pc.is_valid(table.column(field))
                    for n in pc.filter(numbers, pc.invert(ok)).to_pylist():
                        reasons.setdefault(n, why)
                    valid = ok if valid is None else pc.and_(valid, ok)
                bad = [(n, why, None) for n, why in sorted(reasons.items())]
                if bad:
                    table = table.filter(valid)
                    numbers = pc.filter(numbers, valid)
                quarantine = self._quarantine(uri, bad)
                text = (
                    table.column(text_field).cast(pa.string()) if text_field is not None else None
                )
                ids = table.column(self.id_field) if self.id_field in table.column_names else None
                columns = {
                    c: (table.column(c) if c in table.column_names else pa.nulls(table.num_rows))
                    for c in extras
                }
                yield ReadResult(_assemble(shard, text, ids, numbers, columns), quarantine)

    # -- quarantine ----------------------------------------------------------------------

    def _quarantine(self, uri: str, bad: list[tuple[int, str, bytes | None]]) -> pa.Table:
        if bad and self.strict:
            n, why, _ = bad[0]
            raise InputError(f"{uri}: line {n}: {why}")
        return pa.table(
            {
                "source": pa.array([uri] * len(bad), pa.string()),
                "line": pa.array([b[0] for b in bad], pa.int64()),
                "reason": pa.array([f"{uri}: line {b[0]}: {b[1]}" for b in bad], pa.string()),
                "raw": pa.array([_raw_text(b[2]) for b in bad], pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )

    def _bad_only(self, uri: str, line: int, reason: str, raw: str | None) -> ReadResult:
        if self.strict:
            raise InputError(reason)
        quarantine = pa.table(
            {"source": [uri], "line": [line], "reason": [reason], "raw": [raw]},
            schema=QUARANTINE_SCHEMA,
        )
        return ReadResult(_empty_rows(self.text_field is not None), quarantine)


# -- byte sources ------------------------------------------------------------------------


def _plain_chunks(f, start: int, end: int | None) -> Iterator[bytes]:
    """Bytes of every line starting in `[start, end)`, the last one read to its newline."""
    rest = b""
    pos = 0
    if start > 0:
        # The first owned line follows the first newline at or after byte start - 1.
        f.seek(start - 1)
        pos = start - 1
        while True:
            probe = f.read(_PROBE)
            if not probe:
                return
            i = probe.find(b"\n")
            if i >= 0:
                pos += i + 1
                rest = probe[i + 1 :]
                break
            pos += len(probe)
    if end is None:
        if rest:
            yield rest
        while chunk := f.read(_CHUNK):
            yield chunk
        return
    last = b"\n"
    while pos < end:
        if rest:
            chunk, rest = rest, b""
        else:
            chunk = f.read(min(_CHUNK, end - pos))
            if not chunk:
                return
        if pos + len(chunk) <= end:
            yield chunk
            pos += len(chunk)
            last = chunk[-1:]
            continue
        inside, over = chunk[: end - pos], chunk[end - pos :]
        if inside:
            yield inside
            last = inside[-1:]
        if last == b"\n":
            return
        i = over.find(b"\n")
        if i >= 0:
            yield over[: i + 1]
            return
        yield over
        break
    if last == b"\n":
        return
    # Finish the line that crosses `end`.
    while probe := f.read(_PROBE):
        i = probe.find(b"\n")
        if i >= 0:
            yield probe[: i + 1]
            return
        yield probe


def _gzip_chunks(f) -> Iterator[bytes]:
    return _decoded_chunks(f, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), zlib.error)


def _zstd_chunks(f) -> Iterator[bytes]:
    dctx = zstandard.ZstdDecompressor()
    return _decoded_chunks(f, dctx.decompressobj, zstandard.ZstdError)


def _decoded_chunks(f, new_decoder, error: type[Exception]) -> Iterator[bytes]:
    """Decompressed bytes of a stream of one or more members (gzip) or frames (zstd).

    Everything decoded before damage is yielded first; then `_Damaged` is raised: with no
    detail when the input ends inside a member, with the decoder's message when corrupt.
    """
    decoder = new_decoder()
    inside = False
    while raw := f.read(_CHUNK // 4):
        while raw:
            if not inside and not raw.strip(b"\0"):
                break  # zero padding after the last member, as `gzip` writes on tapes
            try:
                out = decoder.decompress(raw)
            except error as err:
                raise _Damaged(str(err)) from None
            inside = True
            if out:
                yield out
            if decoder.eof:
                raw = decoder.unused_data
                decoder = new_decoder()
                inside = False
            else:
                raw = b""
    if inside:
        raise _Damaged()


# -- table assembly ----------------------------------------------------------------------


def _assemble(shard: Shard, text, ids, numbers, extras: dict) -> pa.Table:
    """The output table: id, text, source, _order, then the extra fields (no text column
    when `text` is None)."""
    n = len(numbers)
    numbers = pa.array(numbers, pa.int64()) if isinstance(numbers, list) else numbers
    prefix = _id_prefix(shard.uri)
    if ids is None:
        id_array = pc.binary_join_element_wise(prefix, numbers.cast(pa.string()), "-")
    elif isinstance(ids, list):
        id_array = pa.array(
            [
                (v if type(v) is str else _id_string(v)) if v is not None else f"{prefix}-{k}"
                for v, k in zip(ids, numbers.to_pylist(), strict=True)
            ],
            pa.string(),
        )
    else:
        as_text = ids.cast(pa.string()) if not pa.types.is_string(ids.type) else ids
        generated = pc.binary_join_element_wise(prefix, numbers.cast(pa.string()), "-")
        id_array = pc.if_else(pc.is_valid(as_text), as_text, generated)
    order = pc.add(numbers, pa.scalar(shard.file_index << 32, pa.int64()))
    columns = {"id": id_array}
    if text is not None:
        columns["text"] = pa.array(text, pa.string()) if isinstance(text, list) else text
    columns["source"] = pa.array([shard.uri] * n, pa.string())
    columns["_order"] = order
    for key, values in extras.items():
        name = key
        while name in columns:
            name = f"input_{name}"
        columns[name] = values
    return pa.table(columns)


def _has_timestamp(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return True
    return any(_has_timestamp(t.field(i).type) for i in range(t.num_fields))


def _to_arrow(values: list) -> pa.Array:
    """An Arrow array for one JSON field; mixed types fall back to JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
        )


def _concat(tables: list[pa.Table], with_text: bool = True) -> pa.Table:
    if not tables:
        return _empty_rows(with_text)
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A field typed differently in two batches: keep it as JSON text everywhere.
        types: dict[str, set] = {}
        for t in tables:
            for field in t.schema:
                types.setdefault(field.name, set()).add(field.type)
        mixed = {name for name, ts in types.items() if len(ts - {pa.null()}) > 1}
        fixed = []
        for t in tables:
            for name in mixed & set(t.column_names):
                values = t.column(name).to_pylist()
                t = t.set_column(
                    t.schema.get_field_index(name),
                    name,
                    pa.array(
                        [None if v is None else orjson.dumps(v).decode() for v in values],
                        pa.string(),
                    ),
                )
            fixed.append(t)
        return pa.concat_tables(fixed, promote_options="permissive")


def _empty_rows(with_text: bool = True) -> pa.Table:
    columns = {"id": pa.array([], pa.string())}
    if with_text:
        columns["text"] = pa.array([], pa.string())
    columns["source"] = pa.array([], pa.string())
    columns["_order"] = pa.array([], pa.int64())
    return pa.table(columns)


def _id_prefix(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    found = detect_format(name)
    stem = name
    if found:
        lower = name.lower()
        for ext in (".jsonl", ".json", ".ndjson", ".parquet"):
            i = lower.find(ext)
            if i > 0:
                stem = name[:i]
                break
    return f"{stem}-{xxhash.xxh64_hexdigest(uri.encode())[:8]}"


def _id_string(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _why_unparsable(raw: bytes, err: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {err}"


def _json_kind(value) -> str:
    if value is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _raw_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw[: _RAW_CHARS * 4].decode("utf-8", "replace")[:_RAW_CHARS]


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()
