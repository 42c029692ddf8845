"""`AlphaFilter`: drop code files that are mostly numbers and symbols (data, tensors)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import ALPHA_CLASS, TextBytes, ratio


class AlphaFilter(Filter):
    """Share of the characters that are alphabetic (`[[:alpha:]]`: Unicode `Alphabetic`,
    any script). Empty and null texts score 0.0 (NeMo Curator's filter raises on them).

    Keep rule: `score >= min_alpha_ratio` (inclusive). StarCoder's alpha filter (Li et al.
    2023: files of large tensors or tables stored as text); this matches NeMo Curator's
    `AlphaFilter` and its default 0.25.
    """

    def __init__(
        self,
        min_alpha_ratio: float = 0.25,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.min_alpha_ratio = min_alpha_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        alpha = text.series.str.count_matches(f"[{ALPHA_CLASS}]").to_numpy().astype(np.int64)
        return ratio(alpha, text.char_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_alpha_ratio
