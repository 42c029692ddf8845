"""`TaskDecontamination`: documents sharing word n-grams with test sets, dropped or cut.

Semantics from NeMo Curator's `TaskDecontamination` and `DownstreamTask` (the cut mode,
`max_ngram_size`, `max_matches`, `min_document_length`, `remove_char_each_side`,
`max_splits`, short test texts as one n-gram) and datatrove's `NGramsDecontFilter` (the
remove mode, hashed n-grams, the matched n-gram and test set reported for a removed row).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from stages.base import Splitter, text_column

# Whitespace between words, the same in every process: the ASCII controls Python's
# `str.split()` breaks on and every Unicode separator (no-break and ideographic spaces too).
WHITESPACE = r"[\t\n\x0b\f\r \x1c-\x1f\x85\p{Z}]+"
# Removed from words before hashing: NeMo's `string.punctuation` (ASCII punctuation and the
# ASCII symbols in it) and all Unicode punctuation, so curly quotes and dashes do not count.
PUNCTUATION = r"[\p{P}$+<=>^`|~]"
SENTENCE_ENDS = ".!?"
MAX_PIECES = 255  # a cut document's pieces are numbered in 8 bits of `_order`
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it loses no bits
_PIECE = 1 << 62  # `_order` bit of the pieces after the first of a cut document
_FORMATS = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")


class TaskDecontamination(Splitter):
    """Documents that share word n-grams with test sets, removed or cut.

    `tasks` names the test sets: a dict name -> local JSONL (`.jsonl`, `.json`, either
    gzipped) or Parquet file, or a list of such files named by their stem
    (`mmlu.jsonl` -> `mmlu`). Each row gives the texts of its `fields` (a string or a list
    of strings; null or absent values are skipped).

    Words: the text split on whitespace, lower-cased, punctuation deleted (NeMo's
    normalisation: "state-of-the-art" is one word, a word of punctuation only is none).
    A test text of at least `max_ngram_size` words gives its `max_ngram_size`-word
    n-grams; one of `min_ngram_size` to `max_ngram_size - 1` words gives its whole word
    sequence as one n-gram, matched wherever those words occur in a row; shorter ones give
    nothing (NeMo's `DownstreamTask`; `min_ngram_size` defaults to 8, or to
    `max_ngram_size` when that is smaller). `setup()` reads the test sets and keeps their
    n-grams as sorted 64-bit hashes (xxh3 of each word, combined polynomially).

    `mode="remove"` (datatrove's `NGramsDecontFilter`): a document holding any test n-gram
    is dropped; `max_matches` plays no part.

    `mode="cut"` (NeMo's `TaskDecontamination`): at each match the text is cut from the
    last sentence end (`.`, `!`, `?`) at or before `remove_char_each_side` characters
    ahead of the n-gram to the first one at or after `remove_char_each_side` characters
    past it. The text before a cut is kept as a piece when it has at least
    `min_document_length` characters; the text after it is searched on when it has that
    many, else dropped. A document cut into more than `max_splits` pieces, or into none,
    is dropped; the others become one row per piece, with ids `<id>-<k>` (k from 0). The
    first piece keeps the row's `_order`; a later one gets bit 62 set over the row's file
    number, line and k. A document without a match is kept whole whatever its length.

    Differences from NeMo in cut mode: NeMo ignores an n-gram found more than
    `max_matches` times in the whole dataset; here an n-gram held by more than
    `max_matches` documents of one `process` call (a shard, unless `batch_size` is set) is
    ignored (None: never), so the same row can be cut in one shard and kept in another.
    NeMo keeps a piece longer than `min_document_length`; here one of exactly that length
    too. Matches are found once in the whole document, not again in each remaining piece,
    and cuts are placed on the document's own characters.

    `take_counts()`: per test set, `removed:<name>` (documents dropped) and `cut:<name>`
    (documents cut and kept), each document counted once, for the test set of its first
    match (an n-gram in several test sets belongs to the first named). `describe_removed`
    adds `test_set`, `ngram` (its normalised words) and, in cut mode, `reason`.
    """

    def __init__(
        self,
        tasks: Mapping[str, str | Path] | Sequence[str | Path],
        text_field: str = "text",
        max_ngram_size: int = 13,
        mode: Literal["remove", "cut"] = "remove",
        max_matches: int | None = 10,
        min_document_length: int = 200,
        remove_char_each_side: int = 200,
        max_splits: int = 10,
        fields: Sequence[str] = ("text",),
        min_ngram_size: int | None = None,
    ):
        if min_ngram_size is None:
            min_ngram_size = min(8, max_ngram_size)
        if mode not in ("remove", "cut"):
            raise ValueError(f"TaskDecontamination: mode must be 'remove' or 'cut', got {mode!r}")
        if not 1 <= min_ngram_size <= max_ngram_size:
            raise ValueError(
                "TaskDecontamination: need 1 <= min_ngram_size <= max_ngram_size, got "
                f"{min_ngram_size} and {max_ngram_size}"
            )
        if not 1 <= max_splits <= MAX_PIECES:
            raise ValueError(f"TaskDecontamination: max_splits must be 1 to 255, got {max_splits}")
        if max_matches is not None and max_matches < 1:
            raise ValueError(f"TaskDecontamination: max_matches must be >= 1, got {max_matches}")
        if min_document_length < 0 or remove_char_each_side < 0:
            raise ValueError(
                "TaskDecontamination: min_document_length and remove_char_each_side must be >= 0"
            )
        if isinstance(fields, str) or not fields:
            raise ValueError(f"TaskDecontamination: fields must be a list of names, got {fields!r}")
        self.tasks = _task_paths(tasks)
        self.text_field = text_field
        self.max_ngram_size = max_ngram_size
        self.min_ngram_size = min_ngram_size
        self.mode = mode
        self.max_matches = max_matches
        self.min_document_length = min_document_length
        self.remove_char_each_side = remove_char_each_side
        self.max_splits = max_splits
        self.fields = list(fields)
        self._index: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._counts: dict[str, int] = {}

    # ------------------------------------------------------------------ test sets

    def setup(self) -> None:
        """Reads every test set and keeps its n-gram hashes, per length, sorted."""
        if self._index is not None:
            return
        found: dict[int, list[tuple[np.ndarray, int]]] = {}
        for number, (name, path) in enumerate(self.tasks.items()):
            texts = read_test_set(path, self.fields)
            if not texts:
                raise ValueError(
                    f"test set {name!r} ({path}): no row has text in fields {self.fields}"
                )
            words = _Words(pa.array(texts, pa.large_string()))
            kept = 0
            for length, hashes in self._test_ngrams(words):
                if not hashes.size:
                    continue
                found.setdefault(length, []).append((hashes, number))
                kept += hashes.size
            if not kept:
                raise ValueError(
                    f"test set {name!r} ({path}): none of its {len(texts)} texts has "
                    f"{self.min_ngram_size} words or more, so it gives no n-gram"
                )
        index = {}
        for length, parts in found.items():
            keys = np.concatenate([h for h, _ in parts])
            owner = np.concatenate([np.full(h.size, n, np.int32) for h, n in parts])
            order = np.lexsort((owner, keys))  # an n-gram in several sets: the first named
            keys, owner = keys[order], owner[order]
            first = np.ones(keys.size, dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            index[length] = (keys[first], owner[first])
        self._index = index

    def _test_ngrams(self, words: _Words) -> Iterator[tuple[int, np.ndarray]]:
        n = self.max_ngram_size
        for length, hashes in _windows(words.hashes, n):
            if length == n:
                yield n, hashes[np.flatnonzero(words.room[: hashes.size] >= n)]
            elif length >= self.min_ngram_size:
                whole = words.starts[words.counts == length]
                yield length, hashes[whole]

    # ------------------------------------------------------------------ matching

    def _matches(self, words: _Words) -> _Matches:
        """Every test n-gram of `words`, by document, then start, the longest first."""
        assert self._index is not None
        parts = []
        for length, hashes in _windows(words.hashes, max(self._index)):
            if length not in self._index:
                continue
            keys, owner = self._index[length]
            at = np.flatnonzero(words.room[: hashes.size] >= length)
            values = hashes[at]
            slot = np.minimum(np.searchsorted(keys, values), keys.size - 1)
            hit = keys[slot] == values
            at, slot = at[hit], slot[hit]
            parts.append((at, np.full(at.size, length, np.int64), owner[slot], values[hit]))
        if not parts:
            return _Matches.empty()
        start, length, task, key = (np.concatenate(p) for p in zip(*parts, strict=True))
        doc = words.doc_of[start] if start.size else start
        order = np.lexsort((-length, start, doc))
        return _Matches(doc[order], start[order], length[order], task[order], key[order])

    def _common(self, matches: _Matches) -> np.ndarray:
        """Which matches are of an n-gram that more than `max_matches` documents hold."""
        if self.max_matches is None or matches.doc.size == 0:
            return np.zeros(matches.doc.size, dtype=bool)
        ngram = matches.key + matches.length.astype(np.uint64) * _MULTIPLIER
        order = np.lexsort((matches.doc, ngram))
        ngram, doc = ngram[order], matches.doc[order]
        new_ngram = np.ones(ngram.size, dtype=bool)
        new_ngram[1:] = ngram[1:] != ngram[:-1]
        new_doc = new_ngram.copy()
        new_doc[1:] |= doc[1:] != doc[:-1]
        group = np.cumsum(new_ngram) - 1
        documents = np.bincount(group, weights=new_doc)
        common = np.empty(ngram.size, dtype=bool)
        common[order] = documents[group] > self.max_matches
        return common

    # ------------------------------------------------------------------ the stage

    def split(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        self.setup()
        column = text_column(batch, self.text_field, self.stage_name)
        words = _Words(_one_array(column))
        matches = self._matches(words)
        names = list(self.tasks)
        if self.mode == "remove":
            docs, tasks = matches.first_per_doc()
            for task in tasks.tolist():
                self._count("removed", names[task])
            keep = np.ones(batch.num_rows, dtype=bool)
            keep[docs] = False
            return batch.filter(pa.array(keep)), keep.astype(np.int64)
        matches = matches.select(~self._common(matches))
        counts = np.ones(batch.num_rows, dtype=np.int64)
        pieces: dict[int, list[str]] = {}
        docs, tasks = matches.first_per_doc()
        for doc, task in zip(docs.tolist(), tasks.tolist(), strict=True):
            cut = self._cut_row(column[doc].as_py(), words, doc, matches.of_doc(doc))
            counts[doc] = len(cut) if len(cut) <= self.max_splits else 0
            self._count("cut" if counts[doc] else "removed", names[task])
            if counts[doc]:
                pieces[doc] = cut
        return self._pieces(batch, column, counts, pieces), counts

    def _cut_row(self, text: str, words: _Words, doc: int, matches: _Matches) -> list[str]:
        """NeMo's cut of `text`, the row `doc` of `words`, at each of its `matches`: what is
        left of it (see the class docstring)."""
        spans = words.spans(doc, text)
        starts = matches.start - words.starts[doc]
        pieces: list[str] = []
        begin, side = 0, self.remove_char_each_side
        shortest = max(self.min_document_length, 1)
        for start, length in zip(starts.tolist(), matches.length.tolist(), strict=True):
            first, end = int(spans[start, 0]), int(spans[start + length - 1, 1])
            if first < begin:
                continue  # inside what an earlier cut removed
            stop = first - side + 1
            before = max(text.rfind(c, begin, stop) for c in SENTENCE_ENDS) if stop > begin else -1
            if before > begin and before + 1 - begin >= shortest:
                pieces.append(text[begin : before + 1])
            after = [i for i in (text.find(c, end + side) for c in SENTENCE_ENDS) if i >= 0]
            begin = min(after) + 1 if after else len(text)
            if len(text) - begin < shortest:
                return pieces
        pieces.append(text[begin:])
        return pieces

    def _pieces(
        self, batch: pa.Table, column: pa.ChunkedArray, counts: np.ndarray, pieces: dict
    ) -> pa.Table:
        """`batch` with each cut row replaced by its pieces (see the class docstring)."""
        if not pieces:
            return batch.filter(pa.array(counts > 0))
        parents = np.repeat(np.arange(batch.num_rows), counts)
        number = np.arange(parents.size) - np.repeat(np.cumsum(counts) - counts, counts)
        cut = np.zeros(batch.num_rows, dtype=bool)
        cut[list(pieces)] = True
        cut = cut[parents]
        flat = [p for doc in sorted(pieces) for p in pieces[doc]]
        source = parents.copy()
        source[cut] = batch.num_rows + np.arange(len(flat))
        texts = pa.chunked_array([*column.chunks, pa.array(flat, column.type)], column.type)
        out = batch.take(pa.array(parents, pa.int64()))
        out = _replace(out, self.text_field, texts.take(pa.array(source, pa.int64())))
        if "id" in out.column_names:
            ids = pc.cast(out.column("id"), pa.string())
            numbers = pc.cast(pa.array(number), pa.string())
            suffixed = pc.binary_join_element_wise(ids, numbers, "-")
            out = _replace(out, "id", pc.if_else(pa.array(cut), suffixed, ids))
        if "_order" in out.column_names:
            order = out.column("_order").to_numpy(zero_copy_only=False).astype(np.int64)
            later = cut & (number > 0)
            if later.any():
                file, line = order[later] >> 32, order[later] & 0xFFFFFFFF
                if file.max() >= 1 << 22:
                    raise ValueError(
                        f"{self.stage_name}: input file number {file.max()} over 4194303: a "
                        "cut document's pieces would get colliding _order numbers"
                    )
                order[later] = _PIECE | (file << 40) | (line << 8) | number[later]
            out = _replace(out, "_order", pa.array(order, out.schema.field("_order").type))
        return out

    def _count(self, what: str, name: str) -> None:
        key = f"{what}:{name}"
        self._counts[key] = self._counts.get(key, 0) + 1

    def take_counts(self) -> dict[str, int]:
        counts, self._counts = self._counts, {}
        return counts

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        """The base description plus the test set and the normalised words of the first
        n-gram found in the row (`max_matches` not applied), and in cut mode why the row
        went."""
        samples = super().describe_removed(rows, limit)
        if not samples:
            return samples
        self.setup()
        rows = rows.slice(0, len(samples))
        column = text_column(rows, self.text_field, self.stage_name)
        words = _Words(_one_array(column))
        matches = self._matches(words)
        names = list(self.tasks)
        for doc, task in zip(*matches.first_per_doc(), strict=True):
            found = matches.of_doc(doc)
            samples[doc]["test_set"] = names[task]
            samples[doc]["ngram"] = " ".join(words.words(found.start[0], found.length[0]))
            if self.mode == "cut":
                n = len(self._cut_row(column[doc].as_py(), words, doc, found))
                samples[doc]["reason"] = (
                    f"cut into {n} pieces, more than max_splits={self.max_splits}"
                    if n
                    else f"no piece of {self.min_document_length} characters or more left"
                )
        return samples


# ---------------------------------------------------------------------- words and n-grams


class _Words:
    """The words of a string array: split on `WHITESPACE`, lower-cased, `PUNCTUATION`
    removed, empty words dropped; each word's 64-bit hash, document and room (words from
    it to its document's end)."""

    def __init__(self, texts: pa.Array):
        raw = pc.split_pattern_regex(texts, WHITESPACE)
        self.raw = pc.list_flatten(raw)
        raw_counts = pc.fill_null(pc.list_value_length(raw), 0).to_numpy().astype(np.int64)
        self.raw_offsets = np.concatenate([[0], np.cumsum(raw_counts)])
        norm = pc.replace_substring_regex(pc.utf8_lower(self.raw), PUNCTUATION, "")
        keep = pc.greater(pc.binary_length(norm), 0).to_numpy(zero_copy_only=False)
        self.raw_index = np.flatnonzero(keep)  # raw token of each word
        self.normalised = norm.filter(pa.array(keep))
        raw_doc = np.repeat(np.arange(len(texts)), raw_counts)
        self.doc_of = raw_doc[self.raw_index]
        self.counts = np.bincount(self.doc_of, minlength=len(texts)).astype(np.int64)
        self.starts = np.cumsum(self.counts) - self.counts
        ends = np.repeat(self.starts + self.counts, self.counts)
        self.room = ends - np.arange(self.doc_of.size)
        encoded = pc.dictionary_encode(self.normalised)
        vocabulary = encoded.dictionary.cast(pa.large_binary()).to_pylist()
        table = np.fromiter(
            (xxhash.xxh3_64_intdigest(w) for w in vocabulary), np.uint64, len(vocabulary)
        )
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        self.hashes = table[indices] if indices.size else np.zeros(0, np.uint64)

    def words(self, start: int, length: int) -> list[str]:
        return self.normalised.slice(start, length).to_pylist()

    def spans(self, doc: int, text: str) -> np.ndarray:
        """[start, end) character offsets in `text` (row `doc`) of each of its words."""
        first, last = self.raw_offsets[doc], self.raw_offsets[doc + 1]
        raw_spans = np.zeros((last - first, 2), dtype=np.int64)
        at = 0
        for k, token in enumerate(self.raw.slice(first, last - first).to_pylist()):
            at = text.find(token, at)  # a token holds no whitespace: the first find is it
            raw_spans[k] = at, at + len(token)
            at += len(token)
        words = slice(self.starts[doc], self.starts[doc] + self.counts[doc])
        return raw_spans[self.raw_index[words] - first]


def _windows(hashes: np.ndarray, longest: int) -> Iterator[tuple[int, np.ndarray]]:
    """(length, hashes of the windows of that many words starting at each word) for lengths
    1 to `longest`: h(w1..wL) = h(w1..wL-1) * M + h(wL), mod 2^64. Windows that run past
    their document are there too; callers keep those that fit (`_Words.room`)."""
    total = hashes.size
    window = hashes.copy()
    for length in range(1, min(longest, total) + 1):
        size = total - length + 1
        if length > 1:
            window[:size] *= _MULTIPLIER
            window[:size] += hashes[length - 1 :]
        yield length, window[:size]


class _Matches:
    """Matches of test n-grams: document, start word, length, test set number, hash."""

    def __init__(self, doc, start, length, task, key):
        self.doc, self.start, self.length, self.task, self.key = doc, start, length, task, key

    @property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.doc, self.start, self.length, self.task, self.key

    @classmethod
    def empty(cls) -> _Matches:
        none = np.zeros(0, np.int64)
        return cls(none, none, none, none.astype(np.int32), none.astype(np.uint64))

    def select(self, mask: np.ndarray) -> _Matches:
        return _Matches(*(a[mask] for a in self._arrays))

    def first_per_doc(self) -> tuple[np.ndarray, np.ndarray]:
        """Documents with a match and the test set of each one's first match."""
        first = np.ones(self.doc.size, dtype=bool)
        first[1:] = self.doc[1:] != self.doc[:-1]
        return self.doc[first], self.task[first]

    def of_doc(self, doc: int) -> _Matches:
        lo, hi = np.searchsorted(self.doc, [doc, doc + 1])
        return _Matches(*(a[lo:hi] for a in self._arrays))


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    if column.num_chunks == 1:
        return column.chunk(0)
    chunks = [c.cast(pa.large_string()) for c in column.chunks]
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.large_string())


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


# ---------------------------------------------------------------------- reading test sets


def _task_paths(tasks) -> dict[str, Path]:
    """Test set name -> path, checked: names unique, files present."""
    if isinstance(tasks, str | Path):
        tasks = [tasks]
    if isinstance(tasks, Mapping):
        named = {str(k): Path(v) for k, v in tasks.items()}
    else:
        named = {}
        for path in map(Path, tasks):
            name = _stem(path)
            if name in named:
                raise ValueError(
                    f"TaskDecontamination: test sets {named[name]} and {path} have the same "
                    f"name {name!r}; pass a dict name -> path"
                )
            named[name] = path
    if not named:
        raise ValueError("TaskDecontamination: no test set given")
    for name, path in named.items():
        if not name:
            raise ValueError(f"TaskDecontamination: test set {path} has an empty name")
        if not path.is_file():
            raise FileNotFoundError(f"test set {name!r}: {path} does not exist")
        if not path.name.endswith(_FORMATS):
            raise ValueError(
                f"test set {name!r}: {path} is neither JSONL (.jsonl, .json, optionally "
                ".gz) nor Parquet (.parquet)"
            )
    return named


def _stem(path: Path) -> str:
    """`mmlu.jsonl.gz` -> `mmlu`."""
    name = path.name.removesuffix(".gz")
    for suffix in _FORMATS:
        name = name.removesuffix(suffix)
    return name


def read_test_set(path: Path, fields: Sequence[str]) -> list[str]:
    """The texts of `fields` in every row of a JSONL or Parquet test set. A field no row
    has is an error naming the file and the field; so is a value that is neither a string
    nor a list of strings."""
    if path.name.endswith(".parquet"):
        schema = pq.read_schema(path)
        missing = [f for f in fields if f not in schema.names]
        if missing:
            raise KeyError(f"test set {path}: no column {missing[0]!r} (columns: {schema.names})")
        rows = pq.read_table(path, columns=list(fields)).to_pylist()
        return [t for n, row in enumerate(rows) for t in _texts(row, fields, path, f"row {n}")]
    opener = gzip.open if path.name.endswith(".gz") else open
    texts: list[str] = []
    seen: set[str] = set()
    rows = 0
    with opener(path, "rt", encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"test set {path}: line {n}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ValueError(f"test set {path}: line {n}: expected a JSON object")
            rows += 1
            seen.update(f for f in fields if f in row)
            texts.extend(_texts(row, fields, path, f"line {n}"))
    missing = [f for f in fields if f not in seen]
    if missing and rows:
        raise KeyError(f"test set {path}: no row has the field {missing[0]!r}")
    return texts


def _texts(row: dict, fields: Sequence[str], path: Path, where: str) -> list[str]:
    texts = []
    for field in fields:
        value = row.get(field)
        if value is None:
            continue
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list) and all(isinstance(v, str | None) for v in value):
            texts.extend(v for v in value if v is not None)
        else:
            raise ValueError(
                f"test set {path}: {where}: field {field!r} is {type(value).__name__}, "
                "expected a string or a list of strings"
            )
    return texts
