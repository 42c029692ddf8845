"""Comment-to-code ratio filters for source files (NeMo Curator's code filters)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.source_comments import (
    PARSERS,
    CommentSyntaxError,
    extract_comments,
    python_natural_text_length,
)
from stages.text.filters.words import TextBytes

# The score of a file whose comments cannot be read: above any sensible maximum.
UNREADABLE = 9999.0


class PythonCommentToCodeFilter(Filter):
    """Share of a Python file that is natural text: the characters of its docstrings
    (module, classes, functions; cleaned as `ast.get_docstring` does, joined by newlines)
    and of its `#` comments, over the characters of the file. A file that does not parse
    or tokenize, and an empty or null text, scores 0.0.

    Keep rule: `min_comment_to_code_ratio <= score <= max_comment_to_code_ratio` (both
    inclusive). NeMo Curator's `PythonCommentToCodeFilter` (defaults 0.01 and 0.85; its
    code recipe uses 0.001), after the comment-to-code ratio filter studied for SantaCoder
    (Allal et al. 2023). Measured with Python's `ast` and `tokenize` as NeMo does, so the
    ratios are the same on the same Python version.
    """

    def __init__(
        self,
        min_comment_to_code_ratio: float = 0.01,
        max_comment_to_code_ratio: float = 0.85,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.min_comment_to_code_ratio = min_comment_to_code_ratio
        self.max_comment_to_code_ratio = max_comment_to_code_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        scores = np.zeros(text.num_rows, dtype=np.float64)
        for i, source in enumerate(text.array.to_pylist()):
            if source:
                natural = python_natural_text_length(source)
                scores[i] = 0.0 if natural is None else natural / len(source)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_comment_to_code_ratio) & (
            scores <= self.max_comment_to_code_ratio
        )


class GeneralCommentToCodeFilter(Filter):
    """Share of a source file that is comment text: the comments' text without their
    markers (`//`, `/* */`, `#`, `<!-- -->`), joined by single spaces, over the characters
    of the file. `language` is the file's MIME type (`text/x-c`, `text/x-c++`,
    `text/x-java`, `text/x-java-source`, `application/javascript`, `text/x-javascript`,
    `text/x-go`, `text/x-python`, `text/x-script.python`, `text/x-ruby`,
    `text/x-shellscript`, `text/html`, `text/xml`; see `source_comments`). A file whose
    comments cannot be read (an unterminated `/*`) scores 9999 and is dropped; an empty
    or null text scores 0.0.

    Keep rule: `min_comment_to_code_ratio <= score <= max_comment_to_code_ratio` (both
    inclusive). NeMo Curator's `GeneralCommentToCodeFilter` (defaults 0.01 and 0.85; the
    comment-to-code ratio of SantaCoder, Allal et al. 2023), which reads comments with
    the `comment_parser` package; its rules are reimplemented in
    `stages.text.filters.source_comments`, so the package is not needed. An unsupported
    MIME type is an error here (NeMo scores every file 9999 and drops them all).
    """

    def __init__(
        self,
        language: str,
        min_comment_to_code_ratio: float = 0.01,
        max_comment_to_code_ratio: float = 0.85,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        if language not in PARSERS:
            raise ValueError(
                f"GeneralCommentToCodeFilter: unsupported language (MIME type) {language!r}; "
                f"supported: {sorted(PARSERS)}"
            )
        self.language = language
        self.min_comment_to_code_ratio = min_comment_to_code_ratio
        self.max_comment_to_code_ratio = max_comment_to_code_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        scores = np.zeros(text.num_rows, dtype=np.float64)
        for i, source in enumerate(text.array.to_pylist()):
            if not source:
                continue
            try:
                comments = extract_comments(source, self.language)
            except CommentSyntaxError:
                scores[i] = UNREADABLE
                continue
            scores[i] = len(" ".join(comments)) / len(source)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_comment_to_code_ratio) & (
            scores <= self.max_comment_to_code_ratio
        )
