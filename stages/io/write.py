"""Writers: Parquet (zstd), JSONL and tar archives, atomic on local disks and object stores.

Columns whose name starts with `_` (internal bookkeeping such as `_order`) are dropped.
A writer never leaves a partial file under the target URI.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from stages.io.fs import write_bytes_atomic


def public_columns(table: pa.Table) -> pa.Table:
    """`table` without its `_`-prefixed columns."""
    hidden = [name for name in table.column_names if name.startswith("_")]
    return table.drop_columns(hidden) if hidden else table


def parquet_bytes(table: pa.Table, compression_level: int = 3) -> bytes:
    """`table` (public columns) encoded as one zstd-compressed Parquet file."""
    buffer = io.BytesIO()
    pq.write_table(
        public_columns(table),
        buffer,
        compression="zstd",
        compression_level=compression_level,
        row_group_size=64 * 1024,
    )
    return buffer.getvalue()


def write_parquet(table: pa.Table, uri: str, storage_options: dict | None = None) -> int:
    """Write `table` to `uri` as zstd Parquet; returns the bytes written."""
    return write_bytes_atomic(uri, parquet_bytes(table), storage_options)


def jsonl_bytes(table: pa.Table) -> bytes:
    """`table` (public columns) as JSON lines, one object per row."""
    dumps = orjson.dumps
    rows = public_columns(table).to_pylist()
    return b"".join(dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)


def write_jsonl(table: pa.Table, uri: str, storage_options: dict | None = None) -> int:
    """Write `table` to `uri` as JSON lines: `.jsonl`, `.jsonl.gz` or `.jsonl.zst` by
    extension. Returns the bytes written."""
    data = jsonl_bytes(table)
    name = uri.lower()
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor(level=3).compress(data)
    return write_bytes_atomic(uri, data, storage_options)


def tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar archive of `(name, data)` members, sorted by name, with fixed headers (mtime 0,
    uid/gid 0, no owner names, mode 0o644): the same members always give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members, key=lambda member: member[0]):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
