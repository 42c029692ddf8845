"""`LongWordFilter`: drop documents containing a very long word."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, check_language


class LongWordFilter(Filter):
    """Length in characters of the longest word (`text.split()`); a document without words
    scores 0 (NeMo Curator's filter raises on it).

    Keep rule: `score <= max_word_length`. C4's rule (Raffel et al. 2020): words over 1000
    characters are mostly minified code or encoded data; this matches NeMo Curator's
    `LongWordFilter`.
    """

    def __init__(
        self,
        max_word_length: int = 1000,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_language(lang, type(self).__name__)
        self.max_word_length = max_word_length
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        lengths = text.word_char_lengths
        scores = np.zeros(text.num_rows, dtype=np.int64)
        has_words = text.words.count > 0
        if has_words.any():
            first = text.first_word_of_row[has_words]
            scores[has_words] = np.maximum.reduceat(lengths, first)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_word_length
