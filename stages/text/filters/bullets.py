"""`BulletsFilter`: drop documents that are mostly bullet lists."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio

BULLETS = ("•", "‣", "⁃", "⁌", "⁍", "∙", "○", "●", "◘", "◦", "⦾", "⦿")  # noqa: RUF001
# Every bullet is a 3-byte UTF-8 character: compare lines' first 3 bytes as one number.
_BULLET_KEYS = np.array([int.from_bytes(b.encode(), "little") for b in BULLETS], dtype=np.uint32)


class BulletsFilter(Filter):
    """Share of the non-blank lines (`text.split("\\n")`) whose first non-whitespace
    character is a bullet (•, ‣, ⁃, ⁌, ⁍, ∙, ○, ●, ◘, ◦, ⦾, ⦿). A document without
    non-blank lines scores 0.0 (NeMo Curator's filter raises on it).

    Keep rule: `score <= max_bullet_lines_ratio`. Gopher's rule (Rae et al. 2021, at most 90%
    of lines starting with a bullet); this matches NeMo Curator's `BulletsFilter`.
    """

    def __init__(
        self,
        max_bullet_lines_ratio: float = 0.9,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        first = text.line_firsts
        # Every bullet starts with the byte 0xE2: look closer at those lines only.
        first = first[text.buf[first] == 0xE2]
        bullet = np.isin(text.load(first, 4) & 0xFFFFFF, _BULLET_KEYS)
        return ratio(text.rows_of_positions(first[bullet]), text.line_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_bullet_lines_ratio
