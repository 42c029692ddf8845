"""`ParenthesesFilter`: drop documents full of brackets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio


class ParenthesesFilter(Filter):
    """Share of the characters that are brackets: `( ) [ ] { } ⟨ ⟩`; an empty text scores
    1.0.

    Keep rule: `score <= max_parentheses_ratio`. A Gopher-style symbol heuristic (Rae et al.
    2021); this matches NeMo Curator's `ParenthesesFilter`.
    """

    def __init__(
        self,
        max_parentheses_ratio: float = 0.1,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_parentheses_ratio = max_parentheses_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        brackets = text.series.str.count_matches(r"[(){}\[\]\x{27E8}\x{27E9}]").to_numpy()
        return ratio(brackets, text.char_counts, empty=1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_parentheses_ratio
