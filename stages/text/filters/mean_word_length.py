"""`MeanWordLengthFilter`: keep documents whose mean word length lies in a range."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, check_language, ratio


class MeanWordLengthFilter(Filter):
    """Mean length, in characters, of the words of the document (`text.split()`).

    Keep rule: `min_mean_word_length <= mean <= max_mean_word_length` (inclusive). A
    document without words scores 0.0 (NeMo Curator's filter raises on it). The 3 to 10
    characters rule is Gopher's (Rae et al. 2021); this matches NeMo Curator's
    `MeanWordLengthFilter`.
    """

    def __init__(
        self,
        min_mean_word_length: int = 3,
        max_mean_word_length: int = 10,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_language(lang, type(self).__name__)
        self.min_mean_word_length = min_mean_word_length
        self.max_mean_word_length = max_mean_word_length
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        # Words are the non-whitespace characters, so their total length needs no splitting.
        word_chars = text.char_counts - text.space_char_counts
        return ratio(word_chars, text.word_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_mean_word_length) & (scores <= self.max_mean_word_length)
