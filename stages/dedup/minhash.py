"""MinHash signatures for fuzzy deduplication, vectorised over a whole batch.

A document is the set of its shingles: character n-grams (NeMo Curator's default, 24
characters) or word n-grams (datatrove's default, 5 words). Two documents whose shingle
sets have Jaccard similarity J agree on each signature value with probability J, so LSH
banding (`stages.dedup.lsh`) turns the signatures into candidate pairs.

How a signature is computed (no Python loop per document or per shingle):

1. Shingle hashes. The batch becomes one token array (Unicode code points for character
   shingles; for word shingles, one 64-bit hash per whitespace-separated word, itself a
   hash of the word's UTF-8 bytes; with `normalize`, the text is first lower-cased and
   every run of characters other than letters, digits and `_` becomes one space, see
   `normalize_texts`). Every n-token window gets a polynomial hash modulo
   2^64, read from running sums of `token * P^i` and normalised by `P^-i`, so the value
   depends on the window's tokens only, not on its position in the batch; then the
   murmur3 64-bit finaliser, keyed by the seed, mixes it. The windows are hashed in
   chunks of `_CHUNK` tokens so that the temporaries stay in the CPU cache; a batch
   holds its tokens (1 byte per character for ASCII, else 4) and its signatures (4 bytes
   per value, plus 1 per value while densifying). A text with fewer than n tokens
   (but at least one) is one shingle: the whole text, as NeMo Curator does. An empty or
   null text has no shingle.
2. One-permutation MinHash with optimal densification (Li, Owen and Zhang 2012;
   Shrivastava 2017): the top bits of a shingle's hash choose one of the `num_hashes`
   bins, its low 32 bits are its value, and each bin keeps the minimum value of its
   shingles (`np.minimum.at`). An empty bin copies the value of the first non-empty bin
   in a fixed pseudo-random order of the bins (one order per bin, the same for every
   document). Each of the `num_hashes` values then collides between two documents with
   probability J, as with `num_hashes` independent permutations, at the cost of one hash
   per shingle instead of `num_hashes` (the classic scheme costs ~260 hash evaluations
   per character with NeMo's defaults, far too slow on a CPU). The values of one
   signature are not independent: for texts with many more shingles than bins the
   estimate's variance is a little lower than with permutations, for texts with fewer
   shingles than bins it is higher.

The signatures are not bit-identical to NeMo Curator's (it hashes shingles with MurmurHash3
on a GPU and applies 260 permutations); the shingles, the short-text rule, the band layout
and so the probability that two documents become candidates are the same.

Documents with no shingle (empty or null text) all get the same signature (every value
0xFFFFFFFF), so they fall in one bucket of every band: they are exact duplicates of each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Resources, Stage, text_column
from stages.text.filters.words import TextBytes, _as_string_array, _ranks

MINHASH_COLUMN = "_minhash"
BANDS_COLUMN = "_bands"

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
# Odd base of the polynomial hash, and its inverse modulo 2^64.
_BASE = 0x9E3779B97F4A7C15
_BASE_INV = pow(_BASE, -1, 2**64)
# Shingles are hashed in chunks of this many tokens: the temporaries stay in the CPU cache.
_CHUNK = 1 << 15
_LENGTH_MULTIPLIER = 0xD6E8FEB86659FD93
_WORD_KEY = 0x9FB21C651E98DF25
# Steps of densification tried for every empty bin before the exhaustive search.
_DENSIFY_STEPS = 4
_DENSIFY_PAIRS = 1 << 21  # (empty bin, filled bin) pairs handled at once


@dataclass(frozen=True)
class MinHashConfig:
    """What a signature is made of.

    Exactly one of `char_ngrams` (shingles of that many characters, NeMo Curator's default
    24) and `word_ngrams` (shingles of that many whitespace-separated words) is set. The
    signature has `num_bands * hashes_per_band` values (NeMo: 20 x 13 = 260, seed 42).
    `lowercase=True` lower-cases the text before shingling (Unicode lower case), so that
    case-only differences do not count; NeMo Curator shingles the raw text.

    `normalize=True` (implies `lowercase`) shingles the text as `normalize_texts` rewrites
    it: lower-cased, every run of characters that are not letters, digits or `_` turned
    into one space, none left at either end. Word shingles
    are then n-grams of the runs of word characters, the words of a regex `\\w+` on the
    lower-cased text, so punctuation, markup and spacing differences do not count.
    `exact_jaccard` uses the same shingles, so verification agrees with the signatures.
    """

    char_ngrams: int | None = 24
    word_ngrams: int | None = None
    num_bands: int = 20
    hashes_per_band: int = 13
    seed: int = 42
    lowercase: bool = False
    normalize: bool = False

    def __post_init__(self) -> None:
        if (self.char_ngrams is None) == (self.word_ngrams is None):
            raise ValueError(
                "MinHashConfig: set exactly one of char_ngrams and word_ngrams, got "
                f"char_ngrams={self.char_ngrams}, word_ngrams={self.word_ngrams}"
            )
        for name in ("char_ngrams", "word_ngrams", "num_bands", "hashes_per_band"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"MinHashConfig: {name} must be at least 1, got {value}")

    @classmethod
    def datatrove(cls) -> MinHashConfig:
        """datatrove's default: word 5-grams, 14 bands x 8 hashes, seed 1, lower-cased
        (datatrove also strips punctuation and accents before shingling; we do not)."""
        return cls(
            char_ngrams=None,
            word_ngrams=5,
            num_bands=14,
            hashes_per_band=8,
            seed=1,
            lowercase=True,
        )

    @classmethod
    def high_recall(cls) -> MinHashConfig:
        """Near-duplicates at word 5-gram Jaccard >= 0.8, with high recall: normalised word
        5-grams, 20 bands x 7 hashes, seed 42.

        A pair at J = 0.8 becomes a candidate with probability 0.991 (0.68 at J = 0.7), so
        candidates must be verified: keep the edges whose `exact_jaccard` (this config) is
        at least 0.8, then cluster them with `center_clusters`. On the benchmark of
        `benchmarks/dedup_quality.py` this removes only documents with J >= 0.8 to a kept
        one and finds over 0.95 of the pairs at J >= 0.8 (see benchmarks/README.md).
        """
        return cls(
            char_ngrams=None,
            word_ngrams=5,
            num_bands=20,
            hashes_per_band=7,
            seed=42,
            lowercase=True,
            normalize=True,
        )

    @property
    def num_hashes(self) -> int:
        return self.num_bands * self.hashes_per_band

    @property
    def ngrams(self) -> int:
        return self.char_ngrams if self.char_ngrams is not None else self.word_ngrams

    @property
    def threshold(self) -> float:
        """The Jaccard similarity at which a pair becomes a candidate with probability ~1/2."""
        return lsh_threshold(self.num_bands, self.hashes_per_band)


DEFAULT_CONFIG = MinHashConfig()


def lsh_threshold(num_bands: int, hashes_per_band: int) -> float:
    """Where the LSH S-curve is steepest, ~(1/b)^(1/r): pairs above it are likely found.

    NeMo's 20 x 13 gives ~0.79; datatrove's 14 x 8 gives ~0.72.
    """
    return float((1.0 / num_bands) ** (1.0 / hashes_per_band))


def candidate_probability(jaccard, num_bands: int, hashes_per_band: int):
    """Probability that a pair with this Jaccard similarity shares at least one band
    bucket: 1 - (1 - J^r)^b. Accepts a number or an array."""
    j = np.asarray(jaccard, dtype=np.float64)
    p = 1.0 - (1.0 - j**hashes_per_band) ** num_bands
    return float(p) if p.ndim == 0 else p


# --- hashing primitives ---------------------------------------------------------------


def _fmix64(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """The murmur3 64-bit finaliser (a bijection that mixes every input bit into every
    output bit); modifies and returns `x` (uint64). `tmp`: scratch of x's size, or None."""
    if tmp is None:
        tmp = np.empty_like(x)
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, None):
        np.right_shift(x, _U64(33), out=tmp)
        x ^= tmp
        if multiplier is not None:
            x *= _U64(multiplier)
    return x


def _mix_scalar(value: int) -> int:
    return int(_fmix64(np.array([value % 2**64], dtype=_U64))[0])


class _Powers:
    """P^i and P^-i modulo 2^64 for i < size, grown on demand (shared by all stages)."""

    def __init__(self) -> None:
        self.up = np.ones(1, dtype=_U64)
        self.down = np.ones(1, dtype=_U64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size > self.up.size:
            n = max(size, 2 * self.up.size)
            # cumprod on uint64 wraps modulo 2^64, which is the arithmetic we want.
            self.up = np.cumprod(np.full(n, _BASE, dtype=_U64)) * _U64(_BASE_INV)
            self.down = np.cumprod(np.full(n, _BASE_INV, dtype=_U64)) * _U64(_BASE)
        return self.up[:size], self.down[:size]


_POWERS = _Powers()


def _salt(length, key: int):
    """What is mixed into a span's polynomial hash before the finaliser: its length (so a
    short text and a full window never share a hash) and the seed's key."""
    return (np.asarray(length).astype(_U64) * _U64(_LENGTH_MULTIPLIER)) ^ _U64(key)


def _span_hashes(tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hash sum(tokens[s + k] * P^k) mod 2^64 of every span [s, e) of `tokens`,
    independent of where the span sits in `tokens`. Not mixed. Spans are sorted by start;
    they are hashed in groups covering about `_CHUNK` tokens, to bound the temporaries."""
    out = np.empty(starts.size, dtype=_U64)
    i = 0
    while i < starts.size:
        lo = int(starts[i])
        j = max(int(np.searchsorted(starts, lo + _CHUNK, side="left")), i + 1)
        hi = int(ends[i:j].max())
        up, down = _POWERS.get(hi - lo)
        running = np.zeros(hi - lo + 1, dtype=_U64)
        np.cumsum(tokens[lo:hi].astype(_U64) * up, out=running[1:])
        s, e = starts[i:j] - lo, ends[i:j] - lo
        out[i:j] = (running[e] - running[s]) * down[s]
        i = j
    return out


def _window_hashes(tokens: np.ndarray, n: int, key: int):
    """Mixed hash of the n-token window starting at every position of `tokens`, chunk by
    chunk: yields (a, b, hashes of the windows starting at a..b-1). Windows that run past
    the end of `tokens` read zeros (their hashes are meaningless; callers drop them)."""
    size = tokens.size
    salt = _salt(n, key)
    for a in range(0, size, _CHUNK):
        b = min(a + _CHUNK, size)
        m = b - a
        window = tokens[a : min(b + n - 1, size)]
        up, down = _POWERS.get(m + n)
        running = np.empty(m + n, dtype=_U64)
        running[0] = 0
        weighted = window.astype(_U64)
        weighted *= up[: window.size]
        np.cumsum(weighted, out=running[1 : window.size + 1])
        running[window.size + 1 :] = running[window.size]
        hashes = np.subtract(running[n : n + m], running[:m])
        hashes *= down[:m]
        hashes ^= salt
        yield a, b, _fmix64(hashes, running[:m])


def _codepoints(text: TextBytes) -> tuple[np.ndarray, np.ndarray]:
    """(code points, row bounds into them) of a batch: the UTF-8 bytes themselves when
    the batch is ASCII, else uint32 code points."""
    bounds = np.zeros(text.num_rows + 1, dtype=np.int64)
    if not text.has_non_ascii:
        bounds[1:] = text.ends
        return text.buf, bounds
    utf32 = text.buf.tobytes().decode("utf-8").encode("utf-32-le")
    np.cumsum(text.char_counts, out=bounds[1:])
    return np.frombuffer(utf32, dtype=np.uint32), bounds


_SPACE = 0x20


def normalize_texts(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """`texts` lower-cased, with every run of characters other than word characters
    (Python's `\\w`: `str.isalnum()` or `_`) replaced by one space and none left at either
    end; nulls become empty strings. Whole-batch byte operations: a Python call per
    distinct non-ASCII character (its bytes are word bytes when it is alphanumeric), none
    per text.

    The words of the result are `re.findall(r"\\w+", text.lower())`: "Hello, World!"
    becomes "hello world".
    """
    array = _as_string_array(texts)
    if not len(array):
        return array.cast(pa.string())
    text = TextBytes._build(pc.utf8_lower(array))
    buf = text.buf
    word = (buf - np.uint8(ord("a"))) < 26  # uint8 wraps: one compare for a range
    word |= (buf - np.uint8(ord("0"))) < 10
    word |= buf == ord("_")
    word |= buf >= 0x80
    if text.has_non_ascii:
        pos, code, length = text.non_ascii_chars
        distinct, which = np.unique(code, return_inverse=True)
        alnum = np.fromiter((chr(c).isalnum() for c in distinct.tolist()), bool, distinct.size)
        other = ~alnum[which]
        word[np.repeat(pos[other], length[other]) + _ranks(length[other])] = False
    # Keep the word bytes and, of each run of other bytes, one (as a space) when a word
    # byte comes before it and another after it in the same row.
    # Word -> other and other -> word transitions alternate along the buffer, so the
    # run of other bytes at `gap[k]` ends where word `rise[k + shift]` begins.
    gap = np.flatnonzero(~word[1:] & word[:-1]) + 1
    rise = np.flatnonzero(word[1:] & ~word[:-1]) + 1
    shift = int(rise.size > 0 and gap.size > 0 and rise[0] < gap[0])
    has_next = np.arange(gap.size) + shift < rise.size
    gap = gap[has_next]
    row = np.searchsorted(text.ends, gap, side="right")
    next_row = np.searchsorted(text.ends, rise[shift : shift + gap.size], side="right")
    inside = (gap > text.starts[row]) & (next_row == row)
    keep = word.copy()
    keep[gap[inside]] = True
    out = np.where(word, buf, np.uint8(_SPACE))[keep]
    offsets = np.zeros(text.num_rows + 1, dtype=np.int64)
    np.cumsum(text.segment_sums(keep), out=offsets[1:])
    large = out.size >= 2**31
    return pa.Array.from_buffers(
        pa.large_string() if large else pa.string(),
        text.num_rows,
        [None, pa.py_buffer(offsets.astype(np.int64 if large else np.int32)), pa.py_buffer(out)],
    )


def _tokens(texts: pa.ChunkedArray | pa.Array, config: MinHashConfig):
    """(tokens, row bounds) of a batch: code points for character shingles, 64-bit word
    hashes for word shingles."""
    array = _as_string_array(texts)
    if config.normalize:
        array = normalize_texts(array)
    elif config.lowercase and len(array):
        array = pc.utf8_lower(array)
    text = TextBytes._build(array)
    if config.char_ngrams is not None:
        return _codepoints(text)
    words = text.words
    word_hashes = _span_hashes(text.buf, words.start, words.end)
    word_hashes ^= _salt(words.end - words.start, _WORD_KEY)
    bounds = np.zeros(text.num_rows + 1, dtype=np.int64)
    np.cumsum(words.count, out=bounds[1:])
    return _fmix64(word_hashes), bounds


def _shingles(texts: pa.ChunkedArray | pa.Array, config: MinHashConfig, scale: int):
    """The shingle hashes of a batch, chunk by chunk: yields (base, hashes), where
    base = row * scale for a shingle of that row and num_rows * scale for a position that
    starts no shingle (the last n - 1 tokens of a row)."""
    tokens, bounds = _tokens(texts, config)
    num_rows, n = bounds.size - 1, config.ngrams
    key = _seed_key(config.seed)
    length = np.diff(bounds)
    # Positions as segments: the windows of a row, then the positions that start none.
    windows = np.where(length >= n, length - n + 1, 0)
    seg_start = np.empty(2 * num_rows, dtype=np.int64)
    seg_start[0::2] = bounds[:-1]
    seg_start[1::2] = bounds[:-1] + windows
    seg_end = np.append(seg_start[1:], bounds[-1:])
    seg_base = np.full(2 * num_rows, num_rows * scale, dtype=np.int64)
    seg_base[0::2] = np.arange(num_rows, dtype=np.int64) * scale
    for a, b, hashes in _window_hashes(tokens, n, key):
        s0 = int(np.searchsorted(seg_start, a, side="right")) - 1
        s1 = int(np.searchsorted(seg_start, b, side="left"))
        counts = np.clip(seg_end[s0:s1], a, b) - np.clip(seg_start[s0:s1], a, b)
        yield np.repeat(seg_base[s0:s1], counts), hashes
    # A row with fewer than n tokens (but some) is one shingle: the whole row.
    short = np.flatnonzero((length > 0) & (length < n))
    if short.size:
        hashes = _span_hashes(tokens, bounds[short], bounds[short + 1])
        hashes ^= _salt(length[short], key)
        yield short * scale, _fmix64(hashes)


def _seed_key(seed: int) -> int:
    return _mix_scalar(seed * 0x2545F4914F6CDD1D + 0x632BE59BD9B4E019)


def shingle_hashes(texts: pa.ChunkedArray | pa.Array, config: MinHashConfig):
    """The shingles of every text as 64-bit hashes: (row, hash) arrays, sorted by row.

    A shingle seen twice in a text appears twice. Keyed by `config.seed`.
    """
    num_rows = len(texts)
    rows, hashes = [np.zeros(0, np.int64)], [np.zeros(0, _U64)]
    for base, chunk in _shingles(texts, config, 1):
        keep = base < num_rows
        rows.append(base[keep])
        hashes.append(chunk[keep])
    row, h = np.concatenate(rows), np.concatenate(hashes)
    order = np.argsort(row, kind="stable")
    return row[order], h[order]


@lru_cache(maxsize=16)
def _densify_order(num_hashes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): row j of `order` lists the bins in the order in which an empty bin j
    looks for a value; `rank` is its inverse."""
    key = _mix_scalar(seed ^ 0x5851F42D4C957F2D)
    cells = np.arange(num_hashes * num_hashes, dtype=_U64) ^ _U64(key)
    scores = _fmix64(cells).reshape(num_hashes, num_hashes)
    order = np.argsort(scores, axis=1, kind="stable").astype(np.int64)
    # rank[j, order[j, t]] = t: where each bin stands in bin j's order.
    rank = np.argsort(order, axis=1, kind="stable").astype(np.int64)
    return order, rank


def minhash_signatures(texts: pa.ChunkedArray | pa.Array, config: MinHashConfig) -> np.ndarray:
    """The signatures of `texts`: uint32 array of shape (rows, config.num_hashes)."""
    k = config.num_hashes
    num_rows = len(texts)
    # One extra row collects the positions that start no shingle.
    signature = np.full((num_rows + 1) * k, 0xFFFFFFFF, dtype=np.uint32)
    filled = np.zeros((num_rows + 1) * k, dtype=bool)
    for base, hashes in _shingles(texts, config, k):
        # Bin from the high 32 bits (multiply-shift range reduction), value from the low 32.
        cell = np.right_shift(hashes, _U64(32))
        cell *= _U64(k)
        cell >>= _U64(32)
        cell = cell.view(np.int64)
        cell += base
        np.minimum.at(signature, cell, hashes.astype(np.uint32))
        filled[cell] = True
    signature = signature[: num_rows * k].reshape(num_rows, k)
    filled = filled[: num_rows * k].reshape(num_rows, k)
    _densify(signature, filled, config)
    return signature


def _densify(signature: np.ndarray, filled: np.ndarray, config: MinHashConfig) -> None:
    """Give every empty bin of a document with shingles the value of the first filled
    bin in that bin's order (optimal densification, Shrivastava 2017). In place.

    A few steps of the order are tried for all empty bins at once (enough when most bins
    are filled); the bins still empty then take, among their document's filled bins, the
    one that comes first in their order (cheap when few bins are filled)."""
    per_row = filled.sum(axis=1)
    # One filled bin (a text of one shingle): every bin takes its value.
    single = np.flatnonzero(per_row == 1)
    signature[single] = signature[single, filled[single].argmax(axis=1)][:, None]
    empty_row, empty_bin = np.nonzero(~filled & (per_row > 1)[:, None])
    if empty_row.size == 0:
        return
    order, rank = _densify_order(config.num_hashes, config.seed)
    for step in range(_DENSIFY_STEPS):
        candidate = order[empty_bin, step]
        hit = filled[empty_row, candidate]
        signature[empty_row[hit], empty_bin[hit]] = signature[empty_row[hit], candidate[hit]]
        empty_row, empty_bin = empty_row[~hit], empty_bin[~hit]
        if empty_row.size == 0:
            return
    # Pair every remaining empty bin with each filled bin of its document, a slice of
    # documents at a time so that the pairs stay within _DENSIFY_PAIRS (memory).
    # `empty_row` is ascending (np.nonzero is row-major), so each slice is contiguous.
    pairs = filled[empty_row].sum(axis=1)
    ends = np.searchsorted(
        np.cumsum(pairs),
        np.arange(1, pairs.sum() // _DENSIFY_PAIRS + 2) * _DENSIFY_PAIRS,
        side="right",
    )
    start = 0
    for end in [*ends.tolist(), empty_row.size]:
        # Never split one document's bins between slices.
        while 0 < end < empty_row.size and empty_row[end] == empty_row[end - 1]:
            end += 1
        if end > start:
            _densify_rest(
                signature, filled, empty_row[start:end], empty_bin[start:end], order, rank
            )
            start = end


def _densify_rest(signature, filled, empty_row, empty_bin, order, rank) -> None:
    rows, first = np.unique(empty_row, return_index=True)
    filled_row, filled_bin = np.nonzero(filled[rows])
    per_row = np.bincount(filled_row, minlength=rows.size)
    offset = np.cumsum(per_row) - per_row
    which = np.repeat(np.arange(rows.size), np.diff(np.append(first, empty_row.size)))
    count = per_row[which]
    pair_bin = filled_bin[np.repeat(offset[which], count) + _ranks(count)]
    score = rank[np.repeat(empty_bin, count), pair_bin]
    best = np.minimum.reduceat(score, np.cumsum(count) - count)
    signature[empty_row, empty_bin] = signature[empty_row, order[empty_bin, best]]


def band_hashes(signature: np.ndarray, config: MinHashConfig) -> np.ndarray:
    """One 64-bit hash per band of each signature: uint64 array (rows, num_bands).

    The band index is part of the hash, so equal rows in different bands hash apart.
    """
    b, r = config.num_bands, config.hashes_per_band
    rows = signature.reshape(signature.shape[0], b, r).astype(_U64)
    key = _mix_scalar(config.seed ^ 0x94D049BB133111EB)
    acc = _fmix64(np.arange(1, b + 1, dtype=_U64) ^ _U64(key))
    acc = np.broadcast_to(acc, (signature.shape[0], b)).copy()
    for j in range(r):
        acc = _fmix64(acc * _U64(_BASE) + rows[:, :, j])
    return acc


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Row-wise fraction of equal signature values: the MinHash estimate of Jaccard."""
    a, b = np.atleast_2d(sig_a), np.atleast_2d(sig_b)
    if a.shape != b.shape:
        raise ValueError(f"estimated_jaccard: shapes differ, {a.shape} and {b.shape}")
    return (a == b).mean(axis=1)


def _string_array(texts) -> pa.Array:
    """Arrow string arrays as they are (no copy through Python objects), else a list."""
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return _as_string_array(texts)
    return pa.array(list(texts), pa.string())


def exact_jaccard(texts_a, texts_b, config: MinHashConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Row-wise Jaccard similarity of the shingle sets of `texts_a[i]` and `texts_b[i]`, with
    the shingles of `config` (64-bit shingle hashes, so equal up to hash collisions),
    including its `lowercase` and `normalize`: the sets the signatures estimate. The
    texts are Arrow string arrays or sequences of strings (None: empty).
    Two texts without shingles have similarity 1; one without, 0."""
    a, b = _string_array(texts_a), _string_array(texts_b)
    if len(a) != len(b):
        raise ValueError(f"exact_jaccard: {len(a)} and {len(b)} texts")
    n = len(a)
    if n == 0:
        return np.zeros(0)

    def distinct(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        row, h = shingle_hashes(texts, config)
        order = np.lexsort((h, row))
        row, h = row[order], h[order]
        keep = np.ones(row.size, dtype=bool)
        keep[1:] = (row[1:] != row[:-1]) | (h[1:] != h[:-1])
        return row[keep], h[keep]

    row_a, h_a = distinct(a)
    row_b, h_b = distinct(b)
    size_a = np.bincount(row_a, minlength=n)
    size_b = np.bincount(row_b, minlength=n)
    row = np.concatenate([row_a, row_b])
    h = np.concatenate([h_a, h_b])
    order = np.lexsort((h, row))
    row, h = row[order], h[order]
    common = (row[1:] == row[:-1]) & (h[1:] == h[:-1])
    inter = np.bincount(row[1:][common], minlength=n)
    union = size_a + size_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


class MinhashDedupSignature(Stage):
    """Add the MinHash signature of the text and its LSH band hashes.

    - `_minhash`: fixed_size_list<uint32>[num_hashes], the signature (see module doc),
    - `_bands`: fixed_size_list<uint64>[num_bands], a 64-bit hash of each band's
      `hashes_per_band` values (with the band index mixed in).

    Deterministic: the same text gives the same columns in any process, batch or run
    (nothing depends on Python's hash seed or on the batch's other rows). About 1.2 KB per
    document with NeMo's 20 x 13 bands.
    """

    nemo_equivalent: ClassVar[str] = "MinHashStage"
    datatrove_equivalent: ClassVar[str] = "MinhashDedupSignature"

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, config: MinHashConfig = DEFAULT_CONFIG, text_field: str = "text"):
        self.config = config
        self.text_field = text_field

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        signature = minhash_signatures(column, self.config)
        bands = band_hashes(signature, self.config)
        batch = batch.drop_columns(
            [c for c in (MINHASH_COLUMN, BANDS_COLUMN) if c in batch.column_names]
        )
        minhash = pa.FixedSizeListArray.from_arrays(
            pa.array(signature.ravel(), pa.uint32()), self.config.num_hashes
        )
        band_array = pa.FixedSizeListArray.from_arrays(
            pa.array(bands.ravel(), pa.uint64()), self.config.num_bands
        )
        batch = batch.append_column(MINHASH_COLUMN, minhash)
        return batch.append_column(BANDS_COLUMN, band_array)
