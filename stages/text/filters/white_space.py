"""`WhiteSpaceFilter`: drop documents padded with whitespace."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio


class WhiteSpaceFilter(Filter):
    """Share of the characters that are tab, newline, carriage return, backspace or space
    (leading and trailing ones included); an empty text scores 1.0.

    Keep rule: `score <= max_white_space_ratio`. A C4/Gopher-style quality heuristic
    (Raffel et al. 2020, Rae et al. 2021); this matches NeMo Curator's `WhiteSpaceFilter`.
    """

    def __init__(
        self,
        max_white_space_ratio: float = 0.25,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_white_space_ratio = max_white_space_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        b = text.buf
        space = (b == 32) | (b == 10) | (b == 9) | (b == 13) | (b == 8)
        nchar = text.char_counts
        return ratio(text.segment_sums(space), nchar, empty=1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_white_space_ratio
