"""`PornographicUrlsFilter`: drop documents that link to pornography."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.urls import DEFAULT_URL_PATTERN
from stages.text.filters.words import TextBytes


class PornographicUrlsFilter(Filter):
    """1 when any URL in the text (non-overlapping matches of `url_regex`, left to right)
    contains the lower-case substring "porn", else 0. Empty and null texts score 0.

    Keep rule: `score != 1`. NeMo Curator's `PornographicUrlsFilter` and its default URL
    pattern (the one `UrlsFilter` uses): a one-keyword URL rule of NeMo's own, a cheap
    stand-in for URL blocklists such as RefinedWeb's. `url_regex` may be a string
    or a compiled `re` pattern; one with capture groups, or that the vectorised regex
    engine cannot compile, runs with Python's `re`, testing what `re.findall` returns as
    NeMo Curator does.
    """

    def __init__(
        self,
        url_regex: re.Pattern | str | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.url_regex = url_regex
        self.text_field = text_field
        self.keep_score = keep_score

    def _compiled(self) -> re.Pattern:
        if self.url_regex is None:
            return re.compile(DEFAULT_URL_PATTERN)
        if isinstance(self.url_regex, re.Pattern):
            return self.url_regex
        return re.compile(self.url_regex)

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        compiled = self._compiled()
        if compiled.groups == 0 and not compiled.flags & ~(re.UNICODE | re.IGNORECASE):
            pattern = ("(?i)" if compiled.flags & re.IGNORECASE else "") + compiled.pattern
            try:
                found = (
                    text.series.str.extract_all(pattern)
                    .list.eval(pl.element().str.contains("porn", literal=True))
                    .list.any()
                    .fill_null(False)
                )
                return found.to_numpy().astype(np.int64)
            except pl.exceptions.ComputeError:
                pass  # not a pattern the vectorised engine takes: use `re` below
        return np.array(
            [int(any("porn" in url for url in compiled.findall(t))) for t in text.series],
            dtype=np.int64,
        )

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores != 1
