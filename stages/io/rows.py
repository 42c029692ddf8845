"""The tables readers produce: `ReadResult`, and the columns every reader adds.

Every row has `id` (a stable string), `source` (the input URI it came from) and `_order`
(a global, deterministic position: `file_index << 32 | record number in the shard`).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

RESERVED = ("id", "text", "source", "_order")
_STEM_EXTENSIONS = (".jsonl", ".json", ".ndjson", ".parquet")


@dataclass
class ReadResult:
    """Rows read from a shard, one quarantine record per bad input, and the blank lines
    skipped (not rows, but counted)."""

    table: pa.Table
    quarantine: pa.Table
    blank_lines: int = 0

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def assemble(shard, text, ids, numbers, extras: dict) -> pa.Table:
    """The output table: id, text, source, _order, then the extra fields (no text column
    when `text` is None). `ids` missing or null get `<file stem>-<hash of uri>-<number>`;
    an extra field named like an earlier column is kept as `input_<name>`."""
    n = len(numbers)
    numbers = pa.array(numbers, pa.int64()) if isinstance(numbers, list) else numbers
    prefix = id_prefix(shard.uri)
    if ids is None:
        id_array = pc.binary_join_element_wise(prefix, numbers.cast(pa.string()), "-")
    elif isinstance(ids, list):
        id_array = pa.array(
            [
                (v if type(v) is str else id_string(v)) if v is not None else f"{prefix}-{k}"
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


def to_arrow(values: list) -> pa.Array:
    """An Arrow array for one JSON field; mixed types fall back to JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
        )


def concat_rows(tables: list[pa.Table], with_text: bool = True) -> pa.Table:
    """Batches of one shard as one table; columns missing from a batch are null there, and
    a field typed differently in two batches is kept as JSON text everywhere."""
    if not tables:
        return empty_rows(with_text)
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
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


def empty_rows(with_text: bool = True) -> pa.Table:
    columns = {"id": pa.array([], pa.string())}
    if with_text:
        columns["text"] = pa.array([], pa.string())
    columns["source"] = pa.array([], pa.string())
    columns["_order"] = pa.array([], pa.int64())
    return pa.table(columns)


def id_prefix(uri: str) -> str:
    """`<file stem>-<8 hex digits of the URI's hash>`: the prefix of generated ids."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    stem = name
    lower = name.lower()
    for ext in _STEM_EXTENSIONS:
        i = lower.find(ext)
        if i > 0:
            stem = name[:i]
            break
    return f"{stem}-{xxhash.xxh64_hexdigest(uri.encode())[:8]}"


def id_string(value) -> str:
    """An id field's value as a string: integral floats without `.0`, JSON for nested."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def json_kind(value) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def locate(shards, orders: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Where rows came from, by their `_order` and the plan's `shards`: (source, line),
    the input file and the row's line, row or sample number in it (0 for a media file of a
    `files` shard, which is the whole file); a null source when no shard holds the row."""
    first: dict[int, object] = {}
    for shard in shards:
        first.setdefault(shard.file_index, shard)
    sources, lines = [], []
    for order in orders.to_pylist():
        index, number = order >> 32, order & 0xFFFFFFFF
        shard = first.get(index)
        if shard is None:
            sources.append(None)
            lines.append(number)
        elif shard.members:
            uris = shard.uris
            sources.append(uris[number - 1] if 0 < number <= len(uris) else None)
            lines.append(0)
        else:
            sources.append(shard.uri)
            lines.append(number)
    return pa.array(sources, pa.string()), pa.array(lines, pa.int64())
