"""Deduplication building blocks. Each algorithm is one module of pure stages and
functions; the global passes (shuffle by key, then per partition) live in the flows."""

from stages.dedup.exact import ExactDedupHash, select_exact_duplicates

__all__ = ["ExactDedupHash", "select_exact_duplicates"]
