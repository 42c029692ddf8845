"""English word splitting shared by the text filters, vectorised over a batch.

A *word* is what Python's `str.split()` returns with no argument: a maximal run of
characters that are not whitespace, where whitespace is exactly the set `str.isspace()`
accepts (ASCII `\\t\\n\\v\\f\\r`, the separators `\\x1c`-`\\x1f`, space, NEL, NBSP and the
Unicode space separators). That is NeMo Curator's English word splitter, so counts built
on these words match its filters.

Two entry points:

- `split_words(texts)`: the words of each text as a Polars `list[str]` Series (for
  filters that need the word strings themselves, e.g. n-grams).
- `TextBytes.from_column(texts)`: the whole batch as one UTF-8 byte buffer with row
  boundaries, plus lazily computed NumPy arrays: `is_space` (per byte), `word_starts` /
  `word_ends` / `word_counts` / `words` (word spans), `word_char_lengths`, `line_firsts` /
  `line_ends` / `line_counts` (non-blank lines of `text.split("\\n")`), `char_counts`.
  Counting filters use it: no per-document Python and no word strings.

Null texts are treated as empty texts everywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# `str.isspace()` characters, as a regex character-class body (Python 3.11, Unicode 14).
WHITESPACE_CLASS = (
    "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_NON_ASCII_WHITESPACE = np.array(
    [0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000],
    dtype=np.int64,
)
WORD_PATTERN = f"[^{WHITESPACE_CLASS}]+"


def _as_string_array(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous string array with nulls replaced by empty strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if pa.types.is_null(texts.type):
        texts = texts.cast(pa.string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    return texts


def split_words(texts: pa.ChunkedArray | pa.Array) -> pl.Series:
    """The words of each text, as `text.strip().split()` gives them, in a `list[str]` Series.

    One entry per input row; a null or whitespace-only text gives an empty list.
    """
    series = pl.Series("words", _as_string_array(texts))
    return series.str.extract_all(WORD_PATTERN).fill_null([])


def _ranks(length: np.ndarray) -> np.ndarray:
    """0, 1, ..., length[i] - 1 for each i, concatenated."""
    total = int(length.sum())
    first = np.cumsum(length) - length
    return np.arange(total) - np.repeat(first, length)


def check_language(lang: str, filter_name: str) -> None:
    """Word splitting here is by whitespace; Chinese and Japanese need a segmenter."""
    if lang.lower() in ("zh", "ja"):
        raise NotImplementedError(
            f"{filter_name}: lang={lang!r} needs a word segmenter; only whitespace-separated "
            "languages are supported"
        )


def _segment_counts(sorted_positions: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """How many of `sorted_positions` fall in each half-open range [starts, ends)."""
    return np.searchsorted(sorted_positions, ends) - np.searchsorted(sorted_positions, starts)


def _segment_sums(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sum of `mask` (one 0/1 entry per byte) over each span [starts, ends).

    The spans must be sorted and must not overlap (rows, words).
    """
    out = np.zeros(len(starts), dtype=np.int64)
    dtype = np.int32 if mask.size < 2**31 - 1 else np.int64
    if len(starts) * 64 > mask.size:
        # Many short spans (words): a running total is cheaper than a reduction per span.
        total = np.zeros(mask.size + 1, dtype=dtype)
        np.cumsum(mask, dtype=dtype, out=total[1:])
        return (total[ends] - total[starts]).astype(np.int64)
    nonempty = ends > starts
    if not nonempty.any():
        return out
    s, e = starts[nonempty], ends[nonempty]
    bounds = np.empty(2 * s.size, dtype=np.int64)
    bounds[0::2] = s
    bounds[1::2] = e
    if e[-1] >= mask.size:
        bounds = bounds[:-1]  # the last span runs to the end of the buffer
    out[nonempty] = np.add.reduceat(mask, bounds, dtype=dtype)[0::2]
    return out


# Code points beyond the regex engine's Unicode tables that NeMo Curator's `[[:alpha:]]`
# (the `regex` package, a newer Unicode version) treats as alphabetic.
_EXTRA_ALPHA_RANGES = (
    "558 58B-58C 5C8-5C9 88F C5C CDC 208F 209D-209F A7CE-A7CF A7D2 A7D4 A7DD A7E2 A7F1 "
    "AB6C-AB6D 107BB-107BF 10940-10959 10EC5-10EC7 10ECB-10ECD 10ED9-10EEE 10EF3 10EF5 "
    "10EF7-10EF8 10EFA-10EFB 11B0A 11B60-11B67 11DB0-11DDB 11DF0-11DF1 1246F 12475-1247F "
    "12550-12686 16EA0-16EB8 16EBB-16ED3 16FF2-16FF6 187F8-187FF 18CD6-18CDA 18D09-18D20 "
    "18D80-18DF2 18E00-19191 191A0-191D2 1B123-1B128 1B168 1D6A6 1DF1F-1DF24 1DF2B-1DF81 "
    "1DF90-1DF96 1DFCD-1DFFF 1E6C0-1E6DE 1E6E0-1E6F5 1E6FE-1E6FF 2B73A-2B73F 2B81E "
    "2CEA2-2CEAD 323B0-33479 3D000-3FC3F"
)
ALPHA_CLASS = r"\p{Alphabetic}" + "".join(
    "-".join(f"\\x{{{bound}}}" for bound in part.split("-")) for part in _EXTRA_ALPHA_RANGES.split()
)
_alpha_cache: dict[int, bool] = {}


def is_alphabetic(codepoints: np.ndarray) -> np.ndarray:
    """Whether each code point is alphabetic as the `[[:alpha:]]` POSIX class has it.

    Classifies the distinct code points once with the regex engine and remembers them.
    """
    unique, inverse = np.unique(codepoints, return_inverse=True)
    unknown = [int(cp) for cp in unique if int(cp) not in _alpha_cache]
    if unknown:
        chars = pl.Series([chr(cp) for cp in unknown])
        flags = chars.str.contains(f"^[{ALPHA_CLASS}]$").to_list()
        _alpha_cache.update(zip(unknown, flags, strict=True))
    table = np.array([_alpha_cache[int(cp)] for cp in unique], dtype=bool)
    return table[inverse].reshape(codepoints.shape)


@dataclass
class Words:
    """Word spans of a batch: byte `start`/`end` (exclusive) into `TextBytes.buf`, in row
    order, `row` (row index of each word) and `count` (words per row)."""

    start: np.ndarray
    end: np.ndarray
    row: np.ndarray
    count: np.ndarray


_last_batch = threading.local()


def _column_key(texts: pa.ChunkedArray | pa.Array) -> tuple:
    """Identity of a column's contents: its type, and each chunk's buffers and slice."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    return (str(texts.type),) + tuple(
        (
            chunk.offset,
            len(chunk),
            tuple(b.address if b is not None else 0 for b in chunk.buffers()),
        )
        for chunk in chunks
    )


class TextBytes:
    """A batch of texts as one UTF-8 byte buffer `buf` with rows at `[starts, ends)`."""

    def __init__(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, array: pa.Array):
        self.buf = buf
        self.starts = starts
        self.ends = ends
        self.array = array

    @classmethod
    def from_column(cls, texts: pa.ChunkedArray | pa.Array) -> TextBytes:
        """The batch `texts` as a `TextBytes`.

        The last batch seen by this thread is remembered: the filters of a `FilterChain`
        score the same column one after the other, so the byte buffer and everything
        derived from it lazily (word and line spans, n-grams) are computed once per batch.
        """
        key = _column_key(texts)
        cached = getattr(_last_batch, "value", None)
        if cached is not None and cached[0] == key:
            return cached[2]
        text = cls._build(texts)
        # Holding `texts` keeps its buffers alive, so their addresses in `key` stay unique.
        _last_batch.value = (key, texts, text)
        return text

    @classmethod
    def _build(cls, texts: pa.ChunkedArray | pa.Array) -> TextBytes:
        array = _as_string_array(texts)
        width = np.int64 if pa.types.is_large_string(array.type) else np.int32
        if pa.types.is_string_view(array.type):
            array = array.cast(pa.large_string())
            width = np.int64
        offsets = np.frombuffer(array.buffers()[1], dtype=width)
        offsets = offsets[array.offset : array.offset + len(array) + 1].astype(np.int64)
        data = array.buffers()[2]
        buf = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        first, last = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        buf = buf[first:last]
        offsets = offsets - first
        return cls(buf, offsets[:-1], offsets[1:], array)

    @property
    def num_rows(self) -> int:
        return len(self.starts)

    def segment_sums(self, mask: np.ndarray) -> np.ndarray:
        """Per row, the number of bytes set in `mask` (one entry per byte of `buf`)."""
        return _segment_sums(mask, self.starts, self.ends)

    def segment_sums_at(self, mask: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """The number of bytes set in `mask` within each span [starts, ends) of `buf`."""
        return _segment_sums(mask, starts, ends)

    @cached_property
    def series(self) -> pl.Series:
        """The texts as a Polars Series (nulls already empty strings)."""
        return pl.Series("text", self.array)

    @cached_property
    def _padded(self) -> np.ndarray:
        """`buf` with 16 zero bytes on each side, so fixed-width loads never run off it."""
        return np.concatenate([np.zeros(16, np.uint8), self.buf, np.zeros(16, np.uint8)])

    def load(self, pos: np.ndarray, width: int = 8) -> np.ndarray:
        """The `width` (4 or 8) bytes at each position of `pos` (-16 < pos), read as one
        little-endian integer; bytes outside the buffer read as zero."""
        padded = self._padded
        view = np.ndarray(
            shape=(padded.size - width + 1,),
            dtype=f"<u{width}",
            buffer=padded,
            strides=(1,),
        )
        return view[pos + 16]

    @cached_property
    def has_non_ascii(self) -> bool:
        return bool(self.buf.size) and bool(self.buf.max() >= 0x80)

    @cached_property
    def char_counts(self) -> np.ndarray:
        """Characters (code points) per row, as `len(text)` counts them."""
        return pc.utf8_length(self.array).to_numpy(zero_copy_only=False).astype(np.int64)

    @cached_property
    def non_ascii_chars(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(byte position, code point, byte length) of every non-ASCII character."""
        if not self.has_non_ascii:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        pos = np.flatnonzero(self.buf >= 0xC0)
        v = self.load(pos, 4).astype(np.int64)
        b0 = v & 0xFF
        b1 = (v >> 8) & 0x3F
        b2 = (v >> 16) & 0x3F
        b3 = (v >> 24) & 0x3F
        length = np.where(b0 < 0xE0, 2, np.where(b0 < 0xF0, 3, 4))
        cp = np.where(
            length == 2,
            ((b0 & 0x1F) << 6) | b1,
            np.where(
                length == 3,
                ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3,
            ),
        )
        return pos, cp, length

    @cached_property
    def _wide_spaces(self) -> tuple[np.ndarray, np.ndarray]:
        """(first byte position, byte length) of every non-ASCII whitespace character."""
        pos, cp, length = self.non_ascii_chars
        if pos.size == 0:
            return pos, length
        hit = np.isin(cp, _NON_ASCII_WHITESPACE)
        return pos[hit], length[hit]

    @cached_property
    def is_space(self) -> np.ndarray:
        """Per byte: part of a whitespace character (`str.isspace()`)."""
        b = self.buf
        space = np.subtract(b, 9, dtype=np.uint8) < 5
        space |= np.subtract(b, 28, dtype=np.uint8) < 5
        pos, length = self._wide_spaces
        if pos.size:
            space[np.repeat(pos, length) + _ranks(length)] = True
        return space

    @cached_property
    def space_char_counts(self) -> np.ndarray:
        """Whitespace characters per row."""
        counts = _segment_sums(self.is_space, self.starts, self.ends)
        pos, length = self._wide_spaces
        if pos.size:
            row = np.searchsorted(self.starts, pos, side="right") - 1
            counts -= np.bincount(row, weights=length - 1, minlength=self.num_rows).astype(np.int64)
        return counts

    @cached_property
    def _word_opens(self) -> np.ndarray:
        """Per byte: the first byte of a word (a non-space byte after a space byte or at the
        start of a row)."""
        space = self.is_space
        opens = np.empty(space.size, dtype=bool)
        if space.size:
            opens[0] = not space[0]
            np.greater(space[:-1], space[1:], out=opens[1:])
            first = self.starts[self.ends > self.starts]
            opens[first] = ~space[first]
        return opens

    @cached_property
    def word_counts(self) -> np.ndarray:
        """Words per row, without listing them."""
        return _segment_sums(self._word_opens, self.starts, self.ends)

    @cached_property
    def word_starts(self) -> np.ndarray:
        """Byte position of the first byte of every word, in order."""
        return np.flatnonzero(self._word_opens)

    @cached_property
    def word_ends(self) -> np.ndarray:
        """Byte position just past the last byte of every word, in order."""
        space = self.is_space
        n = space.size
        closes = np.empty(n, dtype=bool)
        if n:
            # A word ends at a non-space byte before a space byte or at the end of a row.
            closes[-1] = not space[-1]
            np.less(space[:-1], space[1:], out=closes[:-1])
            last = self.ends[self.ends > self.starts] - 1
            closes[last] = ~space[last]
        return np.flatnonzero(closes) + 1

    @cached_property
    def words(self) -> Words:
        """The spans of the words of every row (see the module docstring)."""
        count = self.word_counts
        row = np.repeat(np.arange(self.num_rows), count)
        return Words(start=self.word_starts, end=self.word_ends, row=row, count=count)

    @cached_property
    def word_char_lengths(self) -> np.ndarray:
        """Length in characters of every word of `words`."""
        w = self.words
        lengths = w.end - w.start
        pos, _, nbytes = self.non_ascii_chars
        if pos.size and lengths.size:
            # Each multi-byte character makes its word (nbytes - 1) characters shorter.
            word = np.searchsorted(w.start, pos, side="right") - 1
            inside = (word >= 0) & (pos < w.end[np.maximum(word, 0)])
            extra = np.bincount(word[inside], weights=nbytes[inside] - 1, minlength=lengths.size)
            lengths = lengths - extra.astype(np.int64)
        return lengths

    @cached_property
    def word_bounds(self) -> np.ndarray:
        """Row `r` holds the words `word_bounds[r]` to `word_bounds[r + 1]` (exclusive)."""
        bounds = np.zeros(self.num_rows + 1, dtype=np.int64)
        np.cumsum(self.words.count, out=bounds[1:])
        return bounds

    @cached_property
    def first_word_of_row(self) -> np.ndarray:
        """Index of the first word of each row (meaningful where the row has words)."""
        return self.word_bounds[:-1]

    def row_of_words(self, word_index: np.ndarray) -> np.ndarray:
        """The row of each word in `word_index`."""
        return np.searchsorted(self.word_bounds, word_index, side="right") - 1

    def rows_of_words(self, word_index: np.ndarray) -> np.ndarray:
        """Per row, how many of the words `word_index` (sorted, distinct) it holds."""
        return _segment_counts(word_index, self.word_bounds[:-1], self.word_bounds[1:])

    @cached_property
    def _line_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Byte spans [start, end) of the non-empty lines (`text.split("\\n")`)."""
        newlines = np.flatnonzero(self.buf == 10)
        # Both inputs are sorted runs, so a stable sort is a merge.
        starts = np.sort(np.concatenate([self.starts, newlines + 1]), kind="stable")
        ends = np.sort(np.concatenate([newlines, self.ends]), kind="stable")
        nonempty = ends > starts
        return starts[nonempty], ends[nonempty]

    @cached_property
    def line_firsts(self) -> np.ndarray:
        """Position of the first non-whitespace byte of every non-blank line, in order."""
        line_start, line_end = self._line_spans
        starts = np.append(self.word_starts, self.buf.size)
        first = starts[np.searchsorted(starts[:-1], line_start)]
        return first[first < line_end]

    @cached_property
    def line_ends(self) -> np.ndarray:
        """Position just past the last non-whitespace byte of every non-blank line."""
        line_start, line_end = self._line_spans
        ends = np.concatenate([[-1], self.word_ends])
        last = ends[np.searchsorted(ends[1:], line_end, side="right")]
        return last[last > line_start]

    @cached_property
    def line_counts(self) -> np.ndarray:
        """Non-blank lines per row."""
        if "line_firsts" in self.__dict__:  # whichever side of the lines is already known
            return self.rows_of_positions(self.line_firsts)
        return self.rows_of_positions(self.line_ends - 1)

    def rows_of_positions(self, positions: np.ndarray) -> np.ndarray:
        """Per row, how many of the byte `positions` (sorted) fall inside it."""
        return _segment_counts(positions, self.starts, self.ends)

    def row_starts_of(self, positions: np.ndarray) -> np.ndarray:
        """The first byte position of the row holding each of `positions`."""
        return self.starts[np.searchsorted(self.starts, positions, side="right") - 1]

    def word_keys(self, index: np.ndarray, width: int = 8) -> np.ndarray:
        """The first `width` (4 or 8) bytes of each word in `index`, zero-padded past the
        word's end, packed little-endian into one integer per word (see `pack`)."""
        start = self.word_starts[index]
        nbytes = np.minimum(self.word_ends[index] - start, width).astype(np.uint64)
        keys = self.load(start, width).astype(np.uint64)
        full = np.uint64(2**64 - 1)
        keep = np.where(nbytes >= 8, full, (np.uint64(1) << (nbytes * np.uint64(8))) - np.uint64(1))
        return (keys & keep).astype(f"<u{width}")

    def word_text(self, index: int) -> str:
        """The text of word `index` (for rare cases checked one by one)."""
        return self.buf[self.word_starts[index] : self.word_ends[index]].tobytes().decode("utf-8")


def pack(word: str, width: int = 8) -> int:
    """`word` packed the way `TextBytes.word_keys` packs words (its UTF-8 bytes, zero-padded)."""
    data = word.encode("utf-8")
    if len(data) > width:
        raise ValueError(f"{word!r} is longer than {width} bytes")
    return int.from_bytes(data.ljust(width, b"\0"), "little")


def ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    """`numerator / denominator` as float64, with `empty` where the denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(num.shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out
