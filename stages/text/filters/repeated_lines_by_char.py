"""RepeatedLinesByCharFilter: drop documents whose characters sit mostly in repeated
lines (Gopher)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import segments


class RepeatedLinesByCharFilter(Filter):
    """Share of a document's line characters that belong to distinct lines.

    Score: characters of the distinct non-blank lines (each counted once) / characters of
    all non-blank lines, lines being the text split at "\\n" (the "\\n" themselves not
    counted). Keep when score >= `max_repeated_lines_char_ratio` (inclusive). A document
    with no non-blank line (empty, whitespace-only, null) scores 1.0 and is kept.

    Rule from Gopher (Rae et al. 2021, table A1: characters in duplicate lines); same
    score, threshold and keep rule as NeMo Curator's `RepeatedLinesByCharFilter` (default
    0.8).
    """

    def __init__(
        self,
        max_repeated_lines_char_ratio: float = 0.8,
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        self.max_repeated_lines_char_ratio = max_repeated_lines_char_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        counts = segments.lines(text_column(batch, self.text_field, self.stage_name))
        return segments.ratio_or_one(counts.unique_chars, counts.chars)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.max_repeated_lines_char_ratio
