"""`PunctuationFilter`: drop documents whose lines rarely end like sentences."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio

END_MARKS = (".", "?", "!", '"', "'")
_END_BYTES = np.array([ord(m) for m in END_MARKS], dtype=np.uint8)


class PunctuationFilter(Filter):
    """Share of the non-blank lines (`text.split("\\n")`) whose last non-whitespace
    character is not one of `. ? ! " '`. A document without non-blank lines scores 0.0
    (NeMo Curator's filter raises on it).

    Keep rule: `score <= max_num_sentences_without_endmark_ratio`. C4's terminal
    punctuation rule (Raffel et al. 2020), by share of lines; this matches NeMo Curator's
    `PunctuationFilter`.
    """

    def __init__(
        self,
        max_num_sentences_without_endmark_ratio: float = 0.85,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_num_sentences_without_endmark_ratio = max_num_sentences_without_endmark_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        last = text.line_ends - 1  # the last non-whitespace byte of each line
        ended = text.rows_of_positions(last[np.isin(text.buf[last], _END_BYTES)])
        lines = text.line_counts
        return ratio(lines - ended, lines, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_num_sentences_without_endmark_ratio
