"""Text classifiers: fastText models read from a local file (`FastTextQualityFilter`,
`FastTextLangId`, after NeMo Curator's filters of the same names) and, from
`stages.text.classifiers_hf`, Hugging Face sequence classifiers read from a local folder
(`QualityClassifier`, `DomainClassifier`, `FineWebEduClassifier`, ...).

fastText (Joulin et al., "Bag of Tricks for Efficient Text Classification", 2017) is read by
the `fasttext` module (`fasttext-numpy2`, a dependency of curate).
Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, text_column
from stages.text.classifiers_hf import (
    DomainClassifier,
    FineWebEduClassifier,
    FineWebMixtralEduClassifier,
    FineWebNemotronEduClassifier,
    MultilingualDomainClassifier,
    QualityClassifier,
    SequenceClassifier,
)
from stages.text.language import UNKNOWN, _fasttext_file_labels, _fasttext_model

__all__ = [
    "DomainClassifier",
    "FastTextLangId",
    "FastTextQualityFilter",
    "FineWebEduClassifier",
    "FineWebMixtralEduClassifier",
    "FineWebNemotronEduClassifier",
    "MultilingualDomainClassifier",
    "QualityClassifier",
    "SequenceClassifier",
    "pareto_draws",
]

LABEL_PREFIX = "__label__"


def pareto_draws(texts: list[str | None], alpha: float, seed: int) -> np.ndarray:
    """One Pareto (Lomax, as `numpy.random.pareto`) draw of shape `alpha` per text, a
    function of the text and `seed` only: the 64-bit BLAKE2b hash of the text's UTF-8 bytes
    keyed by the seed gives a uniform u in (0, 1), and the draw is u^(-1/alpha) - 1
    (P(draw > x) = (1 + x)^-alpha). Null counts as empty text."""
    key = int(seed).to_bytes(16, "little", signed=True)
    digests = b"".join(
        hashlib.blake2b((t or "").encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
        for t in texts
    )
    bits = np.frombuffer(digests, dtype="<u8") >> np.uint64(11)  # 53 bits
    uniform = (bits.astype(np.float64) + 0.5) * 2.0**-53
    return np.expm1(-np.log(uniform) / float(alpha))


class _FastTextStage(Filter):
    """What the fastText stages share: the model file, loaded once per worker."""

    def __init__(self, model_path: str | os.PathLike, text_field: str, keep_score: bool):
        if model_path is None:
            raise ValueError(f"{type(self).__name__} needs model_path=PATH of a fastText model")
        self.model_path = os.fspath(model_path)
        self.text_field = text_field
        self.keep_score = keep_score
        self._model = None
        self._labels: list[str] = []

    def setup(self) -> None:
        if self._model is not None:
            return
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(f"{self.stage_name}: no fastText model file {self.model_path}")
        model = _fasttext_model(self.model_path).model  # cached per process
        get_labels = getattr(model, "get_labels", None)  # fasttext-predict has none
        self._labels = list(get_labels() if get_labels else _fasttext_file_labels(self.model_path))
        self._model = model

    def _texts(self, batch: pa.Table) -> list[str]:
        column = text_column(batch, self.text_field, self.stage_name)
        return pc.fill_null(column, "").to_pylist()


class FastTextQualityFilter(_FastTextStage):
    """Keep documents a fastText quality classifier likes, with NeMo Curator's
    `FastTextQualityFilter` rule (after GPT-3's filter, Brown et al. 2020, appendix A).

    Score: the probability of `label` (default `__label__hq`) for the document, newlines and
    `__label__` replaced by spaces (fastText reads one line). For a two-label model this is
    NeMo's score (the top probability, or one minus it when the top label is the other) to
    within 2e-5 (fastText adds 1e-5 to each probability it reports).

    Keep rule: keep when `draw > 1 - score`, where `draw` follows a Pareto (Lomax) law of
    shape `alpha` (`numpy.random.pareto`): a document scored p is kept with probability
    (2 - p)^-alpha, so good documents almost always and poor ones sometimes (1 in 8 at
    p = 0 for alpha 3). NeMo draws from NumPy's global generator seeded once, so a
    document's fate there hangs on its position in the run; here the draw is a function of
    the document's text and `seed` (`pareto_draws`), the same in any batch, process or run
    (identical texts share their fate).

    `model_path`: a local fastText model file (.bin or .ftz) whose labels include `label`.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        label: str = "__label__hq",
        alpha: float = 3,
        seed: int = 42,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        super().__init__(model_path, text_field, keep_score)
        self.label = label
        self.alpha = float(alpha)
        self.seed = int(seed)

    def setup(self) -> None:
        super().setup()
        if self.label not in self._labels:
            raise ValueError(
                f"{self.stage_name}: {self.model_path} has no label {self.label!r} "
                f"(its labels: {self._labels})"
            )

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        texts = [t.replace("\n", " ").replace(LABEL_PREFIX, " ") for t in self._texts(batch)]
        labels, probs = self._model.predict(texts, k=-1, threshold=0.0)
        scores = np.zeros(len(texts), dtype=np.float64)
        for i, (row_labels, row_probs) in enumerate(zip(labels, probs, strict=True)):
            for name, p in zip(row_labels, row_probs, strict=True):
                if name == self.label:
                    scores[i] = min(float(p), 1.0)  # fastText's softmax may pass 1 by 1e-5
                    break
        return scores

    def mask(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        if batch.num_rows == 0:
            return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=bool)
        scores = self.score(batch)
        return scores, self.keep(scores, pareto_draws(self._texts(batch), self.alpha, self.seed))

    def keep(self, scores: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
        """The keep rule for `scores` given each document's Pareto `draws` (`mask(batch)`
        computes both from the batch)."""
        if draws is None:
            raise ValueError(
                f"{self.stage_name}: the keep rule needs each document's Pareto draw: "
                "call mask(batch), or keep(scores, pareto_draws(texts, alpha, seed))"
            )
        return np.asarray(draws) > 1.0 - np.asarray(scores, dtype=np.float64)


class FastTextLangId(_FastTextStage):
    """Identify each document's language with a fastText language-ID model (lid.176.bin or
    .ftz, or NLLB's lid218e with labels such as `eng_Latn`) and keep the documents
    identified with confidence, as NeMo Curator's `FastTextLangId`.

    Adds `language` (the model's label without `__label__`, spelt as the model spells it;
    "unknown" when the model gives none) and `language_score` (its probability, 0..1):
    NeMo's `[score, language]` pair as two columns, the names `LanguageIdentifier` writes.
    The text is stripped and its newlines become spaces.

    Keep rule: `language_score >= min_langid_score` (NeMo's default 0.3) and, when `lang`
    is given, the language matches it, case-insensitively: a language alone ("en", "eng")
    matches every script of it ("eng_Latn"), a language and script ("eng_Latn") only that.
    Score: `language_score`, or -1.0 when the language does not match `lang`. Run it as a
    stage of its own: inside a `FilterChain` the decision holds but the columns are not added.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        min_langid_score: float = 0.3,
        lang: str | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        super().__init__(model_path, text_field, keep_score)
        self.min_langid_score = float(min_langid_score)
        self.lang = lang.casefold() if lang else None

    def identify(self, texts: list[str | None]) -> tuple[list[str], np.ndarray]:
        """The language and its probability for each of `texts`."""
        self.setup()
        lines = [(t or "").strip().replace("\n", " ") for t in texts]
        labels, probs = self._model.predict(lines, k=1, threshold=0.0)
        codes, scores = [], np.zeros(len(lines), dtype=np.float64)
        for i, (row_labels, row_probs) in enumerate(zip(labels, probs, strict=True)):
            if len(row_labels):
                codes.append(row_labels[0].removeprefix(LABEL_PREFIX))
                scores[i] = min(float(row_probs[0]), 1.0)
            else:
                codes.append(UNKNOWN)
        return codes, scores

    def _matches(self, codes: list[str]) -> np.ndarray:
        if self.lang is None:
            return np.ones(len(codes), dtype=bool)
        if "_" in self.lang:
            return np.array([c.casefold() == self.lang for c in codes], dtype=bool)
        return np.array([c.casefold().split("_", 1)[0] == self.lang for c in codes], dtype=bool)

    def annotate(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        """`batch` with `language` and `language_score`, and the keep scores of its rows."""
        codes, probs = self.identify(self._texts(batch)) if batch.num_rows else ([], np.zeros(0))
        for name, values in (
            ("language", pa.array(codes, pa.string())),
            ("language_score", pa.array(probs, pa.float64())),
        ):
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, values)
        return batch, np.where(self._matches(codes), probs, -1.0)

    def score(self, batch: pa.Table) -> np.ndarray:
        return self.annotate(batch)[1]

    def keep(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        return (scores >= 0.0) & (scores >= self.min_langid_score)

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        annotated, scores = self.annotate(batch)
        if self.keep_score or self.score_only:
            column = self.score_column
            if column in annotated.column_names:
                annotated = annotated.drop_columns([column])
            annotated = annotated.append_column(column, pa.array(scores, pa.float64()))
        if self.score_only:
            return annotated, annotated.slice(0, 0), scores
        keep = pa.array(self.keep(scores), pa.bool_())
        return annotated.filter(keep), annotated.filter(pc.invert(keep)), scores
