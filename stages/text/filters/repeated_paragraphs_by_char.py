"""RepeatedParagraphsByCharFilter: drop documents whose characters sit mostly in repeated
paragraphs (Gopher)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import segments


class RepeatedParagraphsByCharFilter(Filter):
    """Share of a document's paragraph characters that belong to distinct paragraphs.

    Score: characters of the distinct paragraphs (each counted once) / characters of all
    paragraphs, paragraphs being the text split at "\\n\\n" (the separators not counted).
    Keep when score >= `max_repeated_paragraphs_char_ratio` (inclusive). A document whose
    paragraphs hold no character (empty, null, only "\\n\\n") scores 1.0 and is kept.

    Rule from Gopher (Rae et al. 2021, table A1: characters in duplicate paragraphs); same
    score, threshold and keep rule as NeMo Curator's `RepeatedParagraphsByCharFilter`
    (default 0.8).
    """

    def __init__(
        self,
        max_repeated_paragraphs_char_ratio: float = 0.8,
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        self.max_repeated_paragraphs_char_ratio = max_repeated_paragraphs_char_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        counts = segments.paragraphs(text_column(batch, self.text_field, self.stage_name))
        return segments.ratio_or_one(counts.unique_chars, counts.chars)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.max_repeated_paragraphs_char_ratio
