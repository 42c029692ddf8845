"""Language identification: langid.py's model run compiled (the default), lingua, or a
fastText model given by path. The first two ship their models in their wheels; nothing is
downloaded."""

from __future__ import annotations

import functools
import math
import os
import re
import unicodedata
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, Resources, Stage, text_column

# Widely used languages across scripts (Latin, Cyrillic, Arabic, Devanagari, CJK).
DEFAULT_LANGUAGES: tuple[str, ...] = (
    "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "cs",
    "sv", "da", "fi", "tr", "ar", "zh", "ja", "ko", "hi", "id", "vi",
)  # fmt: skip
UNKNOWN = "unknown"
Backend = Literal["py3langid", "lingua", "fasttext"]
BACKENDS: tuple[str, ...] = ("py3langid", "lingua", "fasttext")
DEFAULT_BACKEND = "py3langid"
# py3langid's class for numbers, markup and identifiers: not a language.
_NOT_A_LANGUAGE = "zxx"
_LETTER = re.compile(r"[^\W\d_]")


@functools.cache
def _lingua_codes() -> frozenset[str]:
    from lingua import Language

    return frozenset(lang.iso_code_639_1.name.lower() for lang in Language.all())


def supported_languages(
    backend: Backend = DEFAULT_BACKEND, model: str | None = None
) -> frozenset[str]:
    """The codes (lower case) `backend` can identify: the only codes a language filter can
    ever keep. ISO 639-1, or ISO 639-3 for py3langid's languages that have no 639-1 code.
    For "fasttext" they are the labels of the model file `model`."""
    if backend == "py3langid":
        return frozenset(_py3langid_model(model).labels) - {_NOT_A_LANGUAGE}
    if backend == "lingua":
        return _lingua_codes()
    if backend == "fasttext":
        return frozenset(_fasttext_model(_fasttext_path(model)).labels)
    raise ValueError(f"unknown language backend {backend!r}: expected one of {BACKENDS}")


def check_languages(
    languages, backend: Backend = DEFAULT_BACKEND, model: str | None = None
) -> tuple[str, ...]:
    """`languages` as lower-case codes; raises ValueError naming any code `backend` cannot
    produce (a filter keeping it would keep nothing)."""
    codes = tuple(c.strip().lower() for c in languages)
    known = supported_languages(backend, model)
    unknown = [c for c in codes if c not in known]
    if unknown:
        some = ", ".join(repr(c) for c in DEFAULT_LANGUAGES[:8])
        raise ValueError(
            f"unknown language code(s) {', '.join(map(repr, unknown))}: expected codes "
            f"{backend} identifies, such as {some} ({len(known)} in all)"
        )
    return codes


# --- py3langid: langid.py's naive Bayes over byte n-grams, compiled ------------------------


class _Py3langidModel:
    """The arrays of a py3langid model file (npz inside LZMA, the layout of
    `py3langid.modelio`): a DFA over UTF-8 bytes whose states emit feature ids, and the
    naive Bayes log-probabilities of each feature per language."""

    def __init__(self, path: str):
        import io
        import lzma

        with lzma.open(path) as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as data:
            self.ptc = data["ptc"]  # float16 (features, classes)
            self.pc = data["pc"].astype(np.float32)
            self.labels = [str(c) for c in data["classes"]]
            self.nextmove = data["nextmove"]
            self.rowbase = data["nextmove_row"].astype(np.int64) << 8
            self.out_feat = data["out_feat"].astype(np.int32)

    def restricted(
        self, languages: tuple[str, ...] | None
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Labels, feature weights (float32) and priors of the columns of `languages`
        (None: every language), one column per label (a label may have two columns in the
        file, one per script; both are kept and their probabilities added)."""
        wanted = set(self.labels) - {_NOT_A_LANGUAGE} if languages is None else set(languages)
        unknown = sorted(wanted - set(self.labels))
        if unknown:
            raise ValueError(f"unknown language code(s) {unknown} for py3langid")
        columns = [i for i, c in enumerate(self.labels) if c in wanted]
        ptc = np.ascontiguousarray(self.ptc[:, columns], dtype=np.float32)
        return [self.labels[i] for i in columns], ptc, self.pc[columns]


@functools.cache
def _py3langid_model(path: str | None = None) -> _Py3langidModel:
    if path is None:
        import py3langid.langid

        path = str(py3langid.langid.MODEL_DIR / py3langid.langid.MODEL_FILE)
    return _Py3langidModel(path)


@functools.cache
def _naive_bayes_kernel():
    """The per-document loop, compiled by numba on first use (about 0.4 s) and cached on
    disk (next to this module, else in the user's cache folder), so that later processes
    and Ray workers load it instead. It walks the DFA over the bytes, counts each feature,
    then sums log(1 + count) * weight per language. Each document is scored on its own, in
    a fixed order, so results do not depend on the batch."""
    import numba

    @numba.njit(nogil=True, cache=True)
    def score(data, offsets, nextmove, rowbase, out_feat, ptc, prior, counts, seen, scores, nfeat):
        n_classes = ptc.shape[1]
        for d in range(offsets.shape[0] - 1):
            state = 0
            n_seen = 0
            for i in range(offsets[d], offsets[d + 1]):
                state = nextmove[rowbase[state] + data[i]]
                f = out_feat[state]
                if f >= 0:
                    if counts[f] == 0:
                        seen[n_seen] = f
                        n_seen += 1
                    counts[f] += 1
            for c in range(n_classes):
                scores[d, c] = 0.0
            for k in range(n_seen):
                f = seen[k]
                w = np.float32(np.log1p(np.float32(counts[f])))
                counts[f] = 0
                for c in range(n_classes):
                    scores[d, c] += w * ptc[f, c]
            if n_seen:
                for c in range(n_classes):
                    scores[d, c] += prior[c]
            nfeat[d] = n_seen

    return score


class _Py3langid:
    """py3langid's decision (Lui and Baldwin, "langid.py: An Off-the-shelf Language
    Identification Tool", ACL 2012; py3langid's retrained 139-language model, in its wheel)
    with its Python byte loop replaced by a compiled one: the same features, weights and
    normalisation (NFC, all-capital text lower-cased, softmax at temperature
    sqrt(bytes))."""

    def __init__(self, languages: tuple[str, ...] | None, model: str | None):
        self.model = _py3langid_model(model)
        labels, self.ptc, self.prior = self.model.restricted(languages)
        self.codes = sorted(set(labels))
        self.column_code = np.array([self.codes.index(c) for c in labels])
        self.kernel = _naive_bayes_kernel()

    @staticmethod
    def _encode(text: str) -> bytes:
        if text.isupper():
            text = text.lower()
        return unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")

    def identify(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        encoded = [self._encode(t) for t in texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
        n_features = self.ptc.shape[0]
        scores = np.empty((len(encoded), self.ptc.shape[1]), dtype=np.float32)
        nfeat = np.empty(len(encoded), dtype=np.int64)
        m = self.model
        self.kernel(
            data, offsets, m.nextmove, m.rowbase, m.out_feat, self.ptc, self.prior,
            np.zeros(n_features, dtype=np.int32), np.empty(n_features, dtype=np.int64),
            scores, nfeat,
        )  # fmt: skip
        scores *= (1.0 / np.sqrt(np.maximum(lengths, 1))).astype(np.float32)[:, None]
        np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        if len(self.codes) < scores.shape[1]:  # a label with two columns: add them
            merged = np.zeros((len(encoded), len(self.codes)), dtype=np.float32)
            np.add.at(merged.T, self.column_code, scores.T)
            scores = merged
        best = scores.argmax(axis=1)
        codes = [self.codes[i] if n else UNKNOWN for i, n in zip(best, nfeat, strict=True)]
        return codes, np.where(nfeat > 0, scores[np.arange(len(best)), best], 0.0)


# --- lingua ----------------------------------------------------------------------------


class _Lingua:
    """lingua (Stahl, lingua-rs): character n-gram models in the package. Batches run on
    lingua's thread pool when `threads` > 1."""

    def __init__(self, languages: tuple[str, ...] | None, low_accuracy: bool, threads: int):
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        if languages is None:
            builder = LanguageDetectorBuilder.from_all_languages()
        else:
            codes = []
            for code in languages:
                try:
                    codes.append(getattr(IsoCode639_1, code.upper()))
                except AttributeError:
                    raise ValueError(f"unknown ISO 639-1 language code {code!r}") from None
            if len(codes) < 2:
                raise ValueError(f"lingua needs at least two languages to choose from, got {codes}")
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        self.detector = builder.with_preloaded_language_models().build()
        self.threads = threads

    def identify(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        if self.threads > 1:
            results = self.detector.compute_language_confidence_values_in_parallel(texts)
        else:
            results = [self.detector.compute_language_confidence_values(t) for t in texts]
        codes, scores = [], np.zeros(len(texts), dtype=np.float64)
        for i, values in enumerate(results):
            top = values[0] if values else None
            if top is None or top.value <= 0.0:
                codes.append(UNKNOWN)
            else:
                codes.append(top.language.iso_code_639_1.name.lower())
                scores[i] = top.value
        return codes, scores


# --- fastText --------------------------------------------------------------------------


def _fasttext_path(model: str | None) -> str:
    if model is None:
        raise ValueError(
            "backend 'fasttext' needs model=PATH, a local fastText language-ID model such as "
            "lid.176.bin or lid.176.ftz (nothing is downloaded)"
        )
    return os.fspath(model)


class _FastTextModel:
    def __init__(self, path: str):
        try:
            import fasttext
        except ImportError:
            raise ImportError(
                "backend 'fasttext' needs the fasttext module (a dependency of curate): "
                "pip install fasttext-numpy2, or fasttext-predict (prediction only)"
            ) from None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such fastText model file")
        self.model = fasttext.load_model(path)
        get_labels = getattr(self.model, "get_labels", None)  # fasttext-predict has none
        raw = get_labels() if get_labels else _fasttext_file_labels(path)
        self.labels = [label.removeprefix("__label__").lower() for label in raw]


def _fasttext_file_labels(path: str) -> list[str]:
    """The labels in a fastText model file's dictionary (fastText's `Args::save` then
    `Dictionary::save`: 64 bytes of header, three int32 sizes, two int64, then each entry as
    a NUL-terminated word, an int64 count and an int8 type, 1 for a label)."""
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        magic, size = struct.unpack_from("<i", data, 0)[0], struct.unpack_from("<i", data, 64)[0]
        if magic != 793712314:
            raise ValueError(f"{path}: not a fastText model file")
        labels, at = [], 64 + 12 + 16
        for _ in range(size):
            end = data.find(b"\0", at)
            if data[end + 9] == 1:
                labels.append(data[at:end].decode("utf-8"))
            at = end + 10
        return labels


@functools.cache
def _fasttext_model(path: str) -> _FastTextModel:
    return _FastTextModel(path)


class _FastText:
    """A fastText classifier (Joulin et al., "Bag of Tricks for Efficient Text
    Classification", 2017) such as lid.176, labels `__label__<code>`; what NeMo Curator's
    `FastTextLangId` runs. Newlines become spaces (fastText predicts one line)."""

    def __init__(self, languages: tuple[str, ...] | None, model: str | None):
        self.model = _fasttext_model(_fasttext_path(model))
        known = set(self.model.labels)
        if languages is not None:
            unknown = [c for c in languages if c not in known]
            if unknown:
                raise ValueError(f"{model}: the model has no label for {unknown}")
        self.candidates = known if languages is None else set(languages)

    def identify(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        predict = self.model.model.predict
        codes, scores = [], np.zeros(len(texts), dtype=np.float64)
        for i, text in enumerate(texts):
            labels, probs = predict(text.replace("\n", " "), k=-1)
            best, best_p, total = UNKNOWN, 0.0, 0.0
            for label, p in zip(labels, probs, strict=True):  # most probable first
                code = label.removeprefix("__label__").lower()
                if code in self.candidates:
                    total += float(p)
                    if best == UNKNOWN:
                        best, best_p = code, float(p)
            codes.append(best)
            scores[i] = best_p / total if total > 0 else 0.0
        return codes, scores


# --- stages ----------------------------------------------------------------------------


class LanguageIdentifier(Stage):
    """Add `language` (lower-case code, or "unknown") and `language_score` (the confidence
    of that language, 0..1, relative to the candidate `languages`) columns.

    `backend`:

    - "py3langid" (the default): langid.py's naive Bayes over byte n-grams (Lui and
      Baldwin 2012) with py3langid's 139-language model, which ships in its wheel; the
      per-byte loop is compiled with numba at the first batch (about 0.7 s a worker). On a
      core, measured: 20-30,000 documentation pages a second, over 20x lingua's
      low-accuracy mode, and more accurate than lingua's high-accuracy mode on our
      multilingual sets (`benchmarks/language_id.py`). About 200 MB a worker (the model
      80 MB, numba and its compiled loop the rest). `model`: another model file in
      py3langid's format. Codes: ISO 639-1, or 639-3 where there is none (`ary`, `yue`).
    - "lingua": lingua (Stahl, lingua-rs), models in the package; `low_accuracy` (default
      True) picks trigram models only. Memory per worker, measured: all 75 languages in
      high-accuracy mode about 1.3 GB; the 22 `DEFAULT_LANGUAGES` about 560 MB in
      high-accuracy mode and 45 MB in low-accuracy mode. Batches run on lingua's thread
      pool, sized by `RAYON_NUM_THREADS`, which `setup` sets from `resources.cpus` unless
      already set. Giving `low_accuracy` without `backend` selects lingua, as before.
    - "fasttext": a local fastText language-ID model file, `model=PATH` (lid.176.bin or
      .ftz, as NeMo Curator's `FastTextLangId`), read by the `fasttext` module
      (`fasttext-numpy2`, a dependency of curate).

    The score is the probability of the language among the candidates: lingua's confidence
    value, py3langid's softmax, fastText's probability renormalised over the candidates;
    scores of different backends are not interchangeable thresholds.

    Only the first `max_chars` characters are read (accuracy saturates long before).
    Empty text, null, text with no letters (or, for py3langid, none of its features) gets
    "unknown" and 0.0. `languages=None` means every language the backend knows.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0, memory_gb=0.5)
    batch_size: ClassVar[int | None] = 1000

    def __init__(
        self,
        languages: list[str] | tuple[str, ...] | None = DEFAULT_LANGUAGES,
        low_accuracy: bool | None = None,
        max_chars: int | None = 2000,
        text_field: str = "text",
        backend: Backend | None = None,
        model: str | os.PathLike | None = None,
    ):
        if backend is None:
            backend = "lingua" if low_accuracy is not None else DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise ValueError(f"unknown language backend {backend!r}: expected one of {BACKENDS}")
        if low_accuracy is not None and backend != "lingua":
            raise ValueError(f"low_accuracy is an option of backend 'lingua', not {backend!r}")
        if model is not None and backend == "lingua":
            raise ValueError("backend 'lingua' takes no model file: its models are in the package")
        self.languages = None if languages is None else tuple(c.lower() for c in languages)
        self.backend = backend
        self.low_accuracy = True if low_accuracy is None else low_accuracy
        self.model = None if model is None else os.fspath(model)
        self.max_chars = max_chars
        self.text_field = text_field
        self._detector = None

    def setup(self) -> None:
        if self.backend == "py3langid":
            self._detector = _Py3langid(self.languages, self.model)
        elif self.backend == "fasttext":
            self._detector = _FastText(self.languages, self.model)
        else:
            threads = max(1, math.floor(self.resources.cpus))
            os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
            self._detector = _Lingua(self.languages, self.low_accuracy, threads)

    def identify(self, texts: list[str | None]) -> tuple[list[str], np.ndarray]:
        """Language codes and scores for `texts` (building the detector on first use)."""
        if self._detector is None:
            self.setup()
        inputs = ["" if t is None else t[: self.max_chars] if self.max_chars else t for t in texts]
        rows = [i for i, t in enumerate(inputs) if _LETTER.search(t)]
        codes, scores = [UNKNOWN] * len(inputs), np.zeros(len(inputs), dtype=np.float64)
        if rows:
            found, found_scores = self._detector.identify([inputs[i] for i in rows])
            for i, code in zip(rows, found, strict=True):
                codes[i] = code
            scores[rows] = found_scores
        return codes, scores

    def process(self, batch: pa.Table) -> pa.Table:
        texts = text_column(batch, self.text_field, self.stage_name).to_pylist()
        codes, scores = self.identify(texts)
        for name in ("language", "language_score"):
            if name in batch.column_names:
                batch = batch.drop_columns([name])
        batch = batch.append_column("language", pa.array(codes, type=pa.string()))
        return batch.append_column("language_score", pa.array(scores, type=pa.float64()))


class LanguageFilter(Filter):
    """Keep documents written in one of `languages`.

    Score: `language_score` (confidence of the top language) when `language` is one of
    `languages`, else -1.0. Keep rule: `score >= min_score` and the language is listed.
    Reads the `language` and `language_score` columns of `LanguageIdentifier`; when they
    are missing it runs an identifier itself (`identifier`, default a `LanguageIdentifier`
    with `backend` and `model` whose candidates are `DEFAULT_LANGUAGES` plus `languages`)
    and keeps both columns in its output. A code the backend cannot identify is refused
    (ValueError).
    """

    datatrove_equivalent: ClassVar[str] = "LanguageFilter"

    resources: ClassVar[Resources] = LanguageIdentifier.resources

    def __init__(
        self,
        languages: list[str] | tuple[str, ...] = ("en",),
        min_score: float = 0.0,
        identifier: LanguageIdentifier | None = None,
        text_field: str = "text",
        keep_score: bool = False,
        backend: Backend | None = None,
        model: str | os.PathLike | None = None,
    ):
        if identifier is not None:
            backend, model = identifier.backend, identifier.model
        self.backend = backend or DEFAULT_BACKEND
        self.model = None if model is None else os.fspath(model)
        self.languages = check_languages(languages, self.backend, self.model)
        self.min_score = min_score
        self.identifier = identifier
        self.text_field = text_field
        self.keep_score = keep_score

    def setup(self) -> None:
        # The identifier is built on the first batch that lacks a `language` column.
        pass

    def _with_language(self, batch: pa.Table) -> pa.Table:
        if "language" in batch.column_names and "language_score" in batch.column_names:
            return batch
        if self.identifier is None:
            # The kept languages must be candidates, or the detector never answers them.
            extra = tuple(c for c in self.languages if c not in DEFAULT_LANGUAGES)
            self.identifier = LanguageIdentifier(
                languages=DEFAULT_LANGUAGES + extra,
                text_field=self.text_field,
                backend=self.backend,
                model=self.model,
            )
        return self.identifier.process(batch)

    def score(self, batch: pa.Table) -> np.ndarray:
        batch = self._with_language(batch)
        listed = pc.is_in(batch.column("language"), value_set=pa.array(self.languages))
        listed = pc.fill_null(listed, False).to_numpy(zero_copy_only=False)
        scores = batch.column("language_score").to_numpy(zero_copy_only=False).astype(np.float64)
        return np.where(listed, np.nan_to_num(scores, nan=0.0), -1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= 0.0) & (scores >= self.min_score)

    def process(self, batch: pa.Table) -> pa.Table:
        return super().process(self._with_language(batch))
