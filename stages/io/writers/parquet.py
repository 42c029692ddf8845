"""Parquet: one zstd Parquet file per shard, the default output of every flow."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from stages.io.commit import VersionWriter
from stages.io.writers.base import DatasetWriter


@dataclass(frozen=True)
class ParquetWriter(DatasetWriter):
    """Writes a shard as `part-<shard>-0.parquet`: every public column, media bytes
    included."""

    name = "parquet"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if table.num_rows == 0:
            return []
        return [version.write_part(shard.key, table)]
