"""`WordsWithoutAlphabetsFilter`: keep documents whose words are mostly made of letters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, check_language, is_alphabetic, ratio


class WordsWithoutAlphabetsFilter(Filter):
    """Share of the words (`text.split()`) that contain at least one alphabetic character
    (Unicode `Alphabetic`, any script). A document without words scores 0.0 (NeMo Curator's
    filter raises on it).

    Keep rule: `score >= min_words_with_alphabets`. Gopher's rule (Rae et al. 2021): 80% of
    words must contain a letter; this matches NeMo Curator's `WordsWithoutAlphabetsFilter`.
    """

    def __init__(
        self,
        min_words_with_alphabets: float = 0.8,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_language(lang, type(self).__name__)
        self.min_words_with_alphabets = min_words_with_alphabets
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        alpha = np.subtract(text.buf | 0x20, ord("a"), dtype=np.uint8) < 26
        pos, codepoints, _ = text.non_ascii_chars
        if pos.size:
            alpha[pos] = is_alphabetic(codepoints)
        starts = text.word_starts
        with_alpha = text.segment_sums_at(alpha, starts, text.word_ends) > 0
        return ratio(text.rows_of_positions(starts[with_alpha]), text.word_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_words_with_alphabets
