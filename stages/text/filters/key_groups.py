"""Group equal 64-bit keys with one NumPy sort: the first position and size of each group.

Used by the repetition filters to find repeated lines, paragraphs and n-grams of a whole
batch at once. Keys are 64-bit hashes salted with the document index (see `document_keys`),
so equal keys mean "same content in the same document" up to a 2**-64 chance per pair.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that spreads every input bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def fold(key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Fold `value` into `key` (both uint64): a bijection of `value` for a fixed `key`."""
    with np.errstate(over="ignore"):
        return mix(key * _GOLDEN + value)


def document_keys(doc: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """One key per (document index, 64-bit content hash) pair."""
    return fold(doc.astype(np.uint64), hashes.astype(np.uint64, copy=False))


def group_keys(key: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal `key`s: per group, the smallest of its `positions` and its size.

    `positions` (one per key) decide which member is first, so the result does not depend
    on the sort order. Groups come in key order.
    """
    if len(key) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    order = np.argsort(key)
    sorted_key = key[order]
    boundary = np.ones(len(order), dtype=bool)
    boundary[1:] = sorted_key[1:] != sorted_key[:-1]
    start = np.flatnonzero(boundary)
    first = np.minimum.reduceat(positions[order], start)
    count = np.diff(np.append(start, len(order)))
    return first, count


def first_occurrences(key: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time, in array order."""
    first, _ = group_keys(key, np.arange(len(key)))
    mask = np.zeros(len(key), dtype=bool)
    mask[first] = True
    return mask
