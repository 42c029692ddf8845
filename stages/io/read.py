"""Read one `Shard` into Arrow tables, whatever its format.

`ShardReader` holds the reading options; the shard's format (`stages.io.formats`: jsonl,
parquet, webdataset, files, manifest) turns it into rows. Every row has `id`, `source`
(the input URI) and `_order` (a global, deterministic input position: `file_index << 32 |
record number`); the other columns depend on the format (see each format's module).
Bad input never crashes a run and is never dropped silently: each bad line, sample or file
is a quarantine record (`stages.io.quarantine`) naming the file and where in it, and the
good rows around it are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from stages.io.errors import InputError
from stages.io.formats import get_format
from stages.io.fs import dangling_link
from stages.io.quarantine import (
    QUARANTINE_SCHEMA,
    RAW_BYTES,
    Record,
    empty_quarantine,
    quarantine_table,
    with_blank_lines,
)
from stages.io.rows import RESERVED, ReadResult, concat_rows, empty_rows
from stages.io.shards import Shard

__all__ = [
    "QUARANTINE_SCHEMA",
    "RAW_BYTES",
    "RESERVED",
    "ReadResult",
    "ShardReader",
    "empty_quarantine",
]

_NO_TEXT = ("webdataset", "files", "warc")  # formats whose rows never have a text column


class ShardReader:
    """Reads shards into `ReadResult`s.

    - `text_field`: the input field holding the text; it comes out as `text`. None reads
      rows without text (media, tabular data): no `text` column is made or required.
      Manifests keep it optional; WebDataset and files readers ignore it.
    - `id_field`: the input field holding a document id (cast to string); rows without one
      get a generated id `<file stem>-<hash of uri>-<line>`, stable across runs. For
      WebDataset, the field of the sample's `.json` (else the sample key is the id).
    - `columns`: the other input fields to keep (None keeps all); for WebDataset, the member
      extensions. An input field whose name clashes with an output column (`source`, ...)
      is kept as `input_<name>`.
    - `required_field`: an input field every row must hold (not null, any type, kept under
      its own name and always read, whatever `columns` says); rows without it are
      quarantined. Dedup of an `image` column reads with `text_field=None,
      required_field="image"`. For WebDataset, member extensions, alternatives separated
      by `;` or given as a tuple: `"jpg;png;webp"`.
    - `strict`: raise `InputError` at the first bad input instead of quarantining it.
    - `batch_bytes`: `iter_batches` yields about this much input per batch.
    - `max_inline_mb`: media files larger than this travel by URI only (bytes null).
    - `inline_media`: manifests also read each audio file's bytes into `audio`.
    """

    def __init__(
        self,
        text_field: str | None = "text",
        id_field: str = "id",
        columns: list[str] | None = None,
        storage_options: dict | None = None,
        strict: bool = False,
        batch_bytes: int = 32 << 20,
        required_field: str | Sequence[str] | None = None,
        max_inline_mb: float = 64,
        inline_media: bool = False,
    ):
        if required_field is None:
            alternatives: tuple[str, ...] = ()
        elif isinstance(required_field, str):
            alternatives = tuple(f for f in required_field.split(";") if f)
        else:
            alternatives = tuple(required_field)
        if len(alternatives) == 1:
            required_field = alternatives[0]
        self.text_field = text_field
        self.id_field = id_field
        self.required_field = required_field
        self.required_fields = alternatives
        self.columns = list(columns) if columns is not None else None
        if self.columns is not None:
            for field in alternatives:
                if field not in (text_field, id_field, *self.columns):
                    self.columns.append(field)
        self.storage_options = storage_options
        self.strict = strict
        self.batch_bytes = batch_bytes
        self.max_inline_mb = max_inline_mb
        self.inline_media = inline_media

    def read(self, shard: Shard) -> ReadResult:
        """The whole shard as one result; its quarantine table carries the blank lines
        (`stages.io.quarantine.blank_lines`)."""
        parts = list(self.iter_batches(shard))
        blank = sum(p.blank_lines for p in parts)
        quarantine = pa.concat_tables([empty_quarantine()] + [p.quarantine for p in parts])
        return ReadResult(
            table=concat_rows([p.table for p in parts], self.text_field is not None),
            quarantine=with_blank_lines(quarantine, blank),
            blank_lines=blank,
        )

    def iter_batches(self, shard: Shard) -> Iterator[ReadResult]:
        """The shard in pieces of about `batch_bytes` of input, in input order. A file that
        is a dangling symbolic link is one quarantine record naming the link's target."""
        target = dangling_link(shard.uri) if not shard.members else None
        if target is not None:
            reason = f"{shard.uri}: line 0: dangling symbolic link to {target}"
            with_text = None if shard.format not in _NO_TEXT else False
            yield self.bad_only(shard.uri, 0, reason, None, with_text=with_text)
            return
        yield from get_format(shard.format).read(shard, self)

    # -- quarantine, for the formats -----------------------------------------------------

    def quarantine(self, records: Sequence[Record]) -> pa.Table:
        """The quarantine table of `records`; in strict mode, `InputError` for the first."""
        if records and self.strict:
            raise InputError(records[0][2])
        return quarantine_table(records)

    def line_quarantine(self, uri: str, bad: Sequence[tuple]) -> pa.Table:
        """Quarantine for `(line, why, raw)` or `(line, why, raw, offset, length)` of one
        file: reasons `f"{uri}: line {n}: {why}"`."""
        return self.quarantine(
            [Record(uri, b[0], f"{uri}: line {b[0]}: {b[1]}", b[2], 1, *b[3:]) for b in bad]
        )

    def bad_only(
        self,
        uri: str,
        line: int,
        reason: str,
        raw: bytes | None,
        with_text: bool | None = None,
        rows: int = 1,
        offset: int | None = None,
        length: int | None = None,
    ) -> ReadResult:
        """No rows and one quarantine record (a file-level problem) standing for `rows`
        input rows."""
        quarantine = self.quarantine([Record(uri, line, reason, raw, rows, offset, length)])
        if with_text is None:
            with_text = self.text_field is not None
        return ReadResult(empty_rows(with_text), quarantine)
