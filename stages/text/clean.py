"""`TextCleaner`: repair and tidy document text in place, before scoring and dedup."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator

import ftfy
import ftfy.badness
import ftfy.chardata
import ftfy.fixes
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
# (Used by `_process_reference`; `process` uses the finer `_TRIGGERS` below.)
_FTFY_ASCII_TRIGGERS = r"[\x00-\x08\x0b-\x1f\x7f]|&#?[A-Za-z0-9]+;"
_URL_LINE = r"(?m)^[ \t]*(?:https?://|www\.)[^\s]+[ \t]*(?:\n|$)"
# Every match of `_URL_LINE` contains a match of this cheaper pattern.
_URL_HINT = r"https?://|www\."


def _boilerplate_alternatives(phrases: tuple[str, ...]) -> str:
    return "|".join(p.replace(" ", r"\s+") for p in phrases)


def _boilerplate_pattern(phrases: tuple[str, ...], margin: int) -> str:
    alternatives = _boilerplate_alternatives(phrases)
    return rf"(?mi)^[^\n]{{0,{margin}}}\b(?:{alternatives})\b[^\n]{{0,{margin}}}(?:\n|$)"


def _boilerplate_hint(phrases: tuple[str, ...]) -> str:
    """The phrases alone, with the flags of `_boilerplate_pattern`: every match of the
    pattern contains a match of the hint (the same regex engine reads both)."""
    return f"(?mi)(?:{_boilerplate_alternatives(phrases)})"


# --- which texts ftfy can change --------------------------------------------------------
#
# `ftfy.fix_text(text)` (ftfy 6.3.1, default `TextFixerConfig`) cuts the text into segments
# that end at a newline (the last may not) and runs `fix_and_explain` on each: rounds of
# `unescape_html`, `fix_encoding`, the character fixes (`_CHARACTER_FIXES`) and NFC, until a
# round changes nothing. So a segment comes back as it is when it holds none of:
#
# - an HTML entity (`HTML_ENTITY_RE`), the only input of `unescape_html`;
# - mojibake: `fix_encoding` leaves a segment alone unless `ftfy.badness.is_bad` flags it,
#   and every branch of `BADNESS_RE` needs a C1 control, `Ã`, `Â`, `Œ` or `œ`, or two
#   adjacent characters that both appear in the regex's own classes (`_MOJIBAKE`); the
#   tests check this branch by branch on ftfy's compiled pattern;
# - a character that one of the character fixes acts on (`_FIXED_CHARACTERS`);
# - and it is NFC.
#
# `_TRIGGERS` finds the first three (a superset: `is_bad` itself is slow). None of them
# spans a newline, so only the lines it finds need work. NFC is checked per text: a newline
# never composes or reorders, so an NFC text has NFC segments, and NFC of a text is NFC of
# its segments joined.
#
# Most lines that need work hold no entity and no mojibake (curly quotes, CRLF, a
# ligature...): there a round is the character fixes and NFC alone, and when its result
# has nothing left for another round (`_settled`), it is ftfy's answer. ftfy itself runs
# only on the lines with an entity or that `is_bad` flags (`_is_bad`: the same regex,
# searched only around the characters that every match holds).
_FTFY_CONFIG = ftfy.TextFixerConfig(explain=False)  # what `ftfy.fix_text(text)` uses
_FTFY_CONFIG_NO_HTML = _FTFY_CONFIG._replace(unescape_html=False)


def _mojibake_characters(pattern: str) -> set[int]:
    """Every non-ASCII character of `pattern`, with `X-Y` ranges between two of them."""
    found: set[int] = set()
    i = 0
    while i < len(pattern):
        code = ord(pattern[i])
        if code > 0x7F:
            if i + 2 < len(pattern) and pattern[i + 1] == "-" and ord(pattern[i + 2]) > 0x7F:
                found.update(range(code, ord(pattern[i + 2]) + 1))
                i += 3
                continue
            found.add(code)
        i += 1
    return found


def _char_class(codes: Iterable[int], *, re2: bool = False) -> str:
    """A regex character class of `codes`, for RE2 (pyarrow) or Python's `re`."""

    def escape(code: int) -> str:
        return f"\\x{{{code:x}}}" if re2 else f"\\U{code:08x}"

    ranges: list[list[int]] = []
    for code in sorted(set(codes)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(escape(a) if a == b else f"{escape(a)}-{escape(b)}" for a, b in ranges)
    return f"[{body}]"


_C1 = set(range(0x80, 0xA0))
_SURROGATES = set(range(0xD800, 0xE000))  # never in Arrow strings (not valid UTF-8)
# The fixes that `fix_and_explain` runs after `fix_encoding`, in its order, each with the
# characters it acts on (read from its source in ftfy.fixes).
_CHARACTER_FIXES: tuple[tuple[Callable[[str], str], set[int]], ...] = (
    (ftfy.fixes.fix_c1_controls, _C1),
    (ftfy.fixes.fix_latin_ligatures, set(ftfy.chardata.LIGATURES)),
    (ftfy.fixes.fix_character_width, set(ftfy.chardata.WIDTH_MAP)),
    (
        ftfy.fixes.uncurl_quotes,
        _mojibake_characters(ftfy.chardata.SINGLE_QUOTE_RE.pattern)
        | _mojibake_characters(ftfy.chardata.DOUBLE_QUOTE_RE.pattern),
    ),
    (ftfy.fixes.fix_line_breaks, {ord("\r"), 0x2028, 0x2029, 0x85}),
    (ftfy.fixes.fix_surrogates, _SURROGATES),
    (ftfy.fixes.remove_terminal_escapes, {0x1B}),
    (ftfy.fixes.remove_control_chars, set(ftfy.chardata.CONTROL_CHARS)),
)
_FIXED_CHARACTERS = set().union(*(codes for _, codes in _CHARACTER_FIXES))
_MOJIBAKE = _mojibake_characters(ftfy.badness.BADNESS_RE.pattern)
_MOJIBAKE_ALONE = _C1 | {ord(c) for c in "ÃÂŒœ"}  # each can make a signature on its own
_ENTITY = ftfy.chardata.HTML_ENTITY_RE.pattern


def _mojibake_hint(*, re2: bool = False) -> str:
    return _char_class(_MOJIBAKE_ALONE, re2=re2) + "|" + _char_class(_MOJIBAKE, re2=re2) * 2


_TRIGGERS_RE2 = "|".join(
    [_ENTITY, _char_class(_FIXED_CHARACTERS - _SURROGATES, re2=True), _mojibake_hint(re2=True)]
)
_TRIGGERS = re.compile("|".join([_ENTITY, _char_class(_FIXED_CHARACTERS), _mojibake_hint()]))
_MOJIBAKE_HINT = re.compile(_mojibake_hint())
_FIXED = re.compile(_char_class(_FIXED_CHARACTERS))
_FIXES_WITH_GUARDS = [(fix, re.compile(_char_class(codes))) for fix, codes in _CHARACTER_FIXES]
_ENTITY_OR_A_HAT = re.compile(f"{_ENTITY}|[ÃÂ]")
_BADNESS_WIDTH = 7  # the longest match of `BADNESS_RE` (checked by the tests)


def _may_change(text: str) -> bool:
    """False when `ftfy.fix_text(text)` is certain to return `text` unchanged."""
    return bool(_TRIGGERS.search(text)) or not unicodedata.is_normalized("NFC", text)


def _is_bad(text: str) -> bool:
    """`ftfy.badness.is_bad(text)`, searching only the windows around `_MOJIBAKE_HINT`
    matches, since every match of `BADNESS_RE` holds one. (`BADNESS_RE` has no lookaround
    and no anchor but `^`, which a search from a later position leaves at the start of the
    text, so a window sees what the whole text does.)"""
    windows: list[list[int]] = []
    for hint in _MOJIBAKE_HINT.finditer(text):
        start, end = max(hint.start() - _BADNESS_WIDTH, 0), hint.end() + _BADNESS_WIDTH
        if windows and start <= windows[-1][1]:
            windows[-1][1] = end
        else:
            windows.append([start, end])
    return any(ftfy.badness.BADNESS_RE.search(text, start, end) for start, end in windows)


def _settled(text: str) -> bool:
    """True when a round of `fix_and_explain` would leave `text` (or any of its lines) as
    it is: no entity, no `Ã`/`Â` (a line starting with one may be bad on its own), not bad,
    nothing for the character fixes, NFC."""
    return (
        not _ENTITY_OR_A_HAT.search(text)
        and not _is_bad(text)
        and not _FIXED.search(text)
        and unicodedata.is_normalized("NFC", text)
    )


def _character_fixes(text: str) -> str | None:
    """`ftfy.fix_text(text)` when text has no entity and no mojibake, else None.

    On such text a round of `fix_and_explain` is its character fixes and NFC alone; the
    result is final when it is the text itself or when it is `_settled`. The fixes and NFC
    act within lines, so one call covers any number of whole segments."""
    if _ENTITY_OR_A_HAT.search(text) or _is_bad(text):
        return None
    fixed = text
    for fix, acts_on in _FIXES_WITH_GUARDS:
        if acts_on.search(fixed):  # a fix is a no-op without them, and slower to say so
            fixed = fix(fixed)
    fixed = unicodedata.normalize("NFC", fixed)
    return fixed if fixed == text or _settled(fixed) else None


def _segments(text: str) -> list[str]:
    """`text` cut after each newline, as `ftfy.fix_text` cuts it."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _runs_to_fix(text: str) -> Iterator[tuple[int, int]]:
    """`(start, end)` of each run of consecutive lines that hold a `_TRIGGERS` match."""
    run_start = run_end = -1
    while (match := _TRIGGERS.search(text, max(run_end, 0))) is not None:
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", match.start()) + 1 or len(text)
        if start != run_end:
            if run_end >= 0:
                yield run_start, run_end
            run_start = start
        run_end = end
    if run_end >= 0:
        yield run_start, run_end


def _repair(text: str) -> str:
    """`ftfy.fix_text(text)`, running ftfy itself only on the segments that need it."""
    if len(text) > _FTFY_CONFIG.max_decode_length:  # ftfy then also cuts within lines
        return ftfy.fix_text(text, _FTFY_CONFIG)
    if not unicodedata.is_normalized("NFC", text):
        fixed = _character_fixes(text)
        return ftfy.fix_text(text, _FTFY_CONFIG) if fixed is None else fixed
    # As in `fix_text`: from the segment holding the first "<" on, entities stay (HTML).
    first_lt = text.find("<")
    pieces: list[str] = []
    done = 0
    for start, end in _runs_to_fix(text):
        pieces.append(text[done:start])
        run = text[start:end]
        fixed = _character_fixes(run)
        if fixed is not None:
            pieces.append(fixed)
        else:
            segments = _segments(run)
            for segment in segments:
                start += len(segment)
                if len(segments) == 1 or (fixed := _character_fixes(segment)) is None:
                    config = _FTFY_CONFIG_NO_HTML if 0 <= first_lt < start else _FTFY_CONFIG
                    fixed = ftfy.fix_text_segment(segment, config)
                pieces.append(fixed)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _remove_matches(series: pl.Series, pattern: str, hint: str) -> pl.Series:
    """`series` with every match of `pattern` deleted, running it only on the rows that
    hold a match of `hint`, a cheaper regex found inside every match of `pattern`."""
    rows = np.flatnonzero(series.str.contains(hint).fill_null(False).to_numpy())
    if rows.size == 0:
        return series
    if rows.size == len(series):
        return series.str.replace_all(pattern, "")
    return series.scatter(rows, series.gather(rows).str.replace_all(pattern, ""))


class TextCleaner(Stage):
    """Repair and tidy the text column; every rule is optional and on by default.

    Rules, in the order they run:

    - `fix_unicode`: `ftfy.fix_text` (mojibake, HTML entities, control characters, curly
      quotes, NFC), as NeMo Curator's `UnicodeReformatter`. The output equals
      `ftfy.fix_text` on every row, but only the lines that ftfy could change are worked
      on (a vectorised check finds the rows), and ftfy itself runs only on those with an
      HTML entity or mojibake; the others get its character fixes directly.
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
        needs = pc.fill_null(pc.match_substring_regex(column, _TRIGGERS_RE2), False)
        needs = needs.to_numpy(zero_copy_only=False).copy()
        non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(column), True))
        # Only non-ASCII rows can fail NFC; checked with the unicodedata that ftfy uses.
        unsure = np.flatnonzero(non_ascii.to_numpy(zero_copy_only=False) & ~needs)
        if unsure.size:
            texts = column.take(pa.array(unsure)).to_pylist()
            needs[unsure] = [not unicodedata.is_normalized("NFC", t) for t in texts]
        rows = np.flatnonzero(needs)
        if rows.size == 0:  # the common case for a batch of plain ASCII
            return column
        fixed = [_repair(t) for t in column.take(pa.array(rows)).to_pylist()]
        return pc.replace_with_mask(column, pa.array(needs), pa.array(fixed, type=column.type))

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        original_type = column.type
        if batch.num_rows == 0:
            return batch
        column = column.combine_chunks()
        if self.fix_unicode:
            column = self._fix_unicode(column)
        series = pl.from_arrow(column)
        if self.remove_url_lines:
            series = _remove_matches(series, _URL_LINE, _URL_HINT)
        if self.remove_boilerplate_lines and self.boilerplate_phrases:
            pattern = _boilerplate_pattern(self.boilerplate_phrases, BOILERPLATE_MARGIN)
            series = _remove_matches(series, pattern, _boilerplate_hint(self.boilerplate_phrases))
        if self.normalize_whitespace:
            series = (
                series.str.replace_all(r"\r\n?", "\n")
                .str.replace_all(r"[ \t]{2,}|\t", " ")  # a lone space is left as it is
                .str.replace_all(r"(?m)^ | $", "")
                .str.replace_all(r"\n{3,}", "\n\n")
                .str.strip_chars()
            )
        cleaned = series.to_arrow().cast(original_type)
        index = batch.column_names.index(self.text_field)
        return batch.set_column(index, self.text_field, cleaned)

    def _process_reference(self, batch: pa.Table) -> pa.Table:
        """The first implementation of `process`, kept as the specification that `process`
        is tested and benchmarked against: ftfy on every row that is not plain ASCII, every
        regex over every row."""
        column = text_column(batch, self.text_field, self.stage_name)
        original_type = column.type
        if batch.num_rows == 0:
            return batch
        column = column.combine_chunks()
        if self.fix_unicode:
            needs = pc.or_(
                pc.invert(pc.string_is_ascii(column)),
                pc.match_substring_regex(column, _FTFY_ASCII_TRIGGERS),
            )
            needs = pc.fill_null(needs, False)
            indices = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
            if indices.size:
                texts = column.take(pa.array(indices)).to_pylist()
                fixed = pa.array([ftfy.fix_text(t) for t in texts], type=column.type)
                column = pc.replace_with_mask(column, needs, fixed)

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
