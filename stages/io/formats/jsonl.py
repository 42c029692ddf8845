"""JSON lines (`.jsonl`, `.json`, `.ndjson`, plain, gzip or zstd): one row per line.

Rows: `id`, `text` (unless `text_field=None`), `source`, `_order` (`file_index << 32 |
line`), then the other fields. Each bad line is a quarantine record naming its file and
line, with the line's bytes and its byte offset and length in the (decompressed) stream; a
damaged compressed stream keeps the lines before the damage. A leading UTF-8 BOM is not
part of the first line; blank lines are no rows but are counted (`ReadResult.blank_lines`).
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from stages.io.formats.base import Format, one_required_field
from stages.io.formats.lines import LineBlocks, split_lines
from stages.io.quarantine import empty_quarantine
from stages.io.rows import ReadResult, assemble, json_kind, to_arrow

_JSON_BLOCK = 4 << 20
_MISSING = object()
_BOM = b"\xef\xbb\xbf"


class JsonlFormat(Format):
    name = "jsonl"
    extensions = tuple(
        base + comp for base in (".jsonl", ".json", ".ndjson") for comp in ("", ".gz", ".zst")
    )
    splittable = True

    def read(self, shard, reader) -> Iterator[ReadResult]:
        one_required_field(shard, reader)
        blocks = LineBlocks(shard, reader.storage_options, reader.batch_bytes)
        for block, first_line, offset in blocks:
            yield self.parse(block, first_line, shard, reader, offset)
        if blocks.problem is not None:
            line, why, raw, offset = blocks.problem
            reason = f"{shard.uri}: line {line}: {why}"
            where = {"offset": offset, "length": len(raw)} if raw is not None else {}
            yield reader.bad_only(shard.uri, line, reason, raw, **where)

    def parse(self, block: bytes, first_line: int, shard, reader, offset: int = 0) -> ReadResult:
        """Rows of a block of whole lines starting at byte `offset`; bad lines go to
        quarantine (with their offset and length), blank lines are counted."""
        lines = split_lines(block)
        fast = self.parse_clean(block, len(lines), first_line, shard, reader)
        if fast is not None:
            return ReadResult(fast, empty_quarantine())
        loads = orjson.loads
        text_field = reader.text_field
        required = reader.required_field
        objs: list[dict] = []
        numbers: list[int] = []
        bad: list[tuple[int, str, bytes, int, int]] = []
        blank = 0
        n = first_line
        pos = offset
        for raw in lines:
            at, pos = pos, pos + len(raw) + 1
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError as err:
                if raw.strip():
                    bad.append((n, why_unparsable(raw, err), raw, at, len(raw)))
                else:
                    blank += 1
                n += 1
                continue
            why = None
            if type(obj) is dict:
                text = obj.get(text_field, _MISSING) if text_field is not None else ""
                value = obj.get(required, _MISSING) if required is not None else ""
                if type(text) is not str:
                    if text is _MISSING:
                        why = f"missing field {text_field!r}"
                    else:
                        why = f"field {text_field!r} is {json_kind(text)}, expected a string"
                elif value is _MISSING:
                    why = f"missing field {required!r}"
                elif value is None:
                    why = f"field {required!r} is null"
                else:
                    objs.append(obj)
                    numbers.append(n)
            else:
                why = f"expected a JSON object, got {json_kind(obj)}"
            if why is not None:
                bad.append((n, why, raw, at, len(raw)))
            n += 1
        quarantine = reader.line_quarantine(shard.uri, bad)
        return ReadResult(self.table(objs, numbers, shard, reader), quarantine, blank)

    def parse_clean(self, block: bytes, n_lines: int, first_line: int, shard, reader):
        """The fast path: Arrow's multi-threaded JSON reader on a block of clean lines.

        Returns None (so the per-line parser runs and pinpoints the bad lines) unless every
        line is a JSON object with a string text field (and a non-null required field) and
        no line is blank. Blocks whose schema holds a type the per-line parser would not
        produce (Arrow infers timestamps from date-like strings) also take the per-line
        path, so both give the same table.
        """
        if block.startswith(_BOM):
            return None  # Arrow skips a BOM; inside a file (past byte 0) it is no BOM
        try:
            table = pa_json.read_json(
                pa.BufferReader(block),
                read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK),
                parse_options=pa_json.ParseOptions(newlines_in_values=False),
            )
            table.validate(full=True)  # Arrow's JSON reader does not check UTF-8 itself
        except (pa.ArrowException, ValueError):
            return None
        text_field = reader.text_field
        names = table.column_names
        if table.num_rows != n_lines or any(_has_timestamp(field.type) for field in table.schema):
            return None
        if text_field is not None and (
            text_field not in names
            or not pa.types.is_string(table.schema.field(text_field).type)
            or table.column(text_field).null_count
        ):
            return None
        required = reader.required_field
        if required is not None and (
            required not in names
            or pa.types.is_null(table.schema.field(required).type)
            or table.column(required).null_count
        ):
            return None
        if reader.columns is not None:
            keys = [c for c in reader.columns if c not in (text_field, reader.id_field)]
        else:
            keys = [k for k in names if k not in (text_field, reader.id_field)]
        extras = {k: (table.column(k) if k in names else pa.nulls(table.num_rows)) for k in keys}
        ids = table.column(reader.id_field) if reader.id_field in names else None
        if ids is not None and not (
            pa.types.is_string(ids.type)
            or pa.types.is_integer(ids.type)
            or pa.types.is_null(ids.type)
        ):
            return None  # the per-line path formats float and nested ids
        numbers = pa.array(range(first_line, first_line + n_lines), pa.int64())
        text = table.column(text_field) if text_field is not None else None
        return assemble(shard, text, ids, numbers, extras)

    def table(self, objs: list[dict], numbers: list[int], shard, reader) -> pa.Table:
        """Rows of parsed JSON objects (the per-line path)."""
        text_field, id_field = reader.text_field, reader.id_field
        text = [o[text_field] for o in objs] if text_field is not None else None
        ids = [o.get(id_field) for o in objs]
        keys = object_keys(objs, reader.columns, (text_field, id_field))
        extras = {k: to_arrow([o.get(k) for o in objs]) for k in keys}
        return assemble(shard, text, ids, numbers, extras)


def object_keys(objs: list[dict], columns: list[str] | None, skip: tuple) -> list[str]:
    """The fields to keep: `columns` when given, else every key in first-seen order."""
    if columns is not None:
        return [c for c in columns if c not in skip]
    seen: dict[str, None] = {}
    previous = None
    for o in objs:
        ks = o.keys()
        if ks != previous:
            seen.update(dict.fromkeys(ks))
            previous = ks
    return [k for k in seen if k not in skip]


def why_unparsable(raw: bytes, err: Exception) -> str:
    """Why a line is not JSON: bad UTF-8 (with the byte), else the parser's message."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {err}"


def _has_timestamp(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return True
    return any(_has_timestamp(t.field(i).type) for i in range(t.num_fields))
