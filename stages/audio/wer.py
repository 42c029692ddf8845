"""Word and character error rates of an ASR hypothesis against its reference transcript.

- `normalize_transcript(text, language)`: the text both sides are reduced to before scoring,
  so that case, punctuation and (in English) "twenty five" / "25" are not counted as errors.
- `GetPairwiseWerStage`: NeMo Curator's stage of that name (same keyword arguments, same
  `wer_pct` column in percent), plus a CER column, computed with jiwer for a whole batch.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Resources, Stage, text_column

_ANNOTATION = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]+?\)")
_SPACES = re.compile(r"\s+")


@functools.cache
def _english_normalizer():
    # Imported on first use: importing whisper loads torch (seconds).
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def is_english(language: str | None) -> bool:
    """True for "en", "EN", "en-US", "en_GB", "eng" and "english"."""
    if not language:
        return False
    return re.split(r"[-_]", language.strip().lower())[0] in {"en", "eng", "english"}


def normalize_transcript(
    text: str | None, language: str | None = "en", *, english_rules: bool = True
) -> str:
    """`text` reduced to lower-case words separated by single spaces, for scoring.

    Every language:

    1. Unicode NFKC (full-width letters, ligatures and other compatibility forms become
       their plain form), then lower case;
    2. annotations in `<...>`, `[...]` and `(...)` (for example "[laughs]", "(music)")
       are removed;
    3. every punctuation mark and symbol (Unicode categories P* and S*, apostrophes
       included: "don't" becomes "don t") becomes a space;
    4. runs of whitespace become one space; leading and trailing spaces go.

    These are the rules of Whisper's `BasicTextNormalizer`, except that combining marks
    (Unicode M*) are kept: Whisper's turns them into spaces too, which cuts words of
    Devanagari, Thai and other scripts whose vowel signs are marks into pieces.

    When `language` is English (`is_english`) and `english_rules` is true, steps 2-4 are
    Whisper's `EnglishTextNormalizer` instead (the normaliser of Whisper's English WER
    results): it also drops fillers (hmm, mm, uh, um), expands contractions and titles
    ("won't" -> "will not", "mr" -> "mister"), writes numbers as digits ("twenty five"
    -> "25", "one hundred and one" -> "101"; "$", "%" and the decimal point stay with
    their numbers: "2.5%"), uses American spellings ("colour" -> "color") and strips
    diacritics ("café" -> "cafe"). None gives "".
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    if english_rules and is_english(language):
        text = _english_normalizer()(text)
    else:
        text = _ANNOTATION.sub("", text.lower())
        text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return _SPACES.sub(" ", text).strip()


def error_rates(references: list[str], hypotheses: list[str], chars: bool = False) -> np.ndarray:
    """Per pair, (substitutions + deletions + insertions) / reference length x 100, words
    (split on whitespace) or characters (spaces count). Every reference must be non-empty.
    One jiwer call aligns the whole batch."""
    import jiwer

    if not references:
        return np.zeros(0, dtype=np.float64)
    process = jiwer.process_characters if chars else jiwer.process_words
    out = process(references, hypotheses)
    errors = np.array(
        [
            sum(_edits(chunk) for chunk in alignment if chunk.type != "equal")
            for alignment in out.alignments
        ],
        dtype=np.float64,
    )
    lengths = np.array([len(r) for r in out.references], dtype=np.float64)
    return errors / lengths * 100.0


def _edits(chunk) -> int:
    """Words (or characters) a jiwer alignment chunk substitutes, deletes or inserts."""
    if chunk.type == "insert":
        return chunk.hyp_end_idx - chunk.hyp_start_idx
    return chunk.ref_end_idx - chunk.ref_start_idx


class GetPairwiseWerStage(Stage):
    """Word error rate of `pred_text_key` (the ASR hypothesis) against `text_key` (the
    reference), in percent: 5.0 means 5% WER, 100.0 one error per reference word (it can
    exceed 100 with insertions). Written to `wer_key` (NeMo Curator's default key and
    scale, `wer_pct`, rounded to 4 decimals as theirs) and the character error rate, on
    the same scale, to `cer_key` (None: no CER column).

    With `normalize=True` both texts first go through `normalize_transcript(text,
    language, english_rules=english_rules)`; `normalize=False` scores the raw texts split
    on whitespace, which is what NeMo Curator's stage does (case and punctuation count).

    Rows without a score: a reference that is null, or empty once normalised ("",
    "[music]"), has no WER (no words to divide by), so both columns are null there; NeMo
    Curator leaves the key out. A later `PreserveByValueStage("wer_pct", ...)` drops such
    rows, since a null never passes its comparison. A null hypothesis counts as an empty
    one, so WER = CER = 100 (every reference word deleted); NeMo Curator skips the row.
    """

    name: ClassVar[str] = "GetPairwiseWerStage"
    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 1000

    def __init__(
        self,
        text_key: str = "text",
        pred_text_key: str = "pred_text",
        wer_key: str = "wer_pct",
        cer_key: str | None = "cer_pct",
        normalize: bool = True,
        language: str | None = "en",
        english_rules: bool = True,
    ):
        self.text_key = text_key
        self.pred_text_key = pred_text_key
        self.wer_key = wer_key
        self.cer_key = cer_key
        self.normalize = normalize
        self.language = language
        self.english_rules = english_rules

    def _prepare(self, texts: list[str | None]) -> list[str]:
        if not self.normalize:
            return [_SPACES.sub(" ", t).strip() if t else "" for t in texts]
        rules = self.english_rules
        return [normalize_transcript(t, self.language, english_rules=rules) for t in texts]

    def process(self, batch: pa.Table) -> pa.Table:
        refs = self._prepare(text_column(batch, self.text_key, self.stage_name).to_pylist())
        hyps = self._prepare(text_column(batch, self.pred_text_key, self.stage_name).to_pylist())
        scored = np.array([bool(r) for r in refs], dtype=bool)
        pairs = np.flatnonzero(scored)
        columns = {self.wer_key: False, **({self.cer_key: True} if self.cer_key else {})}
        for name, chars in columns.items():
            values = np.full(batch.num_rows, np.nan)
            values[scored] = np.round(
                error_rates([refs[i] for i in pairs], [hyps[i] for i in pairs], chars=chars), 4
            )
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, pa.array(values, pa.float64(), mask=~scored))
        return batch
