"""Ids held by several rows of a dataset version: found, counted and sampled, never changed.

Readers turn an input id into a string (`7`, `"7"` and `7.0` are all `"7"`), so two input
rows can share an id; a flow keeps both rows and reports the id (`duplicate_ids`).

The check reads only the `id` column of the version's data files, twice: first a 64-bit
hash of every id (8 bytes of memory per row), then, of the rows whose hash is not unique,
the id itself and its `source`.
"""

from __future__ import annotations

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from stages.io.fs import filesystem

SAMPLE = 10  # ids listed in a report, the smallest first
SOURCES = 3  # sources listed per sampled id


def duplicate_ids(
    uris: list[str], storage_options: dict | None = None, sample: int = SAMPLE
) -> dict:
    """`{"ids": ids held by more than one row, "rows": the rows holding them, "sample":
    [{"id", "rows", "sources"}]}` over the Parquet and JSONL data files `uris` (files
    without an `id` column, and other kinds of files, are left out)."""
    hashes = [_hash(_column(uri, "id", storage_options)) for uri in uris]
    if not hashes:
        return {"ids": 0, "rows": 0, "sample": []}
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    shared = values[counts > 1]
    found: dict[str, list] = {}  # id -> [rows, sources]
    if shared.size:
        for uri, hashed in zip(uris, hashes, strict=True):
            where = np.flatnonzero(np.isin(hashed, shared))
            if not where.size:
                continue
            ids = _column(uri, "id", storage_options).take(where).to_pylist()
            sources = _column(uri, "source", storage_options)
            sources = sources.take(where).to_pylist() if len(sources) else [None] * len(ids)
            for row_id, source in zip(ids, sources, strict=True):
                entry = found.setdefault(row_id, [0, []])
                entry[0] += 1
                if source is not None and source not in entry[1] and len(entry[1]) < SOURCES:
                    entry[1].append(source)
    shared_ids = sorted(i for i, (rows, _) in found.items() if rows > 1 and i is not None)
    return {
        "ids": len(shared_ids),
        "rows": sum(found[i][0] for i in shared_ids),
        "sample": [
            {"id": i, "rows": found[i][0], "sources": found[i][1]} for i in shared_ids[:sample]
        ],
    }


def _hash(ids: pa.Array) -> np.ndarray:
    if not len(ids):
        return np.empty(0, np.uint64)
    return pl.Series(ids.cast(pa.string())).hash(seed=0).to_numpy()


def _column(uri: str, name: str, storage_options: dict | None) -> pa.Array:
    """One column of a data file as strings (empty when the file has no such column)."""
    fs, path = filesystem(uri, storage_options)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            if name not in parquet.schema_arrow.names:
                return pa.array([], pa.string())
            column = parquet.read(columns=[name]).column(name)
    elif lower.endswith(".jsonl"):
        with fs.open(path, "rb") as f:
            values = [orjson.loads(line).get(name) for line in f if line.strip()]
        if all(v is None for v in values):
            return pa.array([], pa.string())
        column = pa.array([None if v is None else str(v) for v in values], pa.string())
    else:
        return pa.array([], pa.string())
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column.cast(pa.string())
