"""`WordCountFilter`: keep documents whose word count lies in a range."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, check_language


class WordCountFilter(Filter):
    """Number of words of the document (`text.split()`, see `words`).

    Keep rule: `min_words <= count <= max_words` (both bounds inclusive). Empty and null
    texts count 0 words. Word-count bounds are a Gopher rule (Rae et al. 2021, 50 to
    100,000 words); this matches NeMo Curator's `WordCountFilter` (English splitter).
    """

    def __init__(
        self,
        min_words: int = 50,
        max_words: int = 100000,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_language(lang, type(self).__name__)
        self.min_words = min_words
        self.max_words = max_words
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        return text.word_counts

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_words) & (scores <= self.max_words)
