"""`GopherRepetitionFilter`: Gopher's repetition rules, the way datatrove applies them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from stages.base import text_column
from stages.text.filters.score_fields import (
    RuleFilter,
    score_fields,
    struct_scores,
)
from stages.text.filters.word_tokens import check_english, word_tokens
from stages.text.filters.words import TextBytes

_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAK = re.compile("\n+")
TOP_N_GRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))
DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def duplicates(items: list[str]) -> tuple[int, int]:
    """(items that repeat an earlier one, their characters)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters of the most frequent word n-gram (joined by spaces) times its count;
    ties go to the n-gram seen first. 0 when there are fewer than `n` words."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def duplicate_ngram_chars(words: list[str], n: int) -> int:
    """Characters (words joined without spaces) of the n-grams that repeat an earlier
    one, scanning left to right and jumping past each repeat, so that repeats do not
    overlap."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def _pairs(value, name: str) -> tuple[tuple[int, float], ...]:
    """`((n, fraction), ...)` from tuples or the lists YAML gives."""
    try:
        pairs = tuple((int(n), float(frac)) for n, frac in value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"GopherRepetitionFilter: {name} must be pairs (n, fraction), got {value!r}"
        ) from error
    for n, _ in pairs:
        if n < 1:
            raise ValueError(f"GopherRepetitionFilter: {name} has n={n}; n must be at least 1")
    return pairs


class GopherRepetitionFilter(RuleFilter):
    """Gopher's repetition rules (Rae et al. 2021, table A1) as datatrove's
    `GopherRepetitionFilter` applies them: same arguments, defaults and order.

    The score is a struct, each field a fraction:

    - `dup_para_frac`, `dup_para_char_frac`: paragraphs (`text.strip()` split at two or
      more newlines) that repeat an earlier one, as a share of the paragraphs, and their
      characters as a share of the text's;
    - `dup_line_frac`, `dup_line_char_frac`: the same for lines (the text split at runs
      of newlines);
    - `top_{n}_gram` for each n of `top_n_grams`: characters of the most frequent word
      n-gram times its count, over the text's characters;
    - `duplicated_{n}_n_grams` for each n of `dup_n_grams`: characters of the n-grams that
      repeat an earlier one (non-overlapping, words joined without spaces), over the
      text's characters.

    Words are English tokens as datatrove's spaCy tokenizer cuts them (`word_tokens`).
    The struct also holds `chars`, the text's length; an empty or null text has every
    fraction 0.

    Keep rule: the text is not empty (reason `empty`), and each fraction is at most its
    threshold (`dup_para_frac`, ...; the pairs of
    `top_n_grams` and `dup_n_grams` give n and its threshold); a threshold that is None
    or 0 is not applied. `reason(scores)` names the first rule a row fails with
    datatrove's reason strings (`dup_para_frac`, `top_2_gram`, `duplicated_5_n_grams`,
    ...). The n of the pairs change the score's fields; the fractions do not.
    """

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: Sequence[Sequence[float]] = TOP_N_GRAMS,
        dup_n_grams: Sequence[Sequence[float]] = DUP_N_GRAMS,
        language: str = "eng",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_english(language, type(self).__name__)
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.top_n_grams = _pairs(top_n_grams, "top_n_grams")
        self.dup_n_grams = _pairs(dup_n_grams, "dup_n_grams")
        self.language = language
        self.text_field = text_field
        self.keep_score = keep_score

    def _fields(self) -> list[str]:
        return (
            ["chars", "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
            + [f"top_{n}_gram" for n, _ in self.top_n_grams]
            + [f"duplicated_{n}_n_grams" for n, _ in self.dup_n_grams]
        )

    def _stats(self, text: str) -> list[float]:
        if not text:
            return [0.0] * len(self._fields())
        length = len(text)
        paragraphs = _PARAGRAPH_BREAK.split(text.strip())
        para_count, para_chars = duplicates(paragraphs)
        lines = _LINE_BREAK.split(text)
        line_count, line_chars = duplicates(lines)
        words = word_tokens(text)
        stats = [
            float(length),
            para_count / len(paragraphs),
            para_chars / length,
            line_count / len(lines),
            line_chars / length,
        ]
        stats += [top_ngram_chars(words, n) / length for n, _ in self.top_n_grams]
        stats += [duplicate_ngram_chars(words, n) / length for n, _ in self.dup_n_grams]
        return stats

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        rows = np.array([self._stats(t) for t in text.array.to_pylist()], dtype=np.float64).reshape(
            text.num_rows, len(self._fields())
        )
        fields = {name: rows[:, j] for j, name in enumerate(self._fields())}
        fields["chars"] = fields["chars"].astype(np.int64)
        return struct_scores(fields)

    def failures(self, scores) -> list[tuple[str, np.ndarray]]:
        """(datatrove's reason, rows failing that rule) for each rule in use, in order."""
        f = score_fields(scores, self._fields(), self.stage_name)
        limits = [
            ("dup_para_frac", self.dup_para_frac),
            ("dup_para_char_frac", self.dup_para_char_frac),
            ("dup_line_frac", self.dup_line_frac),
            ("dup_line_char_frac", self.dup_line_char_frac),
        ]
        limits += [(f"top_{n}_gram", frac) for n, frac in self.top_n_grams]
        limits += [(f"duplicated_{n}_n_grams", frac) for n, frac in self.dup_n_grams]
        checks: list[tuple[str, np.ndarray]] = [("empty", f["chars"] == 0)]
        checks += [(name, f[name] > limit) for name, limit in limits if limit]
        return checks
