"""RepeatedLinesFilter: drop documents whose lines are mostly repeats (Gopher)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters import segments


class RepeatedLinesFilter(Filter):
    """Fraction of a document's non-blank lines that are distinct.

    Score: distinct lines / lines, where lines are the text split at "\\n" with
    whitespace-only lines left out. Keep when score >= `max_repeated_line_fraction`
    (inclusive). A document with no non-blank line (empty, whitespace-only, null) scores
    1.0, nothing being repeated, and is kept.

    Rule from Gopher (Rae et al. 2021, table A1: duplicate-line fraction); same score,
    threshold and keep rule as NeMo Curator's `RepeatedLinesFilter` (default 0.7).
    """

    def __init__(
        self,
        max_repeated_line_fraction: float = 0.7,
        text_field: str = "text",
        keep_score: bool = False,
    ) -> None:
        self.max_repeated_line_fraction = max_repeated_line_fraction
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        counts = segments.lines(text_column(batch, self.text_field, self.stage_name))
        return segments.ratio_or_one(counts.unique_segments, counts.segments)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.max_repeated_line_fraction
