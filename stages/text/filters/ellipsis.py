"""`EllipsisFilter`: drop documents whose lines often trail off with an ellipsis."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio

# Line endings that count as an ellipsis (compared with the line lower-cased).
ELLIPSIS_ENDINGS = (
    "...",
    "[...]",
    "\u2026",
    "(...)",
    "[\u2026]",
    "-\u00bb",
    "read more..",
    "read more",
)
_ENDINGS = [np.frombuffer(e.encode(), dtype=np.uint8) for e in ELLIPSIS_ENDINGS]
_WIDTH = max(e.size for e in _ENDINGS)


class EllipsisFilter(Filter):
    """Share of the non-blank lines (`text.split("\\n")`) that end, after stripping and
    lower-casing, with an ellipsis: `...`, `…`, `[...]`, `(...)`, `[…]`, `-»`, "read more"
    or "read more..". A document without non-blank lines scores 0.0 (NeMo Curator's filter
    raises on it).

    Keep rule: `score <= max_num_lines_ending_with_ellipsis_ratio`. C4-style truncated-text
    rule (Raffel et al. 2020); this matches NeMo Curator's `EllipsisFilter`.
    """

    def __init__(
        self,
        max_num_lines_ending_with_ellipsis_ratio: float = 0.3,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_num_lines_ending_with_ellipsis_ratio = max_num_lines_ending_with_ellipsis_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        _, last_word = text.lines
        end = text.words.end[last_word]
        # The endings' letters are ASCII and no other character lower-cases to them, so
        # ASCII lower-casing of the line's last bytes is exact.
        tail = text.windows(end, _WIDTH)
        upper = np.subtract(tail, ord("A"), dtype=np.uint8) < 26
        tail = tail | (upper.astype(np.uint8) << 5)
        room = end - text.starts[text.words.row[last_word]]
        hit = np.zeros(end.size, dtype=bool)
        for ending in _ENDINGS:
            n = ending.size
            hit |= (room >= n) & (tail[:, _WIDTH - n :] == ending).all(axis=1)
        ellipsis_lines = text.rows_of_words(last_word[hit])
        return ratio(ellipsis_lines, text.line_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_num_lines_ending_with_ellipsis_ratio
