"""RepeatedParagraphsFilter: drop documents whose paragraphs are mostly repeats (Gopher)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import segments


class RepeatedParagraphsFilter(Filter):
    """Fraction of a document's paragraphs that are distinct.

    Score: distinct paragraphs / paragraphs, where paragraphs are the text split at
    "\\n\\n" (blank paragraphs included, so empty text is one paragraph and scores 1.0).
    Keep when score >= `max_repeated_paragraphs_ratio` (inclusive).

    Rule from Gopher (Rae et al. 2021, table A1: duplicate-paragraph fraction); same score,
    threshold and keep rule as NeMo Curator's `RepeatedParagraphsFilter` (default 0.7).
    """

    def __init__(
        self,
        max_repeated_paragraphs_ratio: float = 0.7,
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        self.max_repeated_paragraphs_ratio = max_repeated_paragraphs_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        counts = segments.paragraphs(text_column(batch, self.text_field, self.stage_name))
        return segments.ratio_or_one(counts.unique_segments, counts.segments)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.max_repeated_paragraphs_ratio
