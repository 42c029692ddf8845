"""Quarantine records: one row per bad input, never a silent drop.

Columns:

- `source`: the input URI at fault (a JSONL file, a tar, a media file);
- `line`: where in it: a line number for JSONL and manifests, a row number for Parquet, a
  sample number for WebDataset, 0 for the whole file;
- `reason`: a message that starts with the source and the place, e.g.
  `f"{uri}: line {n}: ..."` or `f"{uri}: member {name}: ..."`;
- `raw`: the original bytes of the bad input, whole up to `RAW_BYTES` (1 MB), else its
  first `RAW_BYTES`; null when the reader has none (a Parquet row, a whole file);
- `rows`: the input rows the record stands for: 1 for a line, row or sample; for a whole
  Parquet file that cannot be read, the rows its footer declares (1 when even the footer
  is unreadable);
- `offset`, `length`: where the raw bytes lie in `source`, when the reader knows it (a
  JSONL line: its byte offset in the decompressed stream, a leading BOM included, and its
  length without the newline; a tar member: its data's offset in the tar), so an input
  larger than `RAW_BYTES` can be read back whole: `source[offset : offset + length]`.

The quarantine table of a whole shard (`ShardReader.read`) also carries, in its schema
metadata, how many blank lines the reader skipped (`blank_lines`): a blank line is not a
row, but is counted, and the count travels with the shard's quarantine to its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.binary()),
        ("rows", pa.int64()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
    ]
)
RAW_BYTES = 1 << 20
BLANK_LINES_KEY = b"curate.blank_lines"


class Record(NamedTuple):
    """One quarantined input; a plain `(source, line, reason, raw)` tuple is one too."""

    source: str
    line: int
    reason: str
    raw: bytes | None
    rows: int = 1
    offset: int | None = None
    length: int | None = None


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def quarantine_table(records: Sequence[Record | tuple]) -> pa.Table:
    """The quarantine table of `records`; `raw` is cut to `RAW_BYTES`."""
    records = [r if isinstance(r, Record) else Record(*r) for r in records]
    return pa.table(
        {
            "source": pa.array([r.source for r in records], pa.string()),
            "line": pa.array([r.line for r in records], pa.int64()),
            "reason": pa.array([r.reason for r in records], pa.string()),
            "raw": pa.array(
                [None if r.raw is None else bytes(r.raw[:RAW_BYTES]) for r in records],
                pa.binary(),
            ),
            "rows": pa.array([r.rows for r in records], pa.int64()),
            "offset": pa.array([r.offset for r in records], pa.int64()),
            "length": pa.array([r.length for r in records], pa.int64()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def quarantine_counts(table: pa.Table) -> tuple[int, int]:
    """(input rows, records) of a quarantine table; a table without a `rows` column (an
    older version's) counts one row per record."""
    if table.num_rows and "rows" in table.column_names:
        return int(pc.sum(pc.fill_null(table.column("rows"), 1)).as_py()), table.num_rows
    return table.num_rows, table.num_rows


def with_blank_lines(table: pa.Table, count: int) -> pa.Table:
    """`table` carrying `count` blank lines in its schema metadata."""
    metadata = dict(table.schema.metadata or {})
    metadata[BLANK_LINES_KEY] = str(count).encode()
    return table.replace_schema_metadata(metadata)


def blank_lines(table: pa.Table) -> int:
    """The blank lines a quarantine table carries (0 when none were counted)."""
    return int((table.schema.metadata or {}).get(BLANK_LINES_KEY, b"0"))


class RowPlaces:
    """Where each row of a batch came from, for the quarantine records a `Validator`
    writes: `source`, `line` (the sample number in `_order`) and a reason that names
    both and the row's id."""

    def __init__(self, batch: pa.Table):
        def column(name):
            return batch.column(name).to_pylist() if name in batch.column_names else None

        self.sources = column("source")
        self.orders = column("_order")
        self.ids = column("id")

    def source(self, i: int) -> str:
        value = self.sources[i] if self.sources else None
        return "" if value is None else str(value)

    def line(self, i: int) -> int:
        order = self.orders[i] if self.orders else None
        return 0 if order is None else int(order) & 0xFFFFFFFF

    def reason(self, i: int, why: str) -> str:
        row_id = self.ids[i] if self.ids else None
        return f"{self.source(i)}: line {self.line(i)}: id {row_id!r}: {why}"
