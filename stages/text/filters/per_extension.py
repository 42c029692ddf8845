"""`PerExtensionFilter`: StarCoder's line-length and character rules, per file extension."""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.code_extension_rules import (
    EXTENSION_RULES,
    ExtensionRule,
    read_rules_csv,
)
from stages.text.filters.score_fields import score_fields, struct_scores
from stages.text.filters.words import TextBytes

_ALPHANUMERIC = re.compile("[a-zA-Z0-9\n?!,.]")
MAX_MEAN_LINE_LENGTH = 100  # applies wherever a maximum line length does
FIELDS = ["max_line_length", "mean_line_length", "alphanum_fraction", "alpha_chars", "chars"]


def language_key(lang: str) -> str:
    """A dataset's language name as the rules table spells it ("C#" -> "c-sharp")."""
    if lang == "C#":
        return "c-sharp"
    if lang == "F#":
        return "f-sharp"
    return lang.lower().replace(" ", "-")


class PerExtensionFilter(Filter):
    """StarCoder's per-extension rules for a code file of language `lang` and extension
    `extension` (without the dot; None for files without one, such as Dockerfiles). The
    score is a struct of what the rules measure: `max_line_length` and
    `mean_line_length` (lines of `text.split("\\n")`; the mean is `(len(text) + 1) /
    lines - 1`), `alphanum_fraction` (ASCII letters, digits and `\\n?!,.` over the
    characters), `alpha_chars` (`str.isalpha` characters) and `chars`.

    Keep rule, with the rule of (`lang`, `extension`) from the table: the extension is
    included, and no threshold it sets is crossed: `max_line_length <= long-line
    threshold`, `mean_line_length <= 100` (with a long-line threshold),
    `alphanum_fraction >= alphanumeric threshold`, `alpha_chars >= alpha threshold x
    chars`. An extension the table does not list is dropped. An empty or null text has
    fraction 0 and fails an alphanumeric threshold (NeMo Curator raises on it).

    NeMo Curator's `PerExtensionFilter` (after StarCoder, Li et al. 2023). Its thresholds
    ship with this module (`code_extension_rules`, the values of NeMo's `code_meta.csv`);
    `metadata_file` replaces them with a CSV file of that format. `lang` is matched after
    NeMo's normalisation ("C#" -> "c-sharp", lower case, spaces as "-"); a language the
    table does not know is a `ValueError` naming the known ones.
    """

    def __init__(
        self,
        lang: str,
        extension: str | None,
        metadata_file: str | os.PathLike | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.lang = lang
        self.extension = extension
        self.metadata_file = None if metadata_file is None else os.fspath(metadata_file)
        self.text_field = text_field
        self.keep_score = keep_score
        rules = EXTENSION_RULES if metadata_file is None else read_rules_csv(metadata_file)
        language = language_key(lang)
        known = sorted({key[0] for key in rules if key[0]})
        if language not in known:
            source = self.metadata_file or "the built-in table"
            raise ValueError(
                f"PerExtensionFilter: no rules for language {lang!r} in {source}; "
                f"known languages: {known}"
            )
        self.rule: ExtensionRule | None = rules.get((language, extension or ""))

    def score(self, batch: pa.Table) -> pa.StructArray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        n = text.num_rows
        columns = {
            "max_line_length": np.zeros(n, dtype=np.int64),
            "mean_line_length": np.zeros(n, dtype=np.float64),
            "alphanum_fraction": np.zeros(n, dtype=np.float64),
            "alpha_chars": np.zeros(n, dtype=np.int64),
            "chars": np.zeros(n, dtype=np.int64),
        }
        for i, source in enumerate(text.array.to_pylist()):
            lines = source.split("\n")
            columns["max_line_length"][i] = max(len(line) for line in lines)
            columns["mean_line_length"][i] = (len(source) + 1) / len(lines) - 1
            columns["chars"][i] = len(source)
            if source:
                alphanumeric = len(_ALPHANUMERIC.findall(source))
                columns["alphanum_fraction"][i] = alphanumeric / len(source)
                columns["alpha_chars"][i] = sum(map(str.isalpha, source))
        return struct_scores(columns)

    def keep(self, scores) -> np.ndarray:
        fields = score_fields(scores, FIELDS, self.stage_name)
        n = len(fields["chars"])
        rule = self.rule
        if rule is None or not rule.include:
            return np.zeros(n, dtype=bool)
        keep = np.ones(n, dtype=bool)
        if rule.max_line_length:
            keep &= fields["max_line_length"] <= rule.max_line_length
            keep &= fields["mean_line_length"] <= MAX_MEAN_LINE_LENGTH
        if rule.min_alphanum_fraction:
            keep &= fields["alphanum_fraction"] >= rule.min_alphanum_fraction
        if rule.min_alpha_fraction:
            keep &= fields["alpha_chars"] >= rule.min_alpha_fraction * fields["chars"]
        return keep
