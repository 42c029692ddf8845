"""Quarantine records: one row per bad input, never a silent drop.

Columns: `source` (the input URI at fault: a JSONL file, a tar, a media file), `line`
(where in it: a line number for JSONL and manifests, a row number for Parquet, a sample
number for WebDataset, 0 for the whole file), `reason` (a message that starts with the
source and the place, e.g. `f"{uri}: line {n}: ..."` or `f"{uri}: member {name}: ..."`)
and `raw` (the original bytes of the bad input, at most `RAW_BYTES`, or null).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [("source", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("raw", pa.binary())]
)
RAW_BYTES = 4000

Record = tuple[str, int, str, bytes | None]
"""`(source, line, reason, raw)` of one quarantined input."""


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def quarantine_table(records: Sequence[Record]) -> pa.Table:
    """The quarantine table of `records`; `raw` is cut to `RAW_BYTES`."""
    return pa.table(
        {
            "source": pa.array([r[0] for r in records], pa.string()),
            "line": pa.array([r[1] for r in records], pa.int64()),
            "reason": pa.array([r[2] for r in records], pa.string()),
            "raw": pa.array(
                [None if r[3] is None else bytes(r[3][:RAW_BYTES]) for r in records], pa.binary()
            ),
        },
        schema=QUARANTINE_SCHEMA,
    )
