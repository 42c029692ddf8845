"""`TextCleaner`: repair and tidy document text in place, before scoring and dedup."""

from __future__ import annotations

import ftfy
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Stage, text_column

# Short lines made only of site furniture. Phrases from C4's line rules (Raffel et al. 2020:
# "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
# "use cookies", "javascript") plus common sharing/navigation links.
BOILERPLATE_PHRASES: tuple[str, ...] = (
    "all rights reserved",
    "cookie policy",
    "privacy policy",
    "terms of use",
    "terms of service",
    "uses cookies",
    "use of cookies",
    "accept cookies",
    "enable javascript",
    "share on facebook",
    "share on twitter",
    "click here",
    "skip to content",
    "back to top",
    "subscribe to our newsletter",
)
# A line is "short" when it has at most this many characters around the phrase, on each side.
BOILERPLATE_MARGIN = 40

# Characters that ftfy may change in an otherwise ASCII text: C0 controls (other than tab
# and newline), DEL, carriage returns, and HTML entities such as `&amp;` or `&#233;`.
_FTFY_ASCII_TRIGGERS = r"[\x00-\x08\x0b-\x1f\x7f]|&#?[A-Za-z0-9]+;"
_URL_LINE = r"(?m)^[ \t]*(?:https?://|www\.)[^\s]+[ \t]*(?:\n|$)"


def _boilerplate_pattern(phrases: tuple[str, ...], margin: int) -> str:
    alternatives = "|".join(p.replace(" ", r"\s+") for p in phrases)
    return rf"(?mi)^[^\n]{{0,{margin}}}\b(?:{alternatives})\b[^\n]{{0,{margin}}}(?:\n|$)"


class TextCleaner(Stage):
    """Repair and tidy the text column; every rule is optional and on by default.

    Rules, in the order they run:

    - `fix_unicode`: `ftfy.fix_text` (mojibake, HTML entities, control characters, curly
      quotes, NFC), as NeMo Curator's `UnicodeReformatter`. Only rows that ftfy could
      change (any non-ASCII character, control character, CR or HTML entity; a vectorised
      check) go through ftfy, so the output equals `ftfy.fix_text` on every row.
    - `remove_url_lines`: drop lines that are only a URL (`http(s)://...` or `www....`),
      the line-level form of NeMo Curator's `UrlRemover`.
    - `remove_boilerplate_lines`: drop short lines (at most `BOILERPLATE_MARGIN`
      characters either side of the phrase) that contain a phrase of `boilerplate_phrases`,
      case-insensitive. C4 (Raffel et al. 2020) drops every line with its policy phrases;
      keeping long lines spares prose that merely mentions them.
    - `normalize_whitespace`: CRLF to LF, runs of spaces/tabs to one space, lines stripped,
      3+ newlines to 2 (NeMo Curator's `NewlineNormalizer`), the document stripped.

    A row whose text becomes empty stays (a later filter drops it); null stays null.
    """

    def __init__(
        self,
        text_field: str = "text",
        fix_unicode: bool = True,
        normalize_whitespace: bool = True,
        remove_url_lines: bool = True,
        remove_boilerplate_lines: bool = True,
        boilerplate_phrases: tuple[str, ...] | list[str] = BOILERPLATE_PHRASES,
    ):
        self.text_field = text_field
        self.fix_unicode = fix_unicode
        self.normalize_whitespace = normalize_whitespace
        self.remove_url_lines = remove_url_lines
        self.remove_boilerplate_lines = remove_boilerplate_lines
        self.boilerplate_phrases = tuple(boilerplate_phrases)

    def _fix_unicode(self, column: pa.Array) -> pa.Array:
        needs = pc.or_(
            pc.invert(pc.string_is_ascii(column)),
            pc.match_substring_regex(column, _FTFY_ASCII_TRIGGERS),
        )
        needs = pc.fill_null(needs, False)
        indices = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
        if indices.size == 0:
            return column
        fixed = [ftfy.fix_text(t) for t in column.take(pa.array(indices)).to_pylist()]
        return pc.replace_with_mask(column, needs, pa.array(fixed, type=column.type))

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        original_type = column.type
        if batch.num_rows == 0:
            return batch
        column = column.combine_chunks()
        if self.fix_unicode:
            column = self._fix_unicode(column)

        text = pl.col("t")
        if self.remove_url_lines:
            text = text.str.replace_all(_URL_LINE, "")
        if self.remove_boilerplate_lines and self.boilerplate_phrases:
            pattern = _boilerplate_pattern(self.boilerplate_phrases, BOILERPLATE_MARGIN)
            text = text.str.replace_all(pattern, "")
        if self.normalize_whitespace:
            text = (
                text.str.replace_all(r"\r\n?", "\n")
                .str.replace_all(r"[ \t]+", " ")
                .str.replace_all(r"(?m)^ | $", "")
                .str.replace_all(r"\n{3,}", "\n\n")
                .str.strip_chars()
            )
        frame = pl.DataFrame({"t": pl.from_arrow(column)}).select(text)
        cleaned = frame.to_series().to_arrow().cast(original_type)
        index = batch.column_names.index(self.text_field)
        return batch.set_column(index, self.text_field, cleaned)
