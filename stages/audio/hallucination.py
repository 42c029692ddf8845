"""`WhisperHallucinationStage`: NeMo Curator's rule-based checks for ASR transcripts that
look confabulated rather than heard (a decoder stuck in a loop, an impossible speaking
rate, the stock phrases Whisper writes over silence). No model: string rules only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, text_column
from stages.io.fs import read_bytes

# The checks, each a bit of the score, in the order NeMo Curator reports them.
CHECKS: tuple[str, ...] = ("repeated_ngrams", "long_word", "phrase_match", "high_char_rate")

# Languages whose ordinary words can be very long (agglutinative: Finnish, Hungarian,
# Estonian; compounding: German, Dutch, Danish, Swedish, Norwegian), as NeMo Curator lists.
LONG_WORD_LANGUAGES: frozenset[str] = frozenset(("fi", "hu", "et", "de", "nl", "da", "sv", "no"))

# A listed phrase at least this long also matches transcripts that start with it ("Thank
# you for watching" matches a phrase "Thank you"), as in NeMo Curator.
PREFIX_MATCH_MIN_CHARS = 8


def hallucination_reasons(score: float) -> list[str]:
    """The names of the checks a `WhisperHallucinationStage` score stands for."""
    if score is None or not np.isfinite(score):
        return []
    return [name for bit, name in enumerate(CHECKS) if int(score) >> bit & 1]


def _phrase_key(text: str) -> str:
    for mark in ".?!,":
        text = text.replace(mark, "")
    return text.strip().casefold()


class WhisperHallucinationStage(Filter):
    """Remove transcripts (`text_key`, default `pred_text`) that fail any of four checks,
    NeMo Curator's `WhisperHallucinationStage` rules with its keyword arguments:

    - `repeated_ngrams`: distinct words / words <= `unique_words_threshold` (0.4): the
      decoder repeats itself ("thank you thank you thank you ..."). Words are split on
      whitespace, as written (case and attached punctuation count);
    - `long_word`: a word of `long_word_threshold` (25) characters or more; or the longest
      word exceeds the next longest by `long_word_rel_threshold` (3.0) times its length or
      more. For rows whose `language_key` value is in `LONG_WORD_LANGUAGES` (German,
      Finnish...) the bar is `agglutinative_long_word_threshold` (35) and the relative
      rule is off; a missing language column means neither;
    - `phrase_match`: the transcript, without . ? ! , and surrounding spaces (and with
      hyphens as spaces, as a second candidate), is one of the phrases of
      `common_hall_file` (one per line, any fsspec URI) or `phrases`, or starts with one
      of at least 8 characters. Unlike NeMo Curator's, the match ignores case. No file
      and no phrases: the check is off (NeMo Curator requires the file);
    - `high_char_rate`: non-space characters / `duration_key` seconds > `max_char_rate`
      (40 per second, well above any speech). Rows with no positive duration are not
      rate-checked; `max_char_rate=None` turns the check off (and the duration column
      is then not needed).

    Score: a bitmask of the checks that fired, 1 `repeated_ngrams`, 2 `long_word`,
    4 `phrase_match`, 8 `high_char_rate` (`hallucination_reasons(score)` names them);
    keep rule: score == 0. Null or blank transcripts are not checked (score 0), as in
    NeMo Curator. The output also gets `reasons_key` (`hallucination`, a list of the
    check names, empty when clean), useful with `score_only=True`, which keeps every row:
    NeMo Curator's behaviour, which marks rows in `_skipme` instead of dropping them.
    """

    name: ClassVar[str] = "WhisperHallucination"
    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        common_hall_file: str | None = None,
        unique_words_threshold: float = 0.4,
        long_word_threshold: int = 25,
        agglutinative_long_word_threshold: int = 35,
        long_word_rel_threshold: float = 3.0,
        max_char_rate: float | None = 40.0,
        language_key: str = "language",
        duration_key: str = "duration",
        text_key: str = "pred_text",
        phrases: list[str] | None = None,
        reasons_key: str = "hallucination",
        keep_score: bool = False,
        score_only: bool = False,
    ):
        self.common_hall_file = common_hall_file
        self.unique_words_threshold = unique_words_threshold
        self.long_word_threshold = long_word_threshold
        self.agglutinative_long_word_threshold = agglutinative_long_word_threshold
        self.long_word_rel_threshold = long_word_rel_threshold
        self.max_char_rate = max_char_rate
        self.language_key = language_key
        self.duration_key = duration_key
        self.text_key = self.text_field = text_key
        self.phrases = list(phrases or [])
        self.reasons_key = reasons_key
        self.keep_score = keep_score
        self.score_only = score_only
        self._exact: frozenset[str] | None = None
        self._prefixes: tuple[str, ...] = ()

    def setup(self) -> None:
        lines = list(self.phrases)
        if self.common_hall_file:
            lines += read_bytes(self.common_hall_file).decode("utf-8").splitlines()
        keys = {_phrase_key(line) for line in lines if line.strip()}
        self._exact = frozenset(keys)
        self._prefixes = tuple(sorted(k for k in keys if len(k) >= PREFIX_MATCH_MIN_CHARS))

    def score(self, batch: pa.Table) -> np.ndarray:
        if self._exact is None:
            self.setup()
        texts = text_column(batch, self.text_key, self.stage_name).to_pylist()
        durations = self._durations(batch)
        long_word_language = self._long_word_languages(batch)
        scores = np.zeros(batch.num_rows, dtype=np.float64)
        for i, text in enumerate(texts):
            if text and not text.isspace():
                scores[i] = self._check(text, durations[i], long_word_language[i])
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores == 0

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        kept, removed, scores = super().apply(batch)
        mask = np.ones(scores.size, dtype=bool) if self.score_only else self.keep(scores)
        return (
            self._with_reasons(kept, scores[mask]),
            self._with_reasons(removed, scores[~mask]),
            scores,
        )

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        samples = super().describe_removed(rows, limit)
        scores = self.score(rows.slice(0, len(samples)))
        for sample, score in zip(samples, scores, strict=True):
            sample["reason"] = "hallucination: " + ", ".join(hallucination_reasons(score))
        return samples

    def _with_reasons(self, table: pa.Table, scores: np.ndarray) -> pa.Table:
        reasons = pa.array([hallucination_reasons(s) for s in scores], pa.list_(pa.string()))
        if self.reasons_key in table.column_names:
            table = table.drop_columns([self.reasons_key])
        return table.append_column(self.reasons_key, reasons)

    def _durations(self, batch: pa.Table) -> np.ndarray:
        if self.max_char_rate is None:
            return np.zeros(batch.num_rows)
        if self.duration_key not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.duration_key!r} for the "
                f"character rate (columns: {batch.column_names}); pass max_char_rate=None "
                "to skip that check"
            )
        values = batch.column(self.duration_key).to_numpy(zero_copy_only=False)
        return np.nan_to_num(values.astype(np.float64), nan=0.0)

    def _long_word_languages(self, batch: pa.Table) -> list[bool]:
        if self.language_key not in batch.column_names:
            return [False] * batch.num_rows
        codes = batch.column(self.language_key).to_pylist()
        return [str(c or "").strip().lower() in LONG_WORD_LANGUAGES for c in codes]

    def _check(self, text: str, duration: float, long_word_language: bool) -> int:
        words = text.split()
        hits = (
            len(set(words)) / len(words) <= self.unique_words_threshold,
            self._long_word([len(w) for w in words], long_word_language),
            self._listed_phrase(text),
            self.max_char_rate is not None
            and duration > 0
            and sum(map(len, words)) / duration > self.max_char_rate,
        )
        return sum(1 << bit for bit, hit in enumerate(hits) if hit)

    def _long_word(self, lengths: list[int], long_word_language: bool) -> bool:
        lengths = sorted(lengths)
        if long_word_language:
            return lengths[-1] >= self.agglutinative_long_word_threshold
        if lengths[-1] >= self.long_word_threshold:
            return True
        if len(lengths) < 2 or lengths[-2] == 0:
            return False
        return (lengths[-1] - lengths[-2]) / lengths[-2] >= self.long_word_rel_threshold

    def _listed_phrase(self, text: str) -> bool:
        if not self._exact:
            return False
        key = _phrase_key(text)
        candidates = {key, key.replace("-", " ")}
        return any(c in self._exact or c.startswith(self._prefixes) for c in candidates)
