"""Word n-grams of a whole batch, grouped by 64-bit hash, for the repeating n-gram filters.

Words are `str.split()` words (NeMo Curator's English splitter), found as byte spans by
`stages.text.filters.words.TextBytes`. The words of every document are laid end to end in
one Arrow string array (built from the text buffer with the whitespace bytes masked out,
no per-word Python), each word gets a 64-bit hash (Polars `hash`, fixed seed), and the
n-gram starting at word k gets a 64-bit key folded from the hashes of words k..k+n-1 and
the document index with a bijective mixer (SplitMix64's finaliser), in n NumPy passes.
Equal keys are then grouped with one NumPy sort.

Collisions: for a fixed document the key is a bijection of the folded word hashes, so two
different n-grams (of the same or of two documents) share a key with probability about
2**-64 per pair: below 1e-8 for a batch of a million n-grams. A collision could only
merge two n-gram counts. Key values decide nothing else: which occurrence is first and
which tied n-gram wins are settled by word positions, so results do not depend on the
hash seed, the order of the sort or the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from stages.text.filters.key_groups import fold, group_keys
from stages.text.filters.words import TextBytes

_WORD_HASH_SEED = 0x5EED


@dataclass(frozen=True)
class BatchWords:
    """The words of every document of a batch, laid end to end."""

    texts: pl.Series  # the documents (null read as "")
    words: pl.Series  # every word, document after document
    doc: np.ndarray  # document index of each word (int64)
    counts: np.ndarray  # number of words per document (int64)
    starts: np.ndarray  # index in `words` of each document's first word (int64)
    text_chars: np.ndarray  # length in characters of each document

    @property
    def word_hashes(self) -> np.ndarray:
        """A 64-bit hash of every word (fixed seed), computed once per batch."""
        hashes = self.__dict__.get("_word_hashes")
        if hashes is None:
            hashes = self.words.hash(seed=_WORD_HASH_SEED).to_numpy()
            object.__setattr__(self, "_word_hashes", hashes)
        return hashes

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
    )


@dataclass(frozen=True)
class NGramGroups:
    """The n-grams of a batch grouped by (document, n-gram).

    `positions`: word index of every n-gram start (ascending); per group, `first` is the
    word index of its first occurrence and `count` its number of occurrences.
    """

    positions: np.ndarray
    first: np.ndarray
    count: np.ndarray


def group_ngrams(batch: BatchWords, n: int) -> NGramGroups:
    """Group the n-grams of every document (n words within one document) by content."""
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    span = len(batch.words) - n + 1
    if span <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return NGramGroups(empty, empty, empty)
    word_hashes = batch.word_hashes
    doc = batch.doc[:span]
    key = doc.astype(np.uint64)
    for offset in range(n):
        key = fold(key, word_hashes[offset : offset + span])
    local = np.arange(span, dtype=np.int64) - batch.starts[doc]
    positions = np.flatnonzero(local <= batch.counts[doc] - n)
    first, count = group_keys(key[positions], positions)
    return NGramGroups(positions=positions, first=first, count=count)
