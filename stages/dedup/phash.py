"""Near-duplicate images by perceptual hash: pairs whose 64-bit hashes (`phash`, from
`stages.image.phash.ImagePHash`) differ in at most `threshold` bits.

Candidates come from hash bands, never from all pairs: the 64 bits are cut into `bands`
runs of equal length, and only images that agree on a whole band are compared. Two hashes
within `bands - 1` bits of each other always agree on one band (pigeonhole), so with the
default 4 bands of 16 bits every pair within 3 bits is found; pairs farther apart are found
when their differing bits leave one band untouched, which is the common case for the small
edits (resizing, recompression, brightness) that make near-copies
(`benchmarks/phash_threshold.py` measures the recall).

1. `PHashBands` (per batch) adds `_phash`, the hash compared (a flat image's perceptual
   hash says nothing: its bytes are hashed instead), and `_bands`, its band values.
2. `phash_buckets` explodes them into one row per (image, band) with the hash, for a flow
   to partition by bucket, as `stages.dedup.lsh` does for MinHash bands.
3. `phash_edges` (per partition) links images with identical hashes (distance 0) and
   compares the distinct hashes that share a bucket, all pairs within each bucket (buckets
   are small: a 16-bit band splits a million images into about 65,000 of them), keeping
   the pairs within `threshold`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from stages.base import Resources, Stage

PHASH_COLUMN = "phash"
MATCHED = "_phash"  # the hash compared: the perceptual hash, or a flat image's bytes hash
BANDS_COLUMN = "_bands"
ORDER_COLUMN = "_order"
BITS = 64

PHASH_BUCKETS_SCHEMA = pa.schema(
    [
        ("band", pa.int32()),
        ("bucket", pa.uint64()),
        (ORDER_COLUMN, pa.int64()),
        (PHASH_COLUMN, pa.uint64()),
    ]
)
PHASH_EDGES_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("distance", pa.int8())])


def band_values(hashes: np.ndarray, bands: int) -> np.ndarray:
    """The `bands` band values of each 64-bit hash: shape (len(hashes), bands), uint64.
    Bands are consecutive runs of bits, most significant first; the last band takes the
    bits left over when 64 is not a multiple of `bands`."""
    if not 1 <= bands <= BITS:
        raise ValueError(f"bands must be between 1 and {BITS}, got {bands}")
    hashes = np.asarray(hashes, dtype=np.uint64)
    width = BITS // bands
    out = np.empty((len(hashes), bands), dtype=np.uint64)
    for band in range(bands):
        bits = width if band < bands - 1 else BITS - width * (bands - 1)
        shift = np.uint64(BITS - width * band - bits)
        mask = np.uint64((1 << bits) - 1)
        out[:, band] = (hashes >> shift) & mask
    return out


class PHashBands(Stage):
    """Add `_phash` (uint64), the hash compared, and `_bands` (fixed_size_list<uint64,
    bands>) its band values, from the hash column `column`. A null hash (an image that
    could not be hashed) gets null bands and is never a duplicate.

    A flat image (one colour, whatever the colour) has no structure for a perceptual hash
    to describe: its hash has at most one bit set, the same for every flat image. Such a
    row is compared by a 64-bit hash of its bytes in `bytes_column` instead, so copies of
    one file are still duplicates and a red square is not a duplicate of a blue one.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, column: str = PHASH_COLUMN, bands: int = 4, bytes_column: str = "image"):
        band_values(np.zeros(0, np.uint64), bands)  # validates `bands`
        self.column, self.bands, self.bytes_column = column, bands, bytes_column

    def process(self, batch: pa.Table) -> pa.Table:
        if self.column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.column!r} (a perceptual hash "
                "stage must run first)"
            )
        hashes = batch.column(self.column).combine_chunks()
        valid = hashes.is_valid().to_numpy(zero_copy_only=False)
        values = np.zeros(batch.num_rows, dtype=np.uint64)
        values[valid] = hashes.filter(pa.array(valid)).to_numpy().astype(np.uint64)
        flat = valid & (np.bitwise_count(values) <= 1)
        if flat.any() and self.bytes_column in batch.column_names:
            import xxhash

            data = batch.column(self.bytes_column).combine_chunks()
            for i in np.flatnonzero(flat).tolist():
                value = data[i].as_py()
                values[i] = xxhash.xxh3_64_intdigest(value) if value else values[i]
        bands = pa.FixedSizeListArray.from_arrays(
            pa.array(band_values(values, self.bands).ravel(), pa.uint64()),
            self.bands,
            mask=pa.array(~valid),
        )
        batch = batch.drop_columns([c for c in (BANDS_COLUMN, MATCHED) if c in batch.column_names])
        matched = pa.array(values, pa.uint64(), mask=~valid)
        return batch.append_column(MATCHED, matched).append_column(BANDS_COLUMN, bands)


def phash_buckets(table: pa.Table) -> pa.Table:
    """One row per (image, band) of `table` (`_order`, `_bands`, `phash`): `band`, `bucket`
    (the band's value), `_order`, `phash`. Rows with null bands are left out."""
    missing = [c for c in (ORDER_COLUMN, BANDS_COLUMN, PHASH_COLUMN) if c not in table.column_names]
    if missing:
        raise KeyError(f"phash_buckets: input has no column(s) {missing}")
    bands = table.column(BANDS_COLUMN).combine_chunks()
    valid = bands.is_valid().to_numpy(zero_copy_only=False)
    if not valid.any():
        return PHASH_BUCKETS_SCHEMA.empty_table()
    keep = pa.array(valid)
    bands = bands.filter(keep)
    order = table.column(ORDER_COLUMN).combine_chunks().filter(keep).to_numpy().astype(np.int64)
    hashes = table.column(PHASH_COLUMN).combine_chunks().filter(keep)
    hashes = hashes.to_numpy(zero_copy_only=False).astype(np.uint64)
    count = bands.type.list_size
    return pa.table(
        {
            "band": pa.array(np.tile(np.arange(count, dtype=np.int32), len(order))),
            "bucket": pa.array(bands.flatten().to_numpy().astype(np.uint64), pa.uint64()),
            ORDER_COLUMN: pa.array(np.repeat(order, count), pa.int64()),
            PHASH_COLUMN: pa.array(np.repeat(hashes, count), pa.uint64()),
        },
        schema=PHASH_BUCKETS_SCHEMA,
    )


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between the uint64 hashes `a[i]` and `b[i]`."""
    xor = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.bitwise_count(xor).astype(np.int8)


def phash_edges(buckets: pa.Table, threshold: int) -> pa.Table:
    """Near-duplicate pairs among the rows of one partition of `phash_buckets` (every row
    of a bucket must be in it): `src` < `dst` (`_order`s) and their `distance` (bits),
    distinct, sorted. Images with one hash are linked to the first of them (distance 0);
    distinct hashes sharing a bucket are compared pairwise, each by its first image."""
    if buckets.num_rows == 0:
        return PHASH_EDGES_SCHEMA.empty_table()
    frame = pl.from_arrow(buckets.select(["band", "bucket", ORDER_COLUMN, PHASH_COLUMN]))
    first = frame.group_by(PHASH_COLUMN).agg(pl.col(ORDER_COLUMN).min().alias("src"))
    same = (
        frame.select(ORDER_COLUMN, PHASH_COLUMN)
        .unique()
        .join(first, on=PHASH_COLUMN)
        .filter(pl.col(ORDER_COLUMN) != pl.col("src"))
        .select("src", pl.col(ORDER_COLUMN).alias("dst"), pl.lit(0, pl.Int8).alias("distance"))
    )
    distinct = (
        frame.join(first, on=PHASH_COLUMN).select("band", "bucket", PHASH_COLUMN, "src").unique()
    )
    distinct = distinct.filter(pl.len().over(["band", "bucket"]) > 1)
    pairs = (
        distinct.join(distinct, on=["band", "bucket"], suffix="_b")
        .filter(pl.col("src") < pl.col("src_b"))
        .select("src", "src_b", PHASH_COLUMN, f"{PHASH_COLUMN}_b")
        .unique(["src", "src_b"])
    )
    near = pl.DataFrame(
        schema={"src": pl.Int64, "dst": pl.Int64, "distance": pl.Int8},
    )
    if pairs.height:
        distance = hamming(pairs[PHASH_COLUMN].to_numpy(), pairs[f"{PHASH_COLUMN}_b"].to_numpy())
        near = pl.DataFrame(
            {
                "src": pairs["src"].to_numpy(),
                "dst": pairs["src_b"].to_numpy(),
                "distance": distance,
            }
        ).filter(pl.col("distance") <= threshold)
    edges = pl.concat([same, near]).unique(["src", "dst"]).sort(["src", "dst"])
    return edges.to_arrow().cast(PHASH_EDGES_SCHEMA)
