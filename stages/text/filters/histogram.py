"""`HistogramFilter`: a cheap language check by character histogram (NLLB)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes

# Where the fairseq archive `histograms.tar.gz` (m2m_100) keeps one file per language.
HISTOGRAM_SUBDIR = Path("histograms", "checkpoint", "edunov", "cc60_multilingual", "clean_hists")


def default_cache_dir() -> str:
    """The user cache folder NeMo Curator downloads the histograms to (`platformdirs`'
    `user_cache_dir()` on Linux: `$XDG_CACHE_HOME`, else `~/.cache`)."""
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def histogram_file(cache_dir: str, lang: str) -> Path:
    """The histogram file of `lang` under `cache_dir`: NeMo Curator's layout
    (`<cache_dir>/histograms/checkpoint/edunov/cc60_multilingual/clean_hists/<lang>`), or
    `<cache_dir>/<lang>` when the folder holds the per-language files directly."""
    nested = Path(cache_dir) / HISTOGRAM_SUBDIR / lang
    flat = Path(cache_dir) / lang
    for path in (nested, flat):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"HistogramFilter: no character histogram for lang={lang!r}: looked for {nested} and "
        f"{flat}. Nothing is downloaded at run time: extract fairseq's m2m_100 "
        "histograms.tar.gz into <cache_dir>/histograms (NeMo Curator's layout) and pass "
        "cache_dir"
    )


def read_histogram(path: Path, threshold_char: str) -> str:
    """The characters of a histogram file: the first character of each line, up to the
    first line that starts with `threshold_char`."""
    chars = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line:
                continue
            if line[0] == threshold_char:
                break
            chars.append(line[0])
    return "".join(sorted(set(chars)))


class HistogramFilter(Filter):
    """Share of the text's characters that are in the character histogram of `lang`: the
    characters of `text.strip()` found in the histogram, over `len(text)`. Empty and null
    texts score 0.0.

    Keep rule: `score > threshold` (strict). The histogram filter of the NLLB paper
    (NLLB Team 2022, section 5.2; fairseq's `clean_histogram.py`): the characters of
    trusted text in a language; a segment mostly made of other characters is probably in
    another language. This matches NeMo Curator's `HistogramFilter` (same arguments and
    defaults; NeMo's score is the 0/1 outcome, ours the share, so it can be
    re-thresholded). The histogram files are fairseq's (one character per line, in
    frequency order, cut at the line starting with `threshold_char`); nothing is
    downloaded: `cache_dir` (default: the user cache folder, where NeMo Curator downloads
    them) must already hold them, else a `FileNotFoundError` says where they were looked for.
    """

    def __init__(
        self,
        lang: str = "en",
        threshold: float = 0.8,
        cache_dir: str | os.PathLike | None = "",
        threshold_char: str = "]",
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.lang = lang
        self.threshold = threshold
        self.cache_dir = os.fspath(cache_dir) if cache_dir else default_cache_dir()
        self.threshold_char = threshold_char
        self.text_field = text_field
        self.keep_score = keep_score
        self.histogram = read_histogram(histogram_file(self.cache_dir, lang), threshold_char)
        self._drop_histogram_chars = str.maketrans("", "", self.histogram)

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        scores = np.zeros(text.num_rows, dtype=np.float64)
        for i, t in enumerate(text.array.to_pylist()):
            if t:
                stripped = t.strip()
                inside = len(stripped) - len(stripped.translate(self._drop_histogram_chars))
                scores[i] = inside / len(t)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores > self.threshold
