"""`SubstringFilter`: keep documents that hold a given string at a given place."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, text_column

POSITIONS = ("prefix", "suffix", "any")


class SubstringFilter(Filter):
    """1 when the text starts with (`position="prefix"`), ends with (`"suffix"`) or
    contains (`"any"`) `substring`, case-sensitive, else 0. A null text counts as empty;
    an empty `substring` is found in every text.

    Keep rule: `score == 1`. NeMo Curator's `SubstringFilter` (same arguments, no
    defaults: both are required); another position is a `ValueError`.
    """

    def __init__(
        self,
        substring: str,
        position: Literal["prefix", "suffix", "any"],
        text_field: str = "text",
        keep_score: bool = False,
    ):
        if position not in POSITIONS:
            raise ValueError(
                f"SubstringFilter: invalid position {position!r}; must be one of {list(POSITIONS)}"
            )
        if not isinstance(substring, str):
            raise TypeError(f"SubstringFilter: substring must be a string, got {substring!r}")
        self.substring = substring
        self.position = position
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        texts = pc.fill_null(text_column(batch, self.text_field, self.stage_name), "")
        if self.position == "prefix":
            found = pc.starts_with(texts, self.substring)
        elif self.position == "suffix":
            found = pc.ends_with(texts, self.substring)
        else:
            found = pc.match_substring(texts, self.substring)
        return found.to_numpy(zero_copy_only=False).astype(np.int64)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores == 1
