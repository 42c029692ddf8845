"""`CommonEnglishWordsFilter`: keep documents that use common English function words."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, pack

# Lower-case only, on purpose: SHOUTED text does not count.
COMMON_ENGLISH_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_KEYS = np.array([pack(w, 4) for w in COMMON_ENGLISH_WORDS], dtype=np.uint32)
_FIRST_BYTES = np.zeros(256, dtype=bool)  # which bytes start a common word
_FIRST_BYTES[[ord(w[0]) for w in COMMON_ENGLISH_WORDS]] = True


class CommonEnglishWordsFilter(Filter):
    """Number of words (`text.split()`) that are exactly one of "the", "be", "to", "of",
    "and", "that", "have", "with" (case-sensitive). With `stop_at_false` the count stops as
    soon as it reaches `min_num_common_words`, so the score is capped there.

    Keep rule: `score >= min_num_common_words`. A stop-word presence check in the spirit of
    Gopher's (Rae et al. 2021); this matches NeMo Curator's `CommonEnglishWordsFilter`,
    scores included.
    """

    def __init__(
        self,
        min_num_common_words: int = 2,
        stop_at_false: bool = True,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.min_num_common_words = min_num_common_words
        self.stop_at_false = stop_at_false
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        starts, ends = text.word_starts, text.word_ends
        nbytes = ends - starts
        candidate = np.flatnonzero((nbytes >= 2) & (nbytes <= 4) & _FIRST_BYTES[text.buf[starts]])
        common = candidate[np.isin(text.word_keys(candidate, width=4), _KEYS)]
        counts = text.rows_of_positions(starts[common])
        if not self.stop_at_false:
            return counts
        cutoff = self.min_num_common_words
        if cutoff > 0:
            # Counting stops at the first count >= cutoff, which is ceil(cutoff).
            return np.minimum(counts, math.ceil(cutoff))
        # A non-positive cutoff is reached after the first word: its own count is the score.
        is_common = np.zeros(starts.size, dtype=np.int64)
        is_common[common] = 1
        first = np.zeros(text.num_rows, dtype=np.int64)
        has_words = text.word_counts > 0
        first[has_words] = is_common[text.first_word_of_row[has_words]]
        return first

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_num_common_words
