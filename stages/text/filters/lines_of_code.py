"""`NumberOfLinesOfCodeFilter`: keep code files whose line count lies in a range."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, text_column


class NumberOfLinesOfCodeFilter(Filter):
    """Number of lines: the newlines in the text plus one (an empty or null text is one
    line, and so is a text without a newline).

    Keep rule: `min_lines <= score <= max_lines` (both inclusive). NeMo Curator's
    `NumberOfLinesOfCodeFilter`, defaults 10 and 20,000 (its code recipe uses 5).
    """

    def __init__(
        self,
        min_lines: int = 10,
        max_lines: int = 20000,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.min_lines = min_lines
        self.max_lines = max_lines
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        texts = pc.fill_null(text_column(batch, self.text_field, self.stage_name), "")
        newlines = pc.count_substring(texts, "\n").to_numpy(zero_copy_only=False)
        return newlines.astype(np.int64) + 1

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_lines) & (scores <= self.max_lines)
