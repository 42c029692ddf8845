"""RepeatingDuplicateNGramsFilter: drop documents whose characters sit mostly in repeated
n-grams (Gopher)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import ngrams
from stages.text.filters.words import check_language


class RepeatingDuplicateNGramsFilter(Filter):
    """Share of a document's characters covered by n-grams seen earlier in it.

    Words are `str.split()` words. An n-gram occurrence is a duplicate when the same n
    words occurred before in the document. A word counts when some duplicate occurrence
    covers it; the space between two consecutive words counts when one duplicate
    occurrence covers both. Score = (characters of the counted words + counted spaces) /
    the text's length in characters. Keep when score <=
    `max_repeating_duplicate_ngram_ratio` (inclusive). A document with fewer than `n` words
    (empty, whitespace-only, null included) scores 1.0 and is dropped.

    Rule from Gopher (Rae et al. 2021, table A1: fraction of characters in duplicate
    n-grams, n = 5..10); same score, thresholds and keep rule as NeMo Curator's
    `RepeatingDuplicateNGramsFilter` (defaults n=2, 0.2). n-grams are compared by 64-bit
    hash (see `stages.text.filters.ngrams`); which occurrence is "first" is decided by
    position, so the score does not depend on hashing or the batch.
    """

    def __init__(
        self,
        n: int = 2,
        max_repeating_duplicate_ngram_ratio: float = 0.2,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError(f"RepeatingDuplicateNGramsFilter: n must be at least 1, got {n}")
        check_language(lang, type(self).__name__)
        self.n = n
        self.max_repeating_duplicate_ngram_ratio = max_repeating_duplicate_ngram_ratio
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    @property
    def stage_name(self) -> str:
        return self.name or f"{type(self).__name__}_{self.n}"

    def score(self, batch: pa.Table) -> np.ndarray:
        n = self.n
        words = ngrams.split_words(text_column(batch, self.text_field, self.stage_name))
        scores = np.ones(words.n_docs, dtype=np.float64)
        has_ngram = words.counts >= n
        if not has_ngram.any():
            return scores
        repeated = ngrams.repeated_ngrams(words, n)
        duplicate = np.ones(len(repeated.positions), dtype=bool)
        duplicate[np.searchsorted(repeated.positions, repeated.first)] = False
        starts = repeated.positions[duplicate]  # duplicate occurrences, ascending
        # Overlapping occurrences (starts less than n words apart) cover one run of words
        # whose inner spaces all count; occurrences n or more words apart (never two
        # documents) start a new run, and the space between two runs does not count.
        new_run = np.ones(len(starts), dtype=bool)
        new_run[1:] = starts[1:] - starts[:-1] >= n
        ends_run = np.ones(len(starts), dtype=bool)
        ends_run[:-1] = new_run[1:]
        run_start = starts[new_run]
        run_end = starts[ends_run] + n
        before = words.word_chars_before
        run_chars = before[run_end] - before[run_start] + (run_end - run_start - 1)
        per_doc = np.bincount(words.doc[run_start], weights=run_chars, minlength=words.n_docs)
        scores[has_ngram] = per_doc[has_ngram] / words.text_chars[has_ngram]
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_repeating_duplicate_ngram_ratio
