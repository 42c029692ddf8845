"""`NumbersFilter`: drop documents made mostly of digits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio


class NumbersFilter(Filter):
    """Share of the characters that are the digits 0-9; an empty text scores 1.0.

    Keep rule: `score <= max_number_to_text_ratio`. A Gopher-style symbol heuristic (Rae et
    al. 2021); this matches NeMo Curator's `NumbersFilter` (whose `[[:digit:]]` class is
    ASCII 0-9 only).
    """

    def __init__(
        self,
        max_number_to_text_ratio: float = 0.15,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_number_to_text_ratio = max_number_to_text_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        digits = text.series.str.count_matches("[0-9]").to_numpy()
        return ratio(digits, text.char_counts, empty=1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_number_to_text_ratio
