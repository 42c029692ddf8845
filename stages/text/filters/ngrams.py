"""Word n-grams of a whole batch, grouped by 64-bit key, for the repeating n-gram filters.

Words are `str.split()` words (NeMo Curator's English splitter), found as byte spans by
`stages.text.filters.words.TextBytes`. The words of every document are laid end to end in
one Arrow string array (built from the text buffer with the whitespace bytes masked out,
no per-word Python), each word gets a 64-bit hash (Polars `hash`, fixed seed), and the
n-gram starting at word k gets a 64-bit key: the document index folded with the hashes of
words k..k+n-1, one after the other, by a bijective mixer (SplitMix64's finaliser). So the
key of an n-gram extends the key of its (n-1)-word prefix by one fold.

Only *repeated* n-grams (occurring at least twice in their document) are grouped, and they
are found level by level: an n-gram can repeat only where both its (n-1)-word prefix and
its (n-1)-word suffix repeat, so level n folds and sorts just those candidates, whose keys
are one fold away from level n-1's. The lowest level asked for is grouped over every
position with one NumPy sort. Levels are memoised on the batch, so the filters of a chain
(top n-grams for n = 2..4, duplicate n-grams for n = 5..10) share the work.

Collisions: for a fixed document the key is a bijection of the folded word hashes, so two
different n-grams (of the same or of two documents) share a key with probability about
2**-64 per pair: below 1e-8 for a batch of a million n-grams. A collision could only
merge two n-gram counts. Key values decide nothing else: which occurrence is first and
which tied n-gram wins are settled by word positions, so results do not depend on the
hash seed, the order of the sort or the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from stages.text.filters.key_groups import fold
from stages.text.filters.words import TextBytes

_WORD_HASH_SEED = 0x5EED


@dataclass(frozen=True)
class RepeatedNGrams:
    """The n-grams of a batch that occur at least twice in their document.

    `positions`: word index of every occurrence of such an n-gram (ascending), `keys` its
    key; per group (one distinct n-gram of one document), `first` is the word index of its
    first occurrence and `count` its number of occurrences (at least 2).
    """

    positions: np.ndarray
    keys: np.ndarray
    first: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class BatchWords:
    """The words of every document of a batch, laid end to end."""

    texts: pl.Series  # the documents (null read as "")
    words: pl.Series  # every word, document after document
    doc: np.ndarray  # document index of each word (int64)
    counts: np.ndarray  # number of words per document (int64)
    starts: np.ndarray  # index in `words` of each document's first word (int64)
    text_chars: np.ndarray  # length in characters of each document
    word_chars: np.ndarray  # length in characters of each word (int64)
    _levels: dict[int, RepeatedNGrams] = field(default_factory=dict, repr=False, compare=False)

    @property
    def word_hashes(self) -> np.ndarray:
        """A 64-bit hash of every word (fixed seed), computed once per batch."""
        hashes = self.__dict__.get("_word_hashes")
        if hashes is None:
            hashes = self.words.hash(seed=_WORD_HASH_SEED).to_numpy()
            object.__setattr__(self, "_word_hashes", hashes)
        return hashes

    @property
    def word_chars_before(self) -> np.ndarray:
        """Characters of words 0..k-1 at index k (one entry more than there are words)."""
        total = self.__dict__.get("_word_chars_before")
        if total is None:
            total = np.zeros(len(self.word_chars) + 1, dtype=np.int64)
            np.cumsum(self.word_chars, out=total[1:])
            object.__setattr__(self, "_word_chars_before", total)
        return total

    @property
    def n_docs(self) -> int:
        return len(self.texts)


def split_words(texts: pa.ChunkedArray | pa.Array) -> BatchWords:
    """Split every document into words as `str.split()` does, without per-word Python.

    Computed once per batch: the n-gram filters of a chain share it through `TextBytes`.
    """
    text = TextBytes.from_column(texts)
    cached = text.__dict__.get("_batch_words")
    if cached is None:
        cached = text.__dict__["_batch_words"] = _split_words(text)
    return cached


def _split_words(text: TextBytes) -> BatchWords:
    spans = text.words
    data = text.buf[~text.is_space]  # the words' bytes, end to end
    offsets = np.zeros(len(spans.start) + 1, dtype=np.int64)
    np.cumsum(spans.end - spans.start, out=offsets[1:])
    words = pa.LargeStringArray.from_buffers(
        len(spans.start), pa.py_buffer(offsets), pa.py_buffer(data)
    )
    counts = spans.count.astype(np.int64)
    return BatchWords(
        texts=text.series,
        words=pl.Series("word", words),
        doc=spans.row.astype(np.int64),
        counts=counts,
        starts=np.cumsum(counts) - counts,
        text_chars=text.char_counts,
        word_chars=text.word_char_lengths.astype(np.int64, copy=False),
    )


def repeated_ngrams(batch: BatchWords, n: int) -> RepeatedNGrams:
    """The n-grams (n words within one document) that repeat in their document, grouped.

    Memoised on `batch`; built from the highest memoised level below `n` when there is one.
    """
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    levels = batch._levels
    if n in levels:
        return levels[n]
    below = [m for m in levels if m < n]
    if below:
        m = max(below)
        level = levels[m]
        for k in range(m + 1, n + 1):
            level = levels[k] = _extend(batch, level, k)
        return level
    level = levels[n] = _all_positions(batch, n)
    return level


def _all_positions(batch: BatchWords, n: int) -> RepeatedNGrams:
    """Level `n` from scratch: every n-gram of the batch keyed and grouped."""
    span = len(batch.words) - n + 1
    if span <= 0:
        return _group(np.zeros(0, np.int64), np.zeros(0, np.uint64))
    word_hashes = batch.word_hashes
    doc = batch.doc[:span]
    key = doc.astype(np.uint64)
    for offset in range(n):
        key = fold(key, word_hashes[offset : offset + span])
    local = np.arange(span, dtype=np.int64) - batch.starts[doc]
    valid = local <= batch.counts[doc] - n
    positions = np.flatnonzero(valid)
    return _group(positions, key[valid])


def _extend(batch: BatchWords, level: RepeatedNGrams, n: int) -> RepeatedNGrams:
    """Level `n` from level `n - 1`: an n-gram at k can repeat only where the (n-1)-grams
    at k and k + 1 (same document) both repeat."""
    pos = level.positions
    if len(pos) < 2:
        return _group(np.zeros(0, np.int64), np.zeros(0, np.uint64))
    doc = batch.doc
    follows = (pos[1:] == pos[:-1] + 1) & (doc[pos[1:]] == doc[pos[:-1]])
    candidates = pos[:-1][follows]
    keys = fold(level.keys[:-1][follows], batch.word_hashes[candidates + (n - 1)])
    return _group(candidates, keys)


def _group(positions: np.ndarray, keys: np.ndarray) -> RepeatedNGrams:
    """Group equal `keys` (one per entry of `positions`, ascending) and keep the groups of
    two or more."""
    if len(keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RepeatedNGrams(empty, np.zeros(0, np.uint64), empty, empty)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    same_as_next = sorted_keys[1:] == sorted_keys[:-1]
    repeated = np.zeros(len(keys), dtype=bool)
    repeated[:-1] = same_as_next
    repeated[1:] |= same_as_next
    if not repeated.any():
        empty = np.zeros(0, dtype=np.int64)
        return RepeatedNGrams(empty, np.zeros(0, np.uint64), empty, empty)
    members = order[repeated]  # sorted by key: groups are contiguous runs
    member_keys = sorted_keys[repeated]
    boundary = np.ones(len(members), dtype=bool)
    boundary[1:] = member_keys[1:] != member_keys[:-1]
    start = np.flatnonzero(boundary)
    first = np.minimum.reduceat(positions[members], start)
    count = np.diff(np.append(start, len(members)))
    keep = np.zeros(len(keys), dtype=bool)
    keep[members] = True
    return RepeatedNGrams(positions[keep], keys[keep], first, count)
