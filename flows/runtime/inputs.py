"""What planning can tell about an input's columns before any work: Parquet schemas and
the fields of a JSONL file's first rows, so that a parameter naming a column the input
lacks is an error at once, not a quarantine of every row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from flows.runtime.storage import storage_options
from stages.io.fs import filesystem
from stages.io.shards import Shard


def require_columns(wanted: dict[str, str], names, uri: str) -> None:
    for field, name in wanted.items():
        if name not in names:
            have = ", ".join(sorted(names)[:12]) or "none"
            raise ValueError(f"{uri} has no column {name!r} (the {field}); it has: {have}")


def parquet_schema(uri: str) -> pa.Schema | None:
    fs, path = filesystem(uri, storage_options())
    try:
        with fs.open(path, "rb") as f:
            return pq.read_schema(f)
    except (pa.ArrowException, OSError):
        return None


SAMPLED_LINES = 20


def first_keys(uri: str) -> set[str]:
    """The fields of the first JSON objects of a JSONL file (plain, gzip or zstd); empty
    when none parses (the reader then quarantines the lines with their reasons)."""
    import orjson

    from stages.io.formats.lines import LineBlocks, split_lines

    keys: set[str] = set()
    seen = 0
    shard = Shard(uri=uri, file_index=0)
    try:
        for block, *_ in LineBlocks(shard, storage_options(), block_bytes=64 << 10):
            for line in split_lines(block):
                try:
                    row = orjson.loads(line) if line.strip() else None
                except orjson.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    keys.update(row)
                    seen += 1
                if seen >= SAMPLED_LINES:
                    return keys
    except OSError:
        pass
    return keys
