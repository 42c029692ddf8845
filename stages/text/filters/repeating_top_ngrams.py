"""RepeatingTopNGramsFilter: drop documents dominated by their most frequent n-gram
(Gopher)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import ngrams
from stages.text.filters.words import check_language


class RepeatingTopNGramsFilter(Filter):
    """Share of a document's characters taken by its most frequent word n-gram.

    Words are `str.split()` words. The most frequent n-gram is joined with single spaces
    and score = (occurrences of that string in the text, non-overlapping, as substrings)
    x its length / the text's length in characters. Keep when score <=
    `max_repeating_ngram_ratio` (inclusive). A document with fewer than `n` words (empty,
    whitespace-only, null included) scores 1.0 and is dropped.

    Ties: among the n-grams of highest count, the one that appears first in the document
    wins (as `collections.Counter(ngrams).most_common(1)` would pick). It depends on the
    document alone, not on hashing, set order or the batch. NeMo Curator breaks the same
    tie by set iteration order, which follows PYTHONHASHSEED; the two agree whenever the
    tied n-grams lead to the same decision.

    Rule from Gopher (Rae et al. 2021, table A1: fraction of characters in the most common
    n-gram, n = 2..4); same score, thresholds and keep rule as NeMo Curator's
    `RepeatingTopNGramsFilter` (defaults n=2, 0.2). n-grams are counted by 64-bit hash
    (see `stages.text.filters.ngrams`).
    """

    def __init__(
        self,
        n: int = 2,
        max_repeating_ngram_ratio: float = 0.2,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError(f"RepeatingTopNGramsFilter: n must be at least 1, got {n}")
        check_language(lang, type(self).__name__)
        self.n = n
        self.max_repeating_ngram_ratio = max_repeating_ngram_ratio
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    @property
    def stage_name(self) -> str:
        return self.name or f"{type(self).__name__}_{self.n}"

    def score(self, batch: pa.Table) -> np.ndarray:
        words = ngrams.split_words(text_column(batch, self.text_field, self.stage_name))
        scores = np.ones(words.n_docs, dtype=np.float64)
        has_ngram = np.flatnonzero(words.counts >= self.n)
        if len(has_ngram) == 0:
            return scores
        # The top n-gram: highest count, ties to the earliest first occurrence. Where no
        # n-gram repeats, that is the document's first n-gram.
        top = words.starts.copy()
        repeated = ngrams.repeated_ngrams(words, self.n)
        first, count = repeated.first, repeated.count
        doc = words.doc[first]
        order = np.lexsort((first, -count, doc))
        leader = np.ones(len(order), dtype=bool)
        leader[1:] = doc[order][1:] != doc[order][:-1]
        top[doc[order][leader]] = first[order][leader]

        top = top[has_ngram]
        pattern = words.words.gather(top)
        for offset in range(1, self.n):
            pattern = pattern + " " + words.words.gather(top + offset)
        hits = (
            pl.DataFrame({"text": words.texts.gather(has_ngram), "pattern": pattern})
            .select(pl.col("text").str.count_matches(pl.col("pattern"), literal=True))
            .to_series()
            .to_numpy()
            .astype(np.int64)
        )
        pattern_chars = pattern.str.len_chars().to_numpy().astype(np.int64)
        scores[has_ngram] = hits * pattern_chars / words.text_chars[has_ngram]
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_repeating_ngram_ratio
