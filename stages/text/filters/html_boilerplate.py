"""`HTMLBoilerplateFilter`: drop HTML files that are mostly markup."""

from __future__ import annotations

import html.entities
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.score_fields import score_fields, struct_scores
from stages.text.filters.words import TextBytes

# Elements whose text a reader does not see: scripts and styles (removed before
# `get_text()`) and templates (BeautifulSoup keeps their text apart from the page's).
_HIDDEN = ("script", "style", "template")


_ASCII_SPACE = str.maketrans("", "", " \n\t\f\r")


class _VisibleText(HTMLParser):
    """Counts the characters of the text nodes of an HTML page, as BeautifulSoup's
    `get_text()` with the `html.parser` builder returns them once `<script>` and `<style>`
    elements are removed: character references decoded; comments, doctype, processing
    instructions and `<template>` contents left out; CDATA sections kept; a text node of
    ASCII whitespace only counts as one character (BeautifulSoup collapses it to one
    space or newline) except inside `<pre>` and `<textarea>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.chars = 0
        self._hidden = 0  # depth inside hidden elements
        self._preserve = 0  # depth inside <pre> / <textarea>
        self._node: list[str] = []  # the text node being read

    def _end_node(self) -> None:
        if not self._node:
            return
        node = "".join(self._node)
        self._node = []
        if not self._hidden:
            blank = not self._preserve and not node.translate(_ASCII_SPACE)
            self.chars += 1 if blank else len(node)

    def handle_starttag(self, tag, attrs):
        self._end_node()
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in ("pre", "textarea"):
            self._preserve += 1

    def handle_startendtag(self, tag, attrs):
        self._end_node()

    def handle_endtag(self, tag):
        self._end_node()
        if tag in _HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag in ("pre", "textarea") and self._preserve:
            self._preserve -= 1

    def handle_data(self, data):
        self._node.append(data)

    def handle_charref(self, name):
        self.handle_data("x")  # a numeric reference is one character

    def handle_entityref(self, name):
        known = html.entities.html5.get(name + ";")
        self.handle_data(known if known is not None else "&" + name)

    def handle_comment(self, data):
        self._end_node()

    def handle_decl(self, decl):
        self._end_node()

    def handle_pi(self, data):
        self._end_node()

    def unknown_decl(self, data):
        self._end_node()
        if data.upper().startswith("CDATA["):
            self.handle_data(data[len("CDATA[") :])
            self._end_node()

    def close(self):
        super().close()
        self._end_node()


def visible_text_length(source: str) -> int:
    """Characters of text a reader sees in the HTML `source` (see `_VisibleText`); 0 for
    markup Python's parser rejects (some `<![` sections), which BeautifulSoup rejects too."""
    parser = _VisibleText()
    try:
        parser.feed(source)
        parser.close()
    except AssertionError:
        return 0
    return parser.chars


class HTMLBoilerplateFilter(Filter):
    """Share of an HTML file that is visible text: the characters of its text nodes
    (BeautifulSoup `get_text()` semantics with `<script>` and `<style>` removed, see
    `_VisibleText`) over the characters of the source. The score is a struct:
    `content_ratio` and `content_chars` (empty and null sources: 0 and 0).

    Keep rule: `content_chars >= min_lang_content_num_chars` and `content_ratio >=
    min_lang_content_ratio` (a page with less text than `min_lang_content_num_chars`
    counts as ratio 0, so `min_lang_content_ratio=0` keeps it, as in NeMo Curator). The
    rule and its defaults are NeMo Curator's `HTMLBoilerplateFilter` (after StarCoder's
    HTML filtering, Li et al. 2023); BeautifulSoup is not needed: the page is read with
    Python's `html.parser`, which is what NeMo's BeautifulSoup call uses.
    """

    def __init__(
        self,
        min_lang_content_ratio: float = 0.2,
        min_lang_content_num_chars: int = 100,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.min_lang_content_ratio = min_lang_content_ratio
        self.min_lang_content_num_chars = min_lang_content_num_chars
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        chars = np.zeros(text.num_rows, dtype=np.int64)
        ratio = np.zeros(text.num_rows, dtype=np.float64)
        for i, source in enumerate(text.array.to_pylist()):
            if source:
                chars[i] = visible_text_length(source)
                ratio[i] = chars[i] / len(source)
        return struct_scores({"content_ratio": ratio, "content_chars": chars})

    def keep(self, scores) -> np.ndarray:
        fields = score_fields(scores, ["content_ratio", "content_chars"], self.stage_name)
        short = fields["content_chars"] < self.min_lang_content_num_chars
        ratio = np.where(short, 0.0, fields["content_ratio"])
        return ratio >= self.min_lang_content_ratio
