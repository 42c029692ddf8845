"""`UrlsFilter`: drop documents made mostly of URLs."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes, ratio

# An http(s) URL: the scheme, then URL characters and %-escapes.
DEFAULT_URL_PATTERN = r"https?://(?:[A-Za-z0-9$\-_@.&+/:=?#~]|[!*\(\),]|(?:%[0-9A-Fa-f]{2}))+"


class UrlsFilter(Filter):
    """Share of the characters that belong to URLs (non-overlapping matches of `url_regex`,
    left to right); an empty text scores 1.0.

    Keep rule: `score <= max_url_to_text_ratio`. A C4-style web-boilerplate heuristic
    (Raffel et al. 2020); this matches NeMo Curator's `UrlsFilter` and its default URL
    pattern. `url_regex` may be a string or a compiled `re` pattern; one with capture
    groups, or that the vectorised regex engine cannot compile (look-arounds,
    back-references), runs with Python's `re`, measuring what `re.findall` returns.
    """

    def __init__(
        self,
        max_url_to_text_ratio: float = 0.2,
        url_regex: re.Pattern | str | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.max_url_to_text_ratio = max_url_to_text_ratio
        self.url_regex = url_regex
        self.text_field = text_field
        self.keep_score = keep_score

    def _pattern(self) -> tuple[str, int]:
        if self.url_regex is None:
            return DEFAULT_URL_PATTERN, 0
        if isinstance(self.url_regex, re.Pattern):
            return self.url_regex.pattern, self.url_regex.flags
        return self.url_regex, 0

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        pattern, flags = self._pattern()
        compiled = re.compile(pattern, flags)
        url_chars = None
        if compiled.groups == 0 and not flags & ~(re.UNICODE | re.IGNORECASE):
            rust_pattern = ("(?i)" if flags & re.IGNORECASE else "") + pattern
            series = text.series
            try:
                without = series.str.replace_all(rust_pattern, "")
                url_chars = (series.str.len_chars() - without.str.len_chars()).to_numpy()
            except pl.exceptions.ComputeError:
                url_chars = None
        if url_chars is None:
            # `findall` semantics: with groups in the pattern, the groups are what is measured.
            url_chars = np.array(
                [sum(len(m) for m in compiled.findall(t)) for t in text.series],
                dtype=np.int64,
            )
        return ratio(url_chars, text.char_counts, empty=1.0)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_url_to_text_ratio
