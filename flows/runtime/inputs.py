"""What planning can tell about an input's columns before any work: Parquet schemas and
the fields of a JSONL file's first rows, so that a parameter naming a column the input
lacks is an error at once, not a quarantine of every row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from flows.runtime.storage import storage_options
from stages.io.fs import filesystem
from stages.io.shards import Shard


def require_columns(wanted: dict[str, str], names, uri: str) -> None:
    for field, name in wanted.items():
        if name not in names:
            have = ", ".join(sorted(names)[:12]) or "none"
            raise ValueError(f"{uri} has no column {name!r} (the {field}); it has: {have}")


def parquet_schema(uri: str) -> pa.Schema | None:
    fs, path = filesystem(uri, storage_options())
    try:
        with fs.open(path, "rb") as f:
            return pq.read_schema(f)
    except (pa.ArrowException, OSError):
        return None


SAMPLED_LINES = 20


def first_keys(uri: str) -> set[str]:
    """The fields of the first JSON objects of a JSONL file (plain, gzip or zstd); empty
    when none parses (the reader then quarantines the lines with their reasons)."""
    import orjson

    from stages.io.formats.lines import LineBlocks, split_lines

    keys: set[str] = set()
    seen = 0
    shard = Shard(uri=uri, file_index=0)
    try:
        for block, *_ in LineBlocks(shard, storage_options(), block_bytes=64 << 10):
            for line in split_lines(block):
                try:
                    row = orjson.loads(line) if line.strip() else None
                except orjson.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    keys.update(row)
                    seen += 1
                if seen >= SAMPLED_LINES:
                    return keys
    except OSError:
        pass
    return keys


TAR_EXTENSIONS = (".tar", ".tar.gz", ".tgz")


def media_input(source: str, chosen: str, media: tuple[str, ...]) -> tuple[str | None, bool]:
    """How a media flow reads `source`: (the reader format for every input file, whether
    the rows come from Parquet). `chosen` is the flow's `input_format` option: "auto",
    "webdataset", "files" or "parquet"; `media`, the flow's file extensions.

    Auto: a name ending in .tar or .parquet is read by its extension (format None), a name
    ending in a media extension as media files; a folder holding tars or Parquet files (or
    a curate dataset) by their extensions, any other folder as media files."""
    if chosen != "auto":
        return chosen, chosen == "parquet"
    name = source.split("?", 1)[0].rstrip("/").lower()
    if name.endswith(".parquet"):
        return None, True
    if name.endswith(TAR_EXTENSIONS):
        return None, False
    if name.endswith(tuple(f".{ext}" for ext in media)):
        return "files", False
    files = _tables_and_tars(source)
    if not files:
        return "files", False
    return None, not any(f.lower().endswith(TAR_EXTENSIONS) for f in files)


def _tables_and_tars(folder: str) -> list[str]:
    """The tars and Parquet files a folder holds (a curate dataset's listed files)."""
    from stages.io.commit import dataset_files, is_dataset

    options = storage_options()
    try:
        if is_dataset(folder, options):
            return dataset_files(folder, options)
        fs, path = filesystem(folder, options)
        if not fs.isdir(path):
            return []
        return [p for p in fs.find(path) if p.lower().endswith((*TAR_EXTENSIONS, ".parquet"))]
    except OSError:
        return []  # planning reports a missing input with its own message


def media_reader(params, column: str, media: tuple[str, ...], max_inline_mb: float = 64):
    """The reader of a media flow: rows without their media (a sample with no member of
    the kind, a Parquet row without `column`) are quarantined by the reader, with the
    sample or row named. `params`: the flow's `MediaParams` (input, format, id field);
    media files larger than `max_inline_mb` travel by URI only (0: every file, as videos
    do)."""
    from stages.io.read import ShardReader

    if media_input(params.input, params.input_format, media)[1]:
        required = column
    else:  # a WebDataset sample's member of any media type; a file's column
        required = ";".join(dict.fromkeys((column, *media)))
    return ShardReader(
        text_field=None,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
        required_field=required,
        max_inline_mb=max_inline_mb,
    )


def require_media_column(
    shards: list[Shard], column: str, option: str, media: tuple[str, ...]
) -> None:
    """Parquet input must have the media `column` (named by the flow's `option`), read
    from each file's schema; the default name also accepts a column per media extension."""
    default = option.removesuffix("_column")
    for uri in dict.fromkeys(s.uri for s in shards if s.format == "parquet"):
        schema = parquet_schema(uri)
        if schema is None:
            continue  # the reader quarantines an unreadable file with its reason
        found = column in schema.names
        if column == default:
            found = found or any(name in schema.names for name in media)
        if not found:
            require_columns({option: column}, schema.names, uri)
