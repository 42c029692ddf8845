"""`GopherQualityFilter`: Gopher's quality rules, the way datatrove applies them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import text_column
from stages.text.filters.punctuation_marks import GOPHER_PUNCTUATION
from stages.text.filters.score_fields import (
    RuleFilter,
    score_fields,
    struct_scores,
)
from stages.text.filters.word_tokens import check_english, word_tokens
from stages.text.filters.words import TextBytes

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
FIELDS = [
    "words",
    "non_symbol_words",
    "mean_word_length",
    "hash_ratio",
    "ellipsis_ratio",
    "bullet_lines_ratio",
    "ellipsis_lines_ratio",
    "alpha_words_ratio",
    "stop_words",
]


def _gopher_stats(text: str, stop_words: frozenset[str]) -> tuple:
    words = word_tokens(text)
    n_words = len(words)
    non_symbol = [w for w in words if any(ch not in GOPHER_PUNCTUATION for ch in w)]
    mean_length = float(np.mean([len(w) for w in non_symbol])) if non_symbol else np.nan
    lines = text.splitlines()
    n_lines = len(lines)
    bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines)
    ellipsis_lines = sum(line.rstrip().endswith(("...", "…")) for line in lines)
    alpha_words = sum(any(ch.isalpha() for ch in w) for w in words)
    return (
        n_words,
        len(non_symbol),
        mean_length,
        text.count("#") / n_words if n_words else 0.0,
        (text.count("...") + text.count("…")) / n_words if n_words else 0.0,
        bullets / n_lines if n_lines else 0.0,
        ellipsis_lines / n_lines if n_lines else 0.0,
        alpha_words / n_words if n_words else 0.0,
        len(stop_words.intersection(words)),
    )


class GopherQualityFilter(RuleFilter):
    """Gopher's quality rules (Rae et al. 2021, appendix A.1.1) as datatrove's
    `GopherQualityFilter` applies them: same arguments, defaults and order of rules. Words
    are English tokens as datatrove's spaCy tokenizer cuts them (`word_tokens`:
    punctuation split off, `don't` -> `do n't`); a *non-symbol* word has a character
    outside datatrove's punctuation set.

    The score is a struct of what the rules measure: `words`, `non_symbol_words`,
    `mean_word_length` (of the non-symbol words; NaN without any), `hash_ratio` (`#`
    characters per word), `ellipsis_ratio` (`...` and `…` per word), `bullet_lines_ratio`
    and `ellipsis_lines_ratio` (lines of `str.splitlines()` starting with `•`/`-`, ending
    with `...`/`…`), `alpha_words_ratio` (words with a letter) and `stop_words` (distinct
    `stop_words` among the words). An empty or null text has 0 words, all ratios 0.

    Keep rule: every rule whose threshold is set (not None or 0) passes:
    `min_doc_words <= non_symbol_words <= max_doc_words`, `min_avg_word_length <=
    mean_word_length <= max_avg_word_length`, `hash_ratio <= max_symbol_word_ratio`,
    `ellipsis_ratio <= max_symbol_word_ratio`, `bullet_lines_ratio <=
    max_bullet_lines_ratio`, `ellipsis_lines_ratio <= max_ellipsis_lines_ratio`,
    `alpha_words_ratio >= max_non_alpha_words_ratio` (datatrove's name for a minimum),
    `stop_words >= min_stop_words`. `reason(scores)` names the first rule a row fails, with
    datatrove's reason strings (`gopher_short_doc`, ...). `stop_words` changes the score;
    the thresholds do not.
    """

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100000,
        min_avg_word_length: int | None = 3,
        max_avg_word_length: int | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: list[str] | None = None,
        language: str = "eng",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_english(language, type(self).__name__)
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = list(STOP_WORDS if stop_words is None else stop_words)
        self.language = language
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        stop_words = frozenset(self.stop_words)
        rows = [_gopher_stats(t, stop_words) for t in text.array.to_pylist()]
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in FIELDS]
        types = [np.int64, np.int64] + [np.float64] * 6 + [np.int64]
        return struct_scores(
            {
                name: np.asarray(col, dtype=t)
                for name, col, t in zip(FIELDS, columns, types, strict=True)
            }
        )

    def failures(self, scores) -> list[tuple[str, np.ndarray]]:
        """(datatrove's reason, rows failing that rule) for each rule in use, in
        datatrove's order."""
        f = score_fields(scores, FIELDS, self.stage_name)
        # A first entry no row fails, so that the list has the row count even with no rule.
        checks: list[tuple[str, np.ndarray]] = [("", np.zeros(len(f["words"]), dtype=bool))]

        def rule(enabled, reason: str, failing) -> None:
            if enabled:
                checks.append((reason, np.asarray(failing, dtype=bool)))

        words, mean_length = f["non_symbol_words"], f["mean_word_length"]
        rule(self.min_doc_words, "gopher_short_doc", words < (self.min_doc_words or 0))
        rule(self.max_doc_words, "gopher_long_doc", words > (self.max_doc_words or 0))
        with np.errstate(invalid="ignore"):
            rule(
                self.min_avg_word_length,
                "gopher_below_avg_threshold",
                mean_length < (self.min_avg_word_length or 0),
            )
            rule(
                self.max_avg_word_length,
                "gopher_above_avg_threshold",
                mean_length > (self.max_avg_word_length or 0),
            )
        symbols = self.max_symbol_word_ratio or 0
        rule(self.max_symbol_word_ratio, "gopher_too_many_hashes", f["hash_ratio"] > symbols)
        rule(self.max_symbol_word_ratio, "gopher_too_many_ellipsis", f["ellipsis_ratio"] > symbols)
        rule(
            self.max_bullet_lines_ratio,
            "gopher_too_many_bullets",
            f["bullet_lines_ratio"] > (self.max_bullet_lines_ratio or 0),
        )
        rule(
            self.max_ellipsis_lines_ratio,
            "gopher_too_many_end_ellipsis",
            f["ellipsis_lines_ratio"] > (self.max_ellipsis_lines_ratio or 0),
        )
        rule(
            self.max_non_alpha_words_ratio,
            "gopher_below_alpha_threshold",
            f["alpha_words_ratio"] < (self.max_non_alpha_words_ratio or 0),
        )
        rule(
            self.min_stop_words,
            "gopher_enough_stop_words",
            f["stop_words"] < (self.min_stop_words or 0),
        )
        return checks
