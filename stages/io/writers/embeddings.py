"""Embeddings apart from the data: a writer that wraps another and writes a shard's
embedding column as `embeddings/part-<shard>-0.parquet` (`id`, `embedding`), for
downstream use (search, clustering, re-deduplication) without the media bytes, and keeps it
out of the wrapped writer's files (a 768-float list in every sample's `.json` would make
the metadata larger than many images).

The file's manifest entry has `"rows": 0` and `"side": "embeddings"`: its rows are the
shard's samples, counted by the data files, and `dataset_files` leaves side files out, so a
dataset read as input yields its samples, not its embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from stages.io.commit import VersionWriter
from stages.io.write import parquet_bytes
from stages.io.writers.base import DatasetWriter, write_file

EMBEDDINGS_DIR = "embeddings"


@dataclass(frozen=True)
class EmbeddingsApart(DatasetWriter):
    """`inner` writes the rows without `column`; this writes `id` and `column` apart."""

    inner: DatasetWriter
    column: str = "embedding"
    name = "embeddings"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if self.column not in table.column_names or table.num_rows == 0:
            return self.inner.write_shard(version, shard, table)
        files = self.inner.write_shard(version, shard, table.drop_columns([self.column]))
        apart = table.select(["id", self.column])
        path = f"{EMBEDDINGS_DIR}/{version.part_path(shard.key, 0, 'parquet')}"
        size = write_file(version, path, parquet_bytes(apart))
        return [*files, {"path": path, "rows": 0, "bytes": size, "side": "embeddings"}]
