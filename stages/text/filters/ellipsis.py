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


def _suffix_tests(ending: str) -> list[tuple[int, int, int, int]]:
    """How to test that a line ends with `ending`, as (offset, width, fold, expected): the
    `width` bytes that start `offset` bytes before the line's end, OR-ed with `fold`, must
    equal `expected`. `fold` sets 0x20 on the ending's ASCII letters (to ignore case) and
    every bit of the loaded bytes that lie outside the ending (to ignore them)."""
    data = ending.encode()
    tests = []
    after = 0
    while after < len(data):
        part = data[max(0, len(data) - after - 8) : len(data) - after]
        width = 8 if len(part) > 4 else 4
        outside = (2 ** (8 * width) - 1) ^ ((1 << (8 * len(part))) - 1)
        letters = sum(
            0x20 << (8 * i) for i, c in enumerate(part) if chr(c).isascii() and chr(c).isalpha()
        )
        expected = int.from_bytes(part, "little") | outside
        tests.append((after + len(part), width, letters | outside, expected))
        after += len(part)
    return tests


_TESTS = [(len(e.encode()), _suffix_tests(e)) for e in ELLIPSIS_ENDINGS]
_LAST_BYTES = np.zeros(256, dtype=bool)  # which bytes can end an ellipsis line
_LAST_BYTES[[e.encode()[-1] for e in ELLIPSIS_ENDINGS]] = True
_LAST_BYTES[ord("E")] = True


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
        end = text.line_ends
        # Only lines whose last byte can end an ellipsis need a closer look.
        end = end[_LAST_BYTES[text.buf[end - 1]]]
        # The endings' letters are ASCII and no other character lower-cases to them, so
        # ignoring ASCII case on the line's last bytes is exact.
        room = end - text.row_starts_of(end - 1)
        hit = np.zeros(end.size, dtype=bool)
        for nbytes, tests in _TESTS:
            match = room >= nbytes
            for offset, width, fold, expected in tests:
                value = text.load(end - offset, width)
                match &= (value | value.dtype.type(fold)) == value.dtype.type(expected)
            hit |= match
        return ratio(text.rows_of_positions(end[hit] - 1), text.line_counts, empty=0.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_num_lines_ending_with_ellipsis_ratio
