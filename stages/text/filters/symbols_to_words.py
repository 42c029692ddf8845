"""`SymbolsToWordsFilter`: drop documents with too many hash or ellipsis words."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, check_language, pack, ratio

# Words that are an ellipsis by themselves.
ELLIPSIS_WORDS = ("...", "[...]", "\u2026", "(...)", "[\u2026]", "-\u00bb")
_ELLIPSIS_KEYS = np.array([pack(w) for w in ELLIPSIS_WORDS], dtype=np.uint64)
_ELLIPSIS_FIRST = np.zeros(256, dtype=bool)  # which bytes start an ellipsis word
_ELLIPSIS_FIRST[[w.encode()[0] for w in ELLIPSIS_WORDS]] = True
# (Each ellipsis word is 3 or 5 bytes long in UTF-8.)
_HASH_RUN = re.compile("#+")


def _is_hash_word(word: str) -> bool:
    # More runs of '#' than half the word's characters ('#', '#a#', '#a#b#', ...).
    return len(_HASH_RUN.findall(word)) / len(word) > 0.5


class SymbolsToWordsFilter(Filter):
    """Share of the words (`text.split()`) that are symbol words: an ellipsis (`...`, `…`,
    `[...]`, `(...)`, `[…]`, `-»`) or a word whose number of `#` runs exceeds half its
    length. A document without words scores 0.0 (NeMo Curator's filter raises on it).

    Keep rule: `score <= max_symbol_to_word_ratio`. Gopher's symbol-to-word rule (Rae et
    al. 2021); this matches NeMo Curator's `SymbolsToWordsFilter`.
    """

    def __init__(
        self,
        max_symbol_to_word_ratio: float = 0.1,
        lang: str = "en",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_language(lang, type(self).__name__)
        self.max_symbol_to_word_ratio = max_symbol_to_word_ratio
        self.lang = lang
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        starts, ends = text.word_starts, text.word_ends
        nbytes = ends - starts
        first = text.buf[starts]
        short = np.flatnonzero(_ELLIPSIS_FIRST[first] & ((nbytes == 3) | (nbytes == 5)))
        ellipsis = short[np.isin(text.word_keys(short), _ELLIPSIS_KEYS)]
        hashed = np.flatnonzero(first == ord("#"))
        hashed = hashed[text.buf[ends[hashed] - 1] == ord("#")]
        hashed = np.array([i for i in hashed if _is_hash_word(text.word_text(i))], dtype=np.int64)
        symbols = np.union1d(ellipsis, hashed).astype(np.int64)
        return ratio(text.rows_of_positions(starts[symbols]), text.word_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_symbol_to_word_ratio
