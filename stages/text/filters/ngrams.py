"""Word n-grams of a whole batch, as 64-bit hashes, for the repeating n-gram filters.

Words are what Python's `str.split()` yields (runs of characters that are not whitespace
in the `str.isspace()` sense), which is NeMo Curator's English word splitter. The words of
every document are laid end to end in one array with their document index; each word gets
a 64-bit hash (Polars `hash`, fixed seed), and the n-gram starting at word k gets a 64-bit
hash folded from the hashes of words k..k+n-1 with a bijective mixer (SplitMix64's
finaliser), in n vectorised NumPy passes.

Two different n-grams of the same document share a hash with probability about 2**-64 per
pair, so for a document of a million words the chance of any collision is below 1e-7; a
collision could only merge two n-gram counts. Hash values never decide anything else:
ties and order are settled by word positions, so decisions do not depend on the hash seed,
the Polars version's hash function or the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from stages.text.filters.segments import as_text_series

# Python's `str.split()` separators: Unicode White_Space (`\s`) plus U+001C..U+001F.
WORD_PATTERN = r"[^\s\x1c-\x1f]+"

_WORD_HASH_SEED = 0x5EED
_FOLD = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class BatchWords:
    """The words of every document of a batch, laid end to end."""

    texts: pl.Series  # the documents (null read as "")
    words: pl.Series  # every word, document after document
    doc: np.ndarray  # document index of each word (int64)
    counts: np.ndarray  # number of words per document (int64)
    starts: np.ndarray  # index in `words` of each document's first word (int64)

    @property
    def n_docs(self) -> int:
        return len(self.texts)


def split_words(texts: pa.ChunkedArray | pa.Array) -> BatchWords:
    """Split every document into words as `str.split()` does, in one vectorised pass."""
    series = as_text_series(texts)
    lists = series.str.extract_all(WORD_PATTERN)
    counts = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    words = lists.explode().drop_nulls()
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    doc = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return BatchWords(texts=series, words=words, doc=doc, counts=counts, starts=starts)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that spreads every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(batch: BatchWords, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the n-grams starting at each word, and which starts are valid.

    Both arrays have one entry per word; entry k is the n-gram of words k..k+n-1, valid
    when those n words belong to the same document.
    """
    if n < 1:
        raise ValueError(f"n-gram size must be at least 1, got {n}")
    total = len(batch.words)
    hashes = np.zeros(total, dtype=np.uint64)
    valid = np.zeros(total, dtype=bool)
    span = total - n + 1
    if span <= 0:
        return hashes, valid
    word_hashes = batch.words.hash(seed=_WORD_HASH_SEED).to_numpy()
    folded = np.zeros(span, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            folded = _mix(folded * _FOLD + word_hashes[offset : offset + span])
    hashes[:span] = folded
    position = np.arange(total, dtype=np.int64) - batch.starts[batch.doc]
    valid = position <= batch.counts[batch.doc] - n
    return hashes, valid


def first_occurrences(doc: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """True where a (document, hash) pair appears for the first time, in array order."""
    frame = pl.DataFrame({"doc": doc, "hash": hashes})
    return frame.select(pl.struct("doc", "hash").is_first_distinct())[:, 0].to_numpy()
