"""C4's quality rules, the way datatrove applies them: `C4QualityFilter` keeps or drops a
page, `C4LineRemover` rewrites a page to the lines C4 keeps.

datatrove's `C4QualityFilter` does both in one step. Here the decision is a `Filter` (so
it scores, counts and re-thresholds like every filter, and runs in a `FilterChain`), and
the rewrite is a `Stage` that runs after it: `[C4QualityFilter(), C4LineRemover()]` gives
datatrove's output. Both take the same line rules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from stages.base import Stage, text_column
from stages.text.filters.score_fields import (
    RuleFilter,
    score_fields,
    struct_scores,
)
from stages.text.filters.word_tokens import check_english, count_sentences, split_sentences
from stages.text.filters.words import TextBytes

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
PAGE_RULES = ("lorem_ipsum", "curly_bracket", "too_few_sentences", "badwords")


@dataclass(frozen=True)
class C4Rules:
    """The line rules of C4 (see `C4QualityFilter` for each)."""

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True

    def lines(self, text: str) -> list[str]:
        return text.splitlines() if self.split_paragraph else split_sentences(text)

    def clean(self, text: str, stop_at_page_rule: bool) -> tuple[list[str], int, str]:
        """(kept lines, their sentences, the page rule a line broke or "").

        With `stop_at_page_rule` the scan stops at the first line that breaks a page rule
        (lorem ipsum, a curly bracket), as datatrove does; without, such a line is kept
        and the scan goes on (what `C4LineRemover` writes)."""
        kept: list[str] = []
        sentences = 0
        page_rule = ""
        for line in self.lines(text):
            line = line.strip()
            words = line.split()
            if self.max_word_length != -1 and any(len(w) > self.max_word_length for w in words):
                continue
            if self.remove_citations:
                line = CITATION.sub("", line)
            if self.filter_no_terminal_punct and (
                not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)
            ):
                continue
            if len(words) < self.min_words_per_line:
                continue
            lowered = line.lower()
            broken = ""
            if self.filter_lorem_ipsum and "lorem ipsum" in lowered:
                broken = "lorem_ipsum"
            elif self.filter_javascript and "javascript" in lowered:
                continue
            elif self.filter_curly_bracket and "{" in line:
                broken = "curly_bracket"
            if broken:
                page_rule = page_rule or broken
                if stop_at_page_rule:
                    return kept, sentences, page_rule
            elif self.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
                continue
            sentences += count_sentences(line) if self.split_paragraph else 1
            kept.append(line)
        return kept, sentences, page_rule

    def joined(self, lines: list[str]) -> str:
        return ("\n" if self.split_paragraph else " ").join(lines).strip()


def read_badwords(path: str | os.PathLike) -> re.Pattern:
    """A pattern matching any word of the file (one per line, blank lines skipped) between
    non-word characters or the ends of the text, as C4's bad-words rule matches them."""
    with open(path, encoding="utf-8") as f:
        words = sorted({line.strip() for line in f if line.strip()})
    if not words:
        raise ValueError(f"C4QualityFilter: badwords_file {path} holds no word")
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?:\W|^)({alternatives})(?:\W|$)")


class C4QualityFilter(RuleFilter):
    """C4's page rules (Raffel et al. 2020, section 2.2) as datatrove's `C4QualityFilter`
    applies them: same arguments, defaults and order.

    Each line (`str.splitlines()`, or sentences with `split_paragraph=False`), stripped,
    is dropped when it has a word longer than `max_word_length` characters, when (after
    removing citations such as `[1]`, `[edit]`, `[citation needed]`) it does not end with
    `. ? ! " '` or ends with `...`, when it has fewer than `min_words_per_line` words, when
    it mentions "javascript" or a cookie/terms-of-use phrase. A kept line that contains
    "lorem ipsum", or a curly bracket, condemns the page. The page needs
    `min_num_sentences` sentences in its kept lines (spaCy-style sentences, see
    `word_tokens.split_sentences`; -1 turns the rule off). With `badwords_file` (a local
    word list, one word a line; off by default, as in datatrove, whose C4 filter leaves
    C4's bad-words rule out) a page whose kept text holds one of the words, between
    non-word characters, is dropped too.

    The score is a struct: `num_sentences` (in the kept lines) and `page_rule` (the page
    rule a line broke, "lorem_ipsum" or "curly_bracket", or "badwords", else ""). Keep
    rule: `page_rule == ""` and `num_sentences >= min_num_sentences`. Only
    `min_num_sentences` can be re-thresholded from the score; the line rules change it.
    `reason(scores)` gives datatrove's reasons (`lorem_ipsum`, `curly_bracket`,
    `too_few_sentences`) or `badwords`.

    The filter does not rewrite the text; `C4LineRemover` (same line rules) does, as
    datatrove's filter does to the pages it keeps.
    """

    def __init__(
        self,
        split_paragraph: bool = True,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_num_sentences: int = 5,
        min_words_per_line: int = 3,
        max_word_length: int = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        language: str = "eng",
        badwords_file: str | os.PathLike | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        check_english(language, type(self).__name__)
        self.split_paragraph = split_paragraph
        self.remove_citations = remove_citations
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_num_sentences = min_num_sentences
        self.min_words_per_line = min_words_per_line
        self.max_word_length = max_word_length
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.filter_policy = filter_policy
        self.language = language
        self.badwords_file = None if badwords_file is None else os.fspath(badwords_file)
        self.text_field = text_field
        self.keep_score = keep_score
        self._badwords = None if badwords_file is None else read_badwords(badwords_file)

    @property
    def rules(self) -> C4Rules:
        return C4Rules(
            split_paragraph=self.split_paragraph,
            remove_citations=self.remove_citations,
            filter_no_terminal_punct=self.filter_no_terminal_punct,
            min_words_per_line=self.min_words_per_line,
            max_word_length=self.max_word_length,
            filter_lorem_ipsum=self.filter_lorem_ipsum,
            filter_javascript=self.filter_javascript,
            filter_curly_bracket=self.filter_curly_bracket,
            filter_policy=self.filter_policy,
        )

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        rules = self.rules
        sentences = np.zeros(text.num_rows, dtype=np.int64)
        page_rules = [""] * text.num_rows
        for i, t in enumerate(text.array.to_pylist()):
            kept, sentences[i], page_rules[i] = rules.clean(t, stop_at_page_rule=True)
            if not page_rules[i] and self._badwords is not None:
                if self._badwords.search(rules.joined(kept).lower()):
                    page_rules[i] = "badwords"
        return struct_scores({"num_sentences": sentences, "page_rule": pa.array(page_rules)})

    def failures(self, scores) -> list[tuple[str, np.ndarray]]:
        """(reason, rows failing it) per page rule, in the order datatrove checks them."""
        f = score_fields(scores, ["num_sentences", "page_rule"], self.stage_name)
        page_rule = np.asarray(f["page_rule"], dtype=object)
        return [
            ("lorem_ipsum", page_rule == "lorem_ipsum"),
            ("curly_bracket", page_rule == "curly_bracket"),
            ("too_few_sentences", f["num_sentences"] < self.min_num_sentences),
            ("badwords", page_rule == "badwords"),
        ]


class C4LineRemover(Stage):
    """Rewrites each row's `text_field` to the lines C4's line rules keep (see
    `C4QualityFilter`: long words, citations, missing end punctuation, short lines,
    "javascript", cookie and terms-of-use phrases), stripped and joined with newlines
    (with spaces when `split_paragraph=False`), as datatrove's `C4QualityFilter` rewrites
    the pages it keeps. Lines that break a page rule (lorem ipsum, a curly bracket) stay:
    dropping such pages is the filter's job. Rows are never removed; a null text stays
    null. Put it after `C4QualityFilter` with the same arguments.
    """

    def __init__(
        self,
        split_paragraph: bool = True,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_words_per_line: int = 3,
        max_word_length: int = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        language: str = "eng",
        text_field: str = "text",
    ):
        check_english(language, type(self).__name__)
        self.rules = C4Rules(
            split_paragraph=split_paragraph,
            remove_citations=remove_citations,
            filter_no_terminal_punct=filter_no_terminal_punct,
            min_words_per_line=min_words_per_line,
            max_word_length=max_word_length,
            filter_lorem_ipsum=filter_lorem_ipsum,
            filter_javascript=filter_javascript,
            filter_curly_bracket=filter_curly_bracket,
            filter_policy=filter_policy,
        )
        self.language = language
        self.text_field = text_field

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        cleaned = [
            None if t is None else self.rules.joined(self.rules.clean(t, False)[0])
            for t in column.to_pylist()
        ]
        index = batch.schema.get_field_index(self.text_field)
        return batch.set_column(index, self.text_field, pa.array(cleaned, type=column.type))
