"""Parquet: one row per row, streamed in record batches, projected columns only.

Rows: `id`, `text` (unless `text_field=None`), `source`, `_order` (`file_index << 32 |
row number`), then the other columns as stored (bytes stay bytes). Rows with a null text
or required field are quarantined by row number; an unreadable or empty file, or one
without the text column, is one file-level record (line 0) that stands for the rows the
file's footer declares (`rows`; 1 when the footer is unreadable too). A file whose data
breaks after some rows keeps those and quarantines the rest as one record, at the first
row not read.

A file larger than the shard size is split into ranges of consecutive row groups
(`row_group_ranges`; `Shard.start`/`end` are row-group indices). Row numbers count from
the start of the file, so the ranges read the rows the whole file reads; a file-level
record comes from the first range only, standing for the whole file. Damaged data stops
only the range it is in: the rest of that range is one record, later ranges still read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.io.formats.base import Format, one_required_field
from stages.io.fs import filesystem
from stages.io.rows import ReadResult, assemble

_ROWS_PER_BATCH = 65536
_ERRORS = (pa.ArrowException, EOFError, OSError)


class ParquetFormat(Format):
    name = "parquet"
    extensions = (".parquet",)

    def read(self, shard, reader) -> Iterator[ReadResult]:
        one_required_field(shard, reader)
        uri = shard.uri
        fs, path = filesystem(uri, reader.storage_options)
        with fs.open(path, "rb") as f:
            try:
                pf = pq.ParquetFile(f)
            except _ERRORS as err:
                if fs.size(path) == 0:
                    yield reader.bad_only(uri, 0, f"{uri}: line 0: empty file", None)
                else:
                    reason = f"{uri}: line 0: unreadable Parquet file: {err}"
                    yield reader.bad_only(uri, 0, reason, None)
                return
            meta = pf.metadata
            total = meta.num_rows
            groups = range(shard.start, meta.num_row_groups if shard.end is None else shard.end)
            offset = sum(meta.row_group(g).num_rows for g in range(shard.start))
            stop = offset + sum(meta.row_group(g).num_rows for g in groups)  # rows to here
            first = shard.start == 0  # a file-level record comes from the first range only
            names = pf.schema_arrow.names
            text_field, required = reader.text_field, reader.required_field
            checks = []  # (field, why a null there is bad), in the order they are reported
            if text_field is not None:
                checks.append((text_field, f"field {text_field!r} is null, expected a string"))
            if required is not None and required != text_field:
                checks.append((required, f"field {required!r} is null"))
            for field, _ in checks:
                if field not in names:
                    if first:
                        reason = f"{uri}: line 0: missing column {field!r}"
                        yield reader.bad_only(uri, 0, reason, None, rows=total)
                    return
            wanted = reader.columns if reader.columns is not None else names
            extras = [c for c in wanted if c not in (text_field, reader.id_field)]
            read = [text_field] if text_field is not None else []
            read += [c for c in [reader.id_field, *extras] if c in names]
            read = list(dict.fromkeys(read))
            if text_field is not None:
                text_type = pf.schema_arrow.field(text_field).type
                if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
                    if first:
                        why = f"column {text_field!r} is {text_type}, expected strings"
                        yield reader.bad_only(uri, 0, f"{uri}: line 0: {why}", None, rows=total)
                    return
            # Row group by row group, so damage in one keeps the groups before it.
            batches = (
                batch
                for group in groups
                for batch in pf.iter_batches(
                    batch_size=_ROWS_PER_BATCH, row_groups=[group], columns=read
                )
            )
            while True:
                try:
                    batch = next(batches, None)
                except _ERRORS as err:
                    rest = max(stop - offset, 1)
                    if offset == 0:
                        reason = f"{uri}: line 0: unreadable Parquet file: {err}"
                    else:
                        line = offset + 1
                        reason = f"{uri}: line {line}: unreadable Parquet data from here: {err}"
                    yield reader.bad_only(uri, offset and offset + 1, reason, None, rows=rest)
                    return
                if batch is None:
                    return
                numbers = pa.array(range(offset + 1, offset + 1 + batch.num_rows), pa.int64())
                offset += batch.num_rows
                table = pa.Table.from_batches([batch])
                reasons: dict[int, str] = {}
                valid = None
                for field, why in checks:
                    ok = pc.is_valid(table.column(field))
                    for n in pc.filter(numbers, pc.invert(ok)).to_pylist():
                        reasons.setdefault(n, why)
                    valid = ok if valid is None else pc.and_(valid, ok)
                bad = [(n, why, None) for n, why in sorted(reasons.items())]
                if bad:
                    table = table.filter(valid)
                    numbers = pc.filter(numbers, valid)
                quarantine = reader.line_quarantine(uri, bad)
                text = (
                    table.column(text_field).cast(pa.string()) if text_field is not None else None
                )
                ids = (
                    table.column(reader.id_field) if reader.id_field in table.column_names else None
                )
                columns = {
                    c: (table.column(c) if c in table.column_names else pa.nulls(table.num_rows))
                    for c in extras
                }
                yield ReadResult(assemble(shard, text, ids, numbers, columns), quarantine)


def row_group_ranges(uri: str, shard_bytes: int, storage_options: dict | None) -> list[int]:
    """The first row group of every range after the first when a Parquet file is cut into
    ranges of consecutive row groups of about `shard_bytes` (compressed) each, a group
    larger than that alone. Empty when that makes one range, or the footer is unreadable
    (the file is read whole, and its reader reports why)."""
    fs, path = filesystem(uri, storage_options)
    try:
        with fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
    except (*_ERRORS, FileNotFoundError):
        return []
    starts: list[int] = []
    held = 0  # compressed bytes of the range being filled
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        size = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if held and held + size > shard_bytes:
            starts.append(g)
            held = 0
        held += size
    return starts
