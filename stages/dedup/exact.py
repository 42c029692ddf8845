"""Exact deduplication: hash every document, then keep the first of each hash group.

Two steps, as in NeMo Curator's exact dedup (md5 of the raw text):

1. `ExactDedupHash` (per batch, stateless) adds `_hash` (hex md5 of the text, or of the
   bytes of a binary column: an image, an audio clip) and
   `_partition` (a hash partition, so rows with the same hash meet in one partition).
2. `select_exact_duplicates` (per partition, after the flow has gathered each partition's
   `id`, `_hash` and a global input order `_order`) lists the rows to remove, each with the
   id of the row it duplicates: the survivor of a group is the earliest row in input order.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from stages.base import Resources, Stage, text_column

HASH_COLUMN = "_hash"
PARTITION_COLUMN = "_partition"
ORDER_COLUMN = "_order"

DUPLICATES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("duplicate_of", pa.string()),
        (HASH_COLUMN, pa.string()),
        (ORDER_COLUMN, pa.int64()),
    ]
)


class ExactDedupHash(Stage):
    """Add `_hash`, the hex md5 of the column `text_field` (null counts as empty), and
    `_partition` (int32 in `[0, num_partitions)`), the first 8 bytes of the digest as a
    big-endian integer modulo `num_partitions`: the same in every process and run.

    The column may hold text (hashed as its UTF-8 bytes) or bytes (`binary`,
    `large_binary`, `fixed_size_binary`: encoded images, audio), hashed as they are, so
    byte-identical media files are duplicates.

    By default the raw text is hashed, as NeMo Curator does, so texts that differ only in
    whitespace or case are distinct; `normalize=True` hashes the text lower-cased with
    whitespace runs collapsed to one space and the ends stripped, which makes them equal.
    (`TextCleaner` earlier in a pipeline already strips and collapses whitespace.) It has
    no effect on a binary column.
    """

    nemo_equivalent: ClassVar[str] = "ExactDuplicateIdentification"
    datatrove_equivalent: ClassVar[str] = "ExactDedupSignature"

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, text_field: str = "text", normalize: bool = False, num_partitions: int = 64):
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
        self.text_field = text_field
        self.normalize = normalize
        self.num_partitions = num_partitions

    def _texts(self, column: pa.ChunkedArray) -> list[str]:
        series = pl.Series(column.combine_chunks())
        series = series.cast(pl.String).fill_null("")
        if self.normalize:
            series = series.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
        return series.to_list()

    def _values(self, batch: pa.Table) -> list[bytes]:
        """The bytes hashed for each row."""
        if self.text_field in batch.column_names:
            column = batch.column(self.text_field)
            kind = column.type
            if (
                pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind)
                or pa.types.is_fixed_size_binary(kind)
            ):
                return [b or b"" for b in column.to_pylist()]
        column = text_column(batch, self.text_field, self.stage_name)
        return [t.encode("utf-8") for t in self._texts(column)]

    def process(self, batch: pa.Table) -> pa.Table:
        digests = [hashlib.md5(v).digest() for v in self._values(batch)]
        raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 16)
        prefix = raw[:, :8].copy().view(">u8").ravel()
        partition = (prefix % np.uint64(self.num_partitions)).astype(np.int32)
        batch = batch.drop_columns(
            [c for c in (HASH_COLUMN, PARTITION_COLUMN) if c in batch.column_names]
        )
        batch = batch.append_column(HASH_COLUMN, pa.array([d.hex() for d in digests], pa.string()))
        return batch.append_column(PARTITION_COLUMN, pa.array(partition, pa.int32()))


def select_exact_duplicates(table: pa.Table) -> pa.Table:
    """The rows of one hash partition to remove: `id`, `duplicate_of` (the survivor's id),
    `_hash`, `_order`, sorted by `_order`.

    `table` has `id`, `_hash` and `_order` (int64 global input order, smaller = earlier).
    Per `_hash` the survivor is the row with the smallest `_order` (ties broken by `id`),
    so the result does not depend on the row order of `table`.
    """
    missing = [c for c in ("id", HASH_COLUMN, ORDER_COLUMN) if c not in table.column_names]
    if missing:
        raise KeyError(f"select_exact_duplicates: input has no column(s) {missing}")
    if table.num_rows == 0:
        return DUPLICATES_SCHEMA.empty_table()
    frame = pl.from_arrow(table.select(["id", HASH_COLUMN, ORDER_COLUMN]))
    frame = frame.with_columns(
        pl.col("id").cast(pl.String),
        pl.col(HASH_COLUMN).cast(pl.String),
        pl.col(ORDER_COLUMN).cast(pl.Int64),
    )
    removed = (
        frame.sort([HASH_COLUMN, ORDER_COLUMN, "id"])
        .with_columns(
            pl.col("id").first().over(HASH_COLUMN).alias("duplicate_of"),
            pl.int_range(pl.len()).over(HASH_COLUMN).alias("_rank"),
        )
        .filter(pl.col("_rank") > 0)
        .sort([ORDER_COLUMN, "id"])
        .select(["id", "duplicate_of", HASH_COLUMN, ORDER_COLUMN])
    )
    return removed.to_arrow().cast(DUPLICATES_SCHEMA)
