"""`NonAlphaNumericFilter`: drop documents made mostly of symbols."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio


def _alphanumeric_bytes(buf: np.ndarray) -> np.ndarray:
    """Bytes that are ASCII letters, digits, newline or one of `? ! , .`."""
    letter = np.subtract(buf | 0x20, ord("a"), dtype=np.uint8) < 26
    digit = np.subtract(buf, ord("0"), dtype=np.uint8) < 10
    marks = (buf == ord("\n")) | (buf == ord("?")) | (buf == ord("!"))
    marks |= (buf == ord(",")) | (buf == ord("."))
    return letter | digit | marks


class NonAlphaNumericFilter(Filter):
    """Share of the characters that are not ASCII alphanumeric (newline and `?!,.` count as
    alphanumeric): `(len(text) - alphanumeric) / len(text)`; an empty text scores 1.0.

    Keep rule: `score <= max_non_alpha_numeric_to_text_ratio`. Adapted from Gopher (Rae et
    al. 2021); this matches NeMo Curator's `NonAlphaNumericFilter`.
    """

    def __init__(
        self,
        max_non_alpha_numeric_to_text_ratio: float = 0.25,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_non_alpha_numeric_to_text_ratio = max_non_alpha_numeric_to_text_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        alnum = text.segment_sums(_alphanumeric_bytes(text.buf))
        nchar = text.char_counts
        return ratio(nchar - alnum, nchar, empty=1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_non_alpha_numeric_to_text_ratio
