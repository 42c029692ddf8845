"""NeMo-style JSONL manifests (`format="manifest"`): one row per line, one audio file each.

Each line is a JSON object with `audio_filepath`, usually `duration` and `text`, and any
other fields (kept). A relative `audio_filepath` is resolved against the manifest's folder
(local or `s3://`); an absolute path or a URL stays as it is.

Rows: `id` (the `id_field` when the line has one, else `<manifest stem>-<hash>-<line>`),
`text` (the `text_field`, null when absent; not required), `source` (the manifest),
`_order` (`file_index << 32 | line`), `audio_uri` and `audio_filepath` (the resolved URI),
`audio_filepath_raw` (as written in the manifest), `duration`, then the other fields. The
audio bytes are not read unless the reader asks (`inline_media=True`: an `audio` column,
null above `max_inline_mb`).

A line whose audio file does not exist is quarantined with the line's bytes and a reason
naming the manifest, the line and the missing path; bad JSON as for JSONL.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pyarrow as pa

from stages.io.formats.base import Format, one_required_field
from stages.io.formats.jsonl import JsonlFormat, object_keys, why_unparsable
from stages.io.formats.lines import LineBlocks, split_lines
from stages.io.fs import filesystem
from stages.io.rows import ReadResult, assemble, json_kind, to_arrow

PATH_FIELD = "audio_filepath"
_THREADS = 16
_MISSING = object()


class ManifestFormat(Format):
    name = "manifest"
    extensions = JsonlFormat.extensions
    detected = False
    splittable = True

    def read(self, shard, reader) -> Iterator[ReadResult]:
        one_required_field(shard, reader)
        folder = shard.uri.rsplit("/", 1)[0]
        blocks = LineBlocks(shard, reader.storage_options, reader.batch_bytes)
        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            for block, first_line, offset in blocks:
                yield self.parse(block, first_line, shard, reader, folder, pool, offset)
        if blocks.problem is not None:
            line, why, raw, offset = blocks.problem
            reason = f"{shard.uri}: line {line}: {why}"
            where = {"offset": offset, "length": len(raw)} if raw is not None else {}
            yield reader.bad_only(shard.uri, line, reason, raw, **where)

    def parse(self, block, first_line, shard, reader, folder, pool, offset=0) -> ReadResult:
        text_field, required = reader.text_field, reader.required_field
        parsed: list[tuple[int, dict, bytes, int]] = []
        bad: list[tuple[int, str, bytes, int, int]] = []
        blank = 0
        pos = offset
        for n, raw in enumerate(split_lines(block), start=first_line):
            at, pos = pos, pos + len(raw) + 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                if raw.strip():
                    bad.append((n, why_unparsable(raw, err), raw, at, len(raw)))
                else:
                    blank += 1
                continue
            why = None
            if type(obj) is not dict:
                why = f"expected a JSON object, got {json_kind(obj)}"
            else:
                path = obj.get(PATH_FIELD, _MISSING)
                text = obj.get(text_field) if text_field is not None else None
                if path is _MISSING:
                    why = f"missing field {PATH_FIELD!r}"
                elif type(path) is not str or not path:
                    why = f"field {PATH_FIELD!r} is {json_kind(path)}, expected a path"
                elif text is not None and type(text) is not str:
                    why = f"field {text_field!r} is {json_kind(text)}, expected a string"
                elif required is not None and obj.get(required) is None:
                    why = f"missing or null field {required!r}"
                else:
                    parsed.append((n, obj, raw, at))
            if why is not None:
                bad.append((n, why, raw, at, len(raw)))
        uris = [resolve(obj[PATH_FIELD], folder) for _, obj, _, _ in parsed]
        limit = int(reader.max_inline_mb * (1 << 20)) if reader.inline_media else -1
        found = list(pool.map(lambda u: _probe(u, limit, reader.storage_options), uris))
        kept, kept_uris, audio = [], [], []
        for (n, obj, raw, at), uri, (exists, data) in zip(parsed, uris, found, strict=True):
            if exists:
                kept.append((n, obj))
                kept_uris.append(uri)
                audio.append(data)
            else:
                bad.append((n, f"audio file {uri} not found", raw, at, len(raw)))
        bad.sort(key=lambda b: b[0])
        table = self.table(kept, kept_uris, audio, shard, reader)
        return ReadResult(table, reader.line_quarantine(shard.uri, bad), blank)

    def table(self, kept, uris, audio, shard, reader) -> pa.Table:
        objs = [obj for _, obj in kept]
        text_field, id_field = reader.text_field, reader.id_field
        text = [o.get(text_field) for o in objs] if text_field is not None else None
        extras = {
            "audio_uri": pa.array(uris, pa.string()),
            PATH_FIELD: pa.array(uris, pa.string()),
            f"{PATH_FIELD}_raw": pa.array([o[PATH_FIELD] for o in objs], pa.string()),
            "duration": to_arrow([o.get("duration") for o in objs]),
        }
        if reader.inline_media:
            extras["audio"] = pa.array(audio, pa.binary())
        skip = (text_field, id_field, PATH_FIELD, "duration")
        for key in object_keys(objs, reader.columns, skip):
            name = key
            while name in extras:
                name = f"input_{name}"
            extras[name] = to_arrow([o.get(key) for o in objs])
        ids = [o.get(id_field) for o in objs]
        return assemble(shard, text, ids, [n for n, _ in kept], extras)


def resolve(path: str, folder: str) -> str:
    """`path` from a manifest in `folder`: URLs and absolute paths as they are, relative
    paths joined to the folder (`..` resolved)."""
    if "://" in path or path.startswith("/"):
        return path
    if "://" in folder:
        protocol, rest = folder.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(rest, path))}"
    return posixpath.normpath(posixpath.join(folder, path))


def _probe(uri: str, limit: int, storage_options: dict | None) -> tuple[bool, bytes | None]:
    """Whether `uri` exists, and its bytes when at most `limit` bytes (limit < 0: never)."""
    fs, path = filesystem(uri, storage_options)
    try:
        if limit < 0:
            return fs.isfile(path), None
        size = fs.size(path)
        return True, (fs.cat_file(path) if size <= limit else None)
    except FileNotFoundError:
        return False, None
