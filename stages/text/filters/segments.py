"""Duplicate lines and paragraphs, counted for a whole batch at once.

A document is cut into segments (lines at "\\n", paragraphs at "\\n\\n"), the segments of
every document are exploded into one Polars Series with their document index, each gets a
64-bit hash (Polars `hash`, fixed seed) salted with its document index, and the first
occurrence of each key is marked with one NumPy sort (`key_groups`). Two different
segments share a key with probability about 2**-64 per pair. Per-document sums then give
the four numbers the repetition filters need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from stages.text.filters.key_groups import document_keys, first_occurrences

# Python's `str.isspace()` characters: the regex class `\s` (Unicode White_Space) plus the
# four ASCII separators U+001C..U+001F, which `str.split()` and `str.strip()` also treat as
# whitespace. A line is blank when it has no character outside this set.
NON_SPACE = r"[^\s\x1c-\x1f]"
_SEGMENT_HASH_SEED = 0x11E5


@dataclass(frozen=True)
class SegmentCounts:
    """Per-document totals, one entry per row of the batch (float64 arrays)."""

    segments: np.ndarray
    unique_segments: np.ndarray
    chars: np.ndarray
    unique_chars: np.ndarray


def as_text_series(texts: pa.ChunkedArray | pa.Array) -> pl.Series:
    """A Polars string Series of `texts`, with null read as the empty string."""
    series = pl.Series("text", texts)
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    return series.fill_null("")


def count_segments(
    texts: pa.ChunkedArray | pa.Array, separator: str, skip_blank: bool
) -> SegmentCounts:
    """Count each document's segments (split at `separator`) and its distinct ones.

    With `skip_blank`, segments made only of whitespace are left out (as NeMo Curator does
    for lines, not for paragraphs). Lengths are in characters (code points), as `len()`.
    """
    series = as_text_series(texts)
    n_docs = len(series)
    pieces = series.str.split(separator)
    per_doc = pieces.list.len().to_numpy()
    segment = pieces.explode()
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), per_doc)
    if skip_blank:
        nonblank = segment.str.contains(NON_SPACE).to_numpy()
        segment, doc = segment.filter(nonblank), doc[nonblank]
    chars = segment.str.len_chars().to_numpy().astype(np.float64)
    first = first_occurrences(document_keys(doc, segment.hash(seed=_SEGMENT_HASH_SEED).to_numpy()))
    return SegmentCounts(
        segments=np.bincount(doc, minlength=n_docs).astype(np.float64),
        unique_segments=np.bincount(doc, weights=first, minlength=n_docs),
        chars=np.bincount(doc, weights=chars, minlength=n_docs),
        unique_chars=np.bincount(doc, weights=chars * first, minlength=n_docs),
    )


def ratio_or_one(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, and 1.0 (nothing repeated) where the denominator is 0."""
    out = np.ones_like(denominator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def lines(texts: pa.ChunkedArray | pa.Array) -> SegmentCounts:
    """Non-blank lines: the text split at "\\n", whitespace-only lines dropped."""
    return count_segments(texts, "\n", skip_blank=True)


def paragraphs(texts: pa.ChunkedArray | pa.Array) -> SegmentCounts:
    """Paragraphs: the text split at "\\n\\n" (left to right, non-overlapping), blanks kept."""
    return count_segments(texts, "\n\n", skip_blank=False)
