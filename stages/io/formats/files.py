"""Media file collections (`format="files"`): one row per image, audio or video file.

A folder of a million small images is not a million shards: `plan_shards` groups
consecutive files (sorted by URI) into shards of up to `shard_size_mb` and at most
`FILES_PER_SHARD` files. Such a shard's `uri` is the folder shared by the inputs and its
`members` the files' paths relative to it.

Rows: `id` (the file's path under that folder without its extension: the file stem for
a flat folder), `source` (the file URI), `_order` (`file_index << 32 | member number`),
`extension` (lower case, no dot), and per media kind present (`image`, `audio`, `video`;
`data` for other extensions) the bytes in `<kind>` and the URI in `<kind>_uri`. The URI is
set for every row, so stages can always open a file by URI; the bytes are null for files
above `max_inline_mb`, so a table never holds a multi-GB video.

A file that is missing (a dangling symbolic link: named with its target), empty, or whose
first bytes do not match its extension is quarantined (`line` 0, `raw` its bytes, whole up
to 1 MB, with `offset` 0 and `length` its size).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from stages.io.formats.base import Format
from stages.io.formats.media import AUDIO, IMAGE, VIDEO, kind_of, looks_like
from stages.io.fs import dangling_link, filesystem
from stages.io.quarantine import RAW_BYTES, Record
from stages.io.rows import ReadResult, assemble

FILES_PER_SHARD = 1000
_THREADS = 8
_HEAD = 16
_KIND_ORDER = ("image", "audio", "video", "data")


class FilesFormat(Format):
    name = "files"
    extensions = tuple(f".{e}" for e in (*IMAGE, *AUDIO, *VIDEO))
    detected = False
    groups_files = True

    def read(self, shard, reader) -> Iterator[ReadResult]:
        uris = shard.uris
        ids = [file_id(m) for m in shard.members] or [file_id(shard.uri.rsplit("/", 1)[-1])]
        limit = int(reader.max_inline_mb * (1 << 20))
        rows: list[tuple[int, str, str, str, bytes | None]] = []
        bad: list[Record] = []
        size = 0
        with ThreadPoolExecutor(max_workers=min(_THREADS, len(uris))) as pool:
            loaded = pool.map(lambda u: _load(u, limit, reader.storage_options), uris)
            for number, (uri, row_id, (data, why, size)) in enumerate(
                zip(uris, ids, loaded, strict=True), start=1
            ):
                if why is not None:
                    where = (0, size) if data is not None else ()
                    bad.append(Record(uri, 0, f"{uri}: line 0: {why}", data, 1, *where))
                    continue
                rows.append((number, row_id, uri, _extension(uri), data))
                size += len(data or b"")
                if size >= reader.batch_bytes:
                    yield ReadResult(_table(shard, rows), reader.quarantine(bad))
                    rows, bad, size = [], [], 0
        yield ReadResult(_table(shard, rows), reader.quarantine(bad))


def _load(uri: str, limit: int, storage_options: dict | None):
    """`(bytes or None, None, size)` for a good file (bytes None above `limit`);
    `(raw or None, why, size or None)` for a bad one."""
    fs, path = filesystem(uri, storage_options)
    try:
        size = fs.size(path)
        if not size:
            return None, "empty file", 0
        if size > limit:
            with fs.open(path, "rb") as f:
                data, head = None, f.read(_HEAD)
        else:
            data = fs.cat_file(path)
            head = data[:_HEAD]
    except FileNotFoundError:
        target = dangling_link(uri)
        if target is not None:
            return None, f"dangling symbolic link to {target}", None
        return None, "no such file", None
    except OSError as err:
        return None, f"unreadable file: {err}", None
    ext = _extension(uri)
    if not looks_like(ext, head):
        why = f"not a {ext} file (starts with {head[:8].hex(' ')})"
        if data is None:
            with fs.open(path, "rb") as f:
                data = f.read(RAW_BYTES)
        return data[:RAW_BYTES], why, size
    return data, None, size


def _table(shard, rows: list) -> pa.Table:
    kinds = {kind_of(r[3]) or "data" for r in rows}
    extras = {"extension": pa.array([r[3] for r in rows], pa.string())}
    for kind in _KIND_ORDER:
        if kind not in kinds:
            continue
        mine = [(kind_of(r[3]) or "data") == kind for r in rows]
        pairs = list(zip(rows, mine, strict=True))
        extras[kind] = pa.array([r[4] if m else None for r, m in pairs], pa.binary())
        extras[f"{kind}_uri"] = pa.array([r[2] if m else None for r, m in pairs], pa.string())
    table = assemble(shard, None, [r[1] for r in rows], [r[0] for r in rows], extras)
    # `source` is each file, not the shard's folder.
    sources = pa.array([r[2] for r in rows], pa.string())
    return table.set_column(table.schema.get_field_index("source"), "source", sources)


def _extension(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def file_id(path: str) -> str:
    """The id of a file: its path (relative to the shard's folder) without extension."""
    head, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{head}/{stem}" if head else stem
