"""LSH banding: documents that share a bucket in any band become candidate duplicates.

`band_buckets` explodes each document's `_bands` (from `MinhashDedupSignature`) into one
row per band; a flow partitions those rows by `bucket` so that every row of a bucket lands
in the same partition, and `bucket_edges` then links, per partition, every member of a
bucket to the bucket's first document (smallest `_order`). The connected components of
those edges (`stages.dedup.components`) are the duplicate clusters.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Resources, Stage
from stages.dedup.minhash import BANDS_COLUMN

ORDER_COLUMN = "_order"

BUCKETS_SCHEMA = pa.schema(
    [("band", pa.int32()), ("bucket", pa.uint64()), (ORDER_COLUMN, pa.int64())]
)
EDGES_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64())])


def band_buckets(table: pa.Table) -> pa.Table:
    """One row per (document, band): `band` (int32), `bucket` (uint64, the band's hash),
    `_order` (int64, the document's global key), in document then band order.

    `table` has `_order` and `_bands` (fixed_size_list<uint64>). Rows whose `_bands` is
    null are skipped.
    """
    missing = [c for c in (ORDER_COLUMN, BANDS_COLUMN) if c not in table.column_names]
    if missing:
        raise KeyError(f"band_buckets: input has no column(s) {missing}")
    if table.num_rows == 0:
        return BUCKETS_SCHEMA.empty_table()
    bands = table.column(BANDS_COLUMN).combine_chunks()
    order = table.column(ORDER_COLUMN).to_numpy().astype(np.int64)
    if bands.null_count:
        valid = bands.is_valid().to_numpy(zero_copy_only=False)
        bands, order = bands.filter(pa.array(valid)), order[valid]
    if pa.types.is_fixed_size_list(bands.type):
        num_bands = bands.type.list_size
    else:  # a plain list column (e.g. after a round trip through another engine)
        lengths = np.unique(pc.list_value_length(bands).to_numpy(zero_copy_only=False))
        if lengths.size > 1:
            raise ValueError(f"band_buckets: rows have different numbers of bands {lengths}")
        num_bands = int(lengths[0]) if lengths.size else 0
    values = bands.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    return pa.table(
        {
            "band": pa.array(np.tile(np.arange(num_bands, dtype=np.int32), len(order))),
            "bucket": pa.array(values, pa.uint64()),
            ORDER_COLUMN: pa.array(np.repeat(order, num_bands), pa.int64()),
        },
        schema=BUCKETS_SCHEMA,
    )


def bucket_edges(buckets: pa.Table) -> pa.Table:
    """Edges between the documents of one partition of `band_buckets` rows.

    For every (band, bucket) holding at least two distinct documents, each member is
    linked to the member with the smallest `_order` (a star, not all pairs): `src` is that
    smallest `_order`, `dst` the other member, so `src < dst`. Edges are distinct and
    sorted by (src, dst); the result does not depend on the row order of `buckets`.
    Every row of a bucket must be in `buckets` (the flow partitions by bucket).
    """
    missing = [c for c in ("band", "bucket", ORDER_COLUMN) if c not in buckets.column_names]
    if missing:
        raise KeyError(f"bucket_edges: input has no column(s) {missing}")
    if buckets.num_rows == 0:
        return EDGES_SCHEMA.empty_table()
    frame = pl.from_arrow(buckets.select(["band", "bucket", ORDER_COLUMN]))
    edges = (
        frame.with_columns(
            pl.col(ORDER_COLUMN).cast(pl.Int64),
            pl.col(ORDER_COLUMN).min().over(["band", "bucket"]).cast(pl.Int64).alias("src"),
        )
        .filter(pl.col(ORDER_COLUMN) != pl.col("src"))
        .select(pl.col("src"), pl.col(ORDER_COLUMN).alias("dst"))
        .unique()
        .sort(["src", "dst"])
    )
    return edges.to_arrow().cast(EDGES_SCHEMA)


class MinhashDedupBuckets(Stage):
    """`band_buckets` as a stage: documents with `_order` and `_bands` in, one row per
    (document, band) out."""

    nemo_equivalent: ClassVar[str] = "LSHStage"
    datatrove_equivalent: ClassVar[str] = "MinhashDedupBuckets"

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def process(self, batch: pa.Table) -> pa.Table:
        return band_buckets(batch)
