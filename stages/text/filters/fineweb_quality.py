"""`FineWebQualityFilter`: FineWeb's line-level quality rules, as datatrove applies them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from stages.base import text_column
from stages.text.filters.gopher_repetition import duplicates
from stages.text.filters.punctuation_marks import TERMINAL_PUNCTUATION
from stages.text.filters.score_fields import (
    RuleFilter,
    score_fields,
    struct_scores,
)
from stages.text.filters.word_tokens import check_english, word_tokens
from stages.text.filters.words import TextBytes

FIELDS = ["lines", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio"]


class FineWebQualityFilter(RuleFilter):
    """FineWeb's own quality rules (Penedo et al. 2024, "The FineWeb datasets", section
    3.5) as datatrove's `FineWebQualityFilter` applies them: same arguments, defaults and
    order. Lines are the text split at "\\n", blank ones left out (not stripped).

    The score is a struct: `lines`; `line_punct_ratio`, the share of lines ending with
    one of `stop_chars` (default: datatrove's terminal punctuation of all scripts);
    `short_line_ratio`, the share of lines of at most `short_line_length` characters;
    `char_dup_ratio`, the characters of lines that repeat an earlier line over the
    characters of the text without newlines; `list_ratio`, newlines per word (English
    tokens, see `word_tokens`). An empty, blank or null text has 0 lines and ratios 0.

    Keep rule, in datatrove's order: `lines > 0` (`empty`); `line_punct_ratio >=
    line_punct_thr`, unless the ratio is 0 and `line_punct_exclude_zero`
    (`line_punct_ratio`); `short_line_ratio <= short_line_thr` (`short_line_ratio`);
    `char_dup_ratio <= char_duplicates_ratio` (`char_dup_ratio`); `list_ratio <=
    new_line_ratio` (`list_ratio`). `reason(scores)` names the first rule a row fails.
    `stop_chars` and `short_line_length` change the score; the thresholds do not.
    """

    def __init__(
        self,
        line_punct_thr: float = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: Sequence[str] | None = None,
        short_line_thr: float = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float = 0.01,
        new_line_ratio: float = 0.3,
        language: str = "eng",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_english(language, type(self).__name__)
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        self.stop_chars = (
            tuple(sorted(TERMINAL_PUNCTUATION)) if stop_chars is None else tuple(stop_chars)
        )
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio
        self.language = language
        self.text_field = text_field
        self.keep_score = keep_score

    def _stats(self, text: str) -> tuple:
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return (0, 0.0, 0.0, 0.0, 0.0)
        n = len(lines)
        punct = sum(1 for line in lines if line.endswith(self.stop_chars)) / n
        short = sum(1 for line in lines if len(line) <= self.short_line_length) / n
        dup = duplicates(lines)[1] / len(text.replace("\n", ""))
        words = len(word_tokens(text))
        newlines = text.count("\n") / words if words else 0.0
        return (n, punct, short, dup, newlines)

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        rows = [self._stats(t) for t in text.array.to_pylist()]
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in FIELDS]
        types = [np.int64] + [np.float64] * 4
        return struct_scores(
            {
                name: np.asarray(col, dtype=t)
                for name, col, t in zip(FIELDS, columns, types, strict=True)
            }
        )

    def failures(self, scores) -> list[tuple[str, np.ndarray]]:
        """(datatrove's reason, rows failing that rule), in datatrove's order."""
        f = score_fields(scores, FIELDS, self.stage_name)
        punct = f["line_punct_ratio"]
        low_punct = punct < self.line_punct_thr
        if self.line_punct_exclude_zero:
            low_punct &= punct != 0
        empty = f["lines"] == 0
        return [
            ("empty", empty),
            ("line_punct_ratio", ~empty & low_punct),
            ("short_line_ratio", f["short_line_ratio"] > self.short_line_thr),
            ("char_dup_ratio", f["char_dup_ratio"] > self.char_duplicates_ratio),
            ("list_ratio", f["list_ratio"] > self.new_line_ratio),
        ]
