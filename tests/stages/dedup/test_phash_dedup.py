"""Perceptual-hash near-duplicates through hash bands: the pairs found are exactly the
pairs within the threshold that share a band, never more, and the pigeonhole guarantee
holds (every pair within bands - 1 bits is found)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stages.dedup.phash import PHashBands, band_values, hamming, phash_buckets, phash_edges


def _flip(h: int, bits: list[int]) -> int:
    for b in bits:
        h ^= 1 << int(b)
    return h


def _edges(hashes: list[int | None], threshold: int, bands: int = 4) -> set[tuple[int, int, int]]:
    table = pa.table(
        {"_order": pa.array(range(len(hashes)), pa.int64()), "phash": pa.array(hashes, pa.uint64())}
    )
    table = PHashBands(bands=bands).process(table).select(["_order", "_bands", "_phash"])
    buckets = phash_buckets(table.rename_columns(["_order", "_bands", "phash"]))
    edges = phash_edges(buckets, threshold)
    return set(zip(*(edges.column(c).to_pylist() for c in ("src", "dst", "distance")), strict=True))


def test_band_values_cut_the_hash_into_runs_most_significant_first():
    h = np.array([0x0123_4567_89AB_CDEF], dtype=np.uint64)
    assert band_values(h, 4).tolist() == [[0x0123, 0x4567, 0x89AB, 0xCDEF]]
    v = 0x0123_4567_89AB_CDEF  # 3 bands: 21, 21 and 22 bits
    assert band_values(h, 3).tolist() == [[v >> 43, (v >> 22) & (2**21 - 1), v & (2**22 - 1)]]
    with pytest.raises(ValueError, match="bands"):
        band_values(h, 0)


def test_identical_hashes_link_to_the_first_and_near_ones_within_the_threshold():
    base = 0x0123_4567_89AB_CDEF
    hashes = [base, base, _flip(base, [0, 17]), _flip(base, [1, 2, 3, 4, 5, 6, 7, 8]), None]
    assert _edges(hashes, threshold=2) == {(0, 1, 0), (0, 2, 2)}
    assert _edges(hashes, threshold=8) == {(0, 1, 0), (0, 2, 2), (0, 3, 8)}


def test_every_pair_within_bands_minus_one_bits_is_found_whatever_bits_differ():
    rng = np.random.default_rng(5)
    for _ in range(200):
        base = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        bits = rng.choice(64, size=3, replace=False).tolist()
        assert _edges([base, _flip(base, bits)], threshold=3) == {(0, 1, 3)}


def test_pairs_differing_in_every_band_are_not_candidates():
    base = 0
    spread = _flip(base, [0, 16, 32, 48])  # one bit in each 16-bit band
    assert _edges([base, spread], threshold=10) == set()
    assert _edges([base, spread], threshold=10, bands=8) == {(0, 1, 4)}


def test_found_pairs_equal_a_brute_force_search_restricted_to_shared_bands():
    rng = np.random.default_rng(11)
    bases = rng.integers(0, 2**62, size=40, dtype=np.uint64)
    hashes = [int(b) for b in bases]
    for b in bases[:20]:  # near-copies with 1 to 6 flipped bits
        hashes.append(_flip(int(b), rng.choice(64, size=int(rng.integers(1, 7)), replace=False)))
    found = _edges(hashes, threshold=5)
    arr = np.array(hashes, dtype=np.uint64)
    bands = band_values(arr, 4)
    expected = set()
    for i in range(len(arr)):
        for j in range(i + 1, len(arr)):
            d = int(hamming(arr[i : i + 1], arr[j : j + 1])[0])
            if d <= 5 and (bands[i] == bands[j]).any():
                expected.add((i, j, d))
    assert found == expected and len(found) >= 10


def test_flat_images_are_compared_by_their_bytes_not_by_their_empty_hash():
    flat = 0x8000_0000_0000_0000  # every one-colour image hashes to this
    table = pa.table(
        {
            "_order": pa.array([0, 1, 2], pa.int64()),
            "phash": pa.array([flat, flat, flat], pa.uint64()),
            "image": [b"red square", b"blue square", b"red square"],
        }
    )
    matched = PHashBands().process(table).select(["_order", "_bands", "_phash"])
    buckets = phash_buckets(matched.rename_columns(["_order", "_bands", "phash"]))
    edges = phash_edges(buckets, threshold=8)
    assert list(zip(edges["src"].to_pylist(), edges["dst"].to_pylist(), strict=True)) == [(0, 2)]
