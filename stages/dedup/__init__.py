"""Deduplication building blocks. Each algorithm is one module of pure stages and
functions; the global passes (shuffle by key, then per partition) live in the flows."""

from stages.dedup.embed import TextEmbedder
from stages.dedup.exact import ExactDedupHash, select_exact_duplicates
from stages.dedup.fuzzy import (
    MinHashConfig,
    MinhashDedupBuckets,
    MinhashDedupSignature,
    find_fuzzy_duplicates,
)
from stages.dedup.semantic import (
    assign_clusters,
    eps_table,
    kmeans_fit,
    semantic_duplicates,
)

__all__ = [
    "ExactDedupHash",
    "MinHashConfig",
    "MinhashDedupBuckets",
    "MinhashDedupSignature",
    "TextEmbedder",
    "assign_clusters",
    "eps_table",
    "find_fuzzy_duplicates",
    "kmeans_fit",
    "semantic_duplicates",
    "select_exact_duplicates",
]
