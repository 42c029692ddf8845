"""`TranscriptLanguageStage`: the language a transcript is written in, by the text flow's
lingua identifier (`stages.text.language.LanguageIdentifier`), optionally keeping only
some languages."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, Resources, text_column
from stages.text.language import DEFAULT_LANGUAGES, LanguageIdentifier, check_languages


class TranscriptLanguageStage(Filter):
    """Add `language_key` (`transcript_language`: ISO 639-1, lower case, or "unknown")
    and `<language_key>_score` (lingua's confidence in it, 0..1) for the transcript in
    `text_key` (`pred_text`, the ASR output; `text` for the reference), and keep the rows
    whose language is one of `languages` (None: every language) with a confidence of at
    least `min_score`.

    Score: the confidence when the language is kept, else -1.0; keep rule: score >= 0
    and score >= `min_score`. Empty, null or letterless transcripts are "unknown" with
    confidence 0.0, so they are kept only when `languages` is None.

    The candidates lingua chooses between are `candidates` plus `languages`. Transcripts
    are short, so lingua's high-accuracy mode is the default here (`low_accuracy=False`;
    about 560 MB a worker for the 22 default candidates, 2-3 s to load), where
    low-accuracy mode takes "the cat sat on the mat" for Dutch. A code lingua cannot
    identify is refused (ValueError).
    """

    name: ClassVar[str] = "TranscriptLanguage"
    resources: ClassVar[Resources] = Resources(cpus=1.0, memory_gb=1.0)
    batch_size: ClassVar[int | None] = 1000

    def __init__(
        self,
        languages: list[str] | tuple[str, ...] | None = None,
        text_key: str = "pred_text",
        language_key: str = "transcript_language",
        min_score: float = 0.0,
        candidates: list[str] | tuple[str, ...] = DEFAULT_LANGUAGES,
        low_accuracy: bool = False,
        max_chars: int | None = 2000,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        # Transcripts are short: lingua's high-accuracy mode, and its language codes.
        codes = lambda names: check_languages(names, backend="lingua")  # noqa: E731
        self.languages = None if languages is None else codes(languages)
        candidates = codes(candidates)
        extra = tuple(c for c in self.languages or () if c not in candidates)
        self.identifier = LanguageIdentifier(
            languages=candidates + extra,
            low_accuracy=low_accuracy,
            max_chars=max_chars,
            text_field=text_key,
        )
        self.text_key = self.text_field = text_key
        self.language_key = language_key
        self.min_score = min_score
        self.keep_score = keep_score
        self.score_only = score_only

    @property
    def language_score_key(self) -> str:
        return f"{self.language_key}_score"

    def setup(self) -> None:
        self.identifier.setup()

    def tag(self, batch: pa.Table) -> pa.Table:
        """`batch` with the language columns (replaced when already there)."""
        texts = text_column(batch, self.text_key, self.stage_name).to_pylist()
        codes, scores = self.identifier.identify(texts)
        for name in (self.language_key, self.language_score_key):
            if name in batch.column_names:
                batch = batch.drop_columns([name])
        batch = batch.append_column(self.language_key, pa.array(codes, pa.string()))
        return batch.append_column(self.language_score_key, pa.array(scores, pa.float64()))

    def score(self, batch: pa.Table) -> np.ndarray:
        if not {self.language_key, self.language_score_key} <= set(batch.column_names):
            batch = self.tag(batch)
        scores = batch.column(self.language_score_key).to_numpy(zero_copy_only=False)
        scores = np.nan_to_num(scores.astype(np.float64), nan=0.0)
        if self.languages is None:
            return scores
        listed = pc.is_in(batch.column(self.language_key), value_set=pa.array(self.languages))
        listed = pc.fill_null(listed, False).to_numpy(zero_copy_only=False)
        return np.where(listed, scores, -1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= 0.0) & (scores >= self.min_score)

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        return super().apply(self.tag(batch))
