"""Fuzzy deduplication (MinHash + LSH), NeMo Curator's defaults on a CPU.

The steps, each a pure function or stage a flow runs where it likes:

1. `MinhashDedupSignature` (per batch): `_minhash` signature and `_bands` band hashes
   (`stages.dedup.minhash`).
2. `band_buckets` (per batch, after the flow adds a global `_order`): one row per
   (document, band); the flow partitions these rows by `bucket`.
3. `bucket_edges` (per partition): star edges between the documents of each bucket
   (`stages.dedup.lsh`).
4. `connected_components` / `merge_components` over the edges, then
   `duplicates_to_remove`: every document but the first of its cluster
   (`stages.dedup.components`).

`find_fuzzy_duplicates` chains them in memory for one table (tests, small inputs).
Candidate pairs can be checked with `exact_jaccard` before removal; `lsh_threshold` and
`candidate_probability` describe the band layout's S-curve.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.dedup.components import (
    connected_components,
    duplicates_to_remove,
    merge_components,
)
from stages.dedup.lsh import MinhashDedupBuckets, band_buckets, bucket_edges
from stages.dedup.minhash import (
    DEFAULT_CONFIG,
    MinHashConfig,
    MinhashDedupSignature,
    candidate_probability,
    estimated_jaccard,
    exact_jaccard,
    lsh_threshold,
    minhash_signatures,
    shingle_hashes,
)

__all__ = [
    "MinHashConfig",
    "MinhashDedupBuckets",
    "MinhashDedupSignature",
    "band_buckets",
    "bucket_edges",
    "candidate_probability",
    "connected_components",
    "duplicates_to_remove",
    "estimated_jaccard",
    "exact_jaccard",
    "find_fuzzy_duplicates",
    "lsh_threshold",
    "merge_components",
    "minhash_signatures",
    "shingle_hashes",
]


def find_fuzzy_duplicates(
    table: pa.Table, config: MinHashConfig = DEFAULT_CONFIG, text_field: str = "text"
) -> pa.Table:
    """The rows of `table` to remove as near-duplicates, all steps in memory: `_order`
    (row position in `table`) and `cluster` (position of the row kept for it)."""
    signed = MinhashDedupSignature(config, text_field)(table.select([text_field]))
    signed = signed.append_column("_order", pa.array(np.arange(table.num_rows), pa.int64()))
    edges = bucket_edges(band_buckets(signed))
    nodes, component = connected_components(
        edges.column("src").to_numpy(), edges.column("dst").to_numpy()
    )
    return duplicates_to_remove(nodes, component)
