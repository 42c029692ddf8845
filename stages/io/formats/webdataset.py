"""WebDataset tar shards (`.tar`, `.tar.gz`): one row per sample.

Members are grouped into samples as `webdataset` does: the key is the member path up to
the first dot of its base name, the extension (lower-cased) is the rest, and a sample is a
run of consecutive members with the same key. Rows: `id` (the `id_field` of the sample's
`.json` when it has one, else the key), `source` (the tar URI), `_order` (`file_index << 32
| sample number`), `key`, then one column per extension in alphabetical order: strings for
text members (`txt`, `json`, `cls`, ...), binary for everything else (`jpg`, `flac`,
`mp4`, ...). `columns` keeps only the listed extensions; `required_field` names members
every sample must hold, alternatives separated by `;` (`"jpg;png;webp"`) or as a tuple.

The tar is read as a stream (works on `s3://`). Each sample ends in exactly one row or one
quarantine record (`line` = sample number, `raw` = the bad member's bytes, `offset` and
`length` = where they lie in the decompressed tar stream): an unsafe
member name (absolute, or with `..`), a link, an empty member, a member that does not
parse (JSON, UTF-8 text) or whose bytes do not start like its extension (a `.jpg` that is
not a JPEG), a duplicate member, a key seen again later, a sample without a required
member. A truncated tar keeps the samples before the damage and quarantines the sample it
broke in, saying where.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator

import orjson
import pyarrow as pa

from stages.io.formats.base import Format
from stages.io.formats.media import looks_like
from stages.io.fs import filesystem
from stages.io.quarantine import RAW_BYTES, Record
from stages.io.rows import ReadResult, assemble, id_string

TEXT_EXTENSIONS = frozenset(
    ["txt", "text", "transcript", "caption", "cls", "cls2", "class", "count", "index", "inx"]
    + ["id", "json", "jsn", "vtt", "srt"]
)
_JSON = ("json", "jsn")
_NAME = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_BLOCK = 512
TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class WebDatasetFormat(Format):
    name = "webdataset"
    extensions = (".tar", ".tar.gz", ".tgz")

    def read(self, shard, reader) -> Iterator[ReadResult]:
        uri = shard.uri
        fs, path = filesystem(uri, reader.storage_options)
        rows = _Rows(shard, reader)
        with fs.open(path, "rb") as f:
            tar, unreadable = open_tar_stream(f, fs, path, uri, reader, with_text=False)
            if unreadable is not None:
                yield unreadable
                return
            samples = _Samples(uri, reader)
            try:
                for info in tar:
                    samples.member(tar, info)
                    for sample in samples.take():
                        rows.add(sample)
                    if rows.full():
                        yield rows.flush()
                broken = ends_inside_a_header(tar)
            except TAR_ERRORS as err:
                broken = str(err) or type(err).__name__
            samples.finish(broken)
            for sample in samples.take():
                rows.add(sample)
        yield rows.flush()


class _Sample:
    def __init__(self, key: str, number: int):
        self.key = key
        self.number = number
        self.members: dict[str, bytes] = {}
        self.extensions: list[str] = []
        self.bad: Record | None = None


class _Samples:
    """Groups members into samples and validates them."""

    def __init__(self, uri: str, reader):
        self.uri = uri
        self.required = reader.required_fields
        self.wanted = None if reader.columns is None else {*reader.columns, *self.required}
        self.seen: set[str] = set()
        self.current: _Sample | None = None
        self.ready: list[_Sample] = []
        self.number = 0
        self.member_name = ""

    def take(self) -> list[_Sample]:
        """The samples finished so far (each once)."""
        ready, self.ready = self.ready, []
        return ready

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        """Take one tar member; a new key finishes the previous sample."""
        if info.isdir():
            return
        name = info.name
        self.member_name = name
        key, ext = split_member_name(name) or (name, None)
        sample = self.current
        if sample is None or key != sample.key:
            self._close(sample)
            self.number += 1
            sample = self.current = _Sample(key, self.number)
            if key in self.seen:
                why = f"sample {key} appears again after other samples (tar not grouped by key)"
                self._fail(name, why, None)
            self.seen.add(key)
        sample.extensions.append(ext or "")
        if sample.bad is not None:
            return
        if not info.isfile():
            self._fail(name, "not a regular file (a link or device)", None)
        elif ext is None:
            self._fail(name, "no extension, so no sample key", None)
        elif ext in sample.members:
            self._fail(name, f"a second {ext!r} member in sample {key}", None)
        elif name.startswith("/") or ".." in name.split("/"):
            head = tar.extractfile(info).read(RAW_BYTES)
            self._fail(name, "unsafe path (absolute or with '..')", head, info)
        elif self.wanted is None or ext in self.wanted or ext in _JSON:
            data = tar.extractfile(info).read()
            why = _check(ext, data)
            if why is not None:
                self._fail(name, why, data, info)
            else:
                sample.members[ext] = data

    def finish(self, broken: str | None) -> None:
        """Finish the last sample, or (when the tar broke) quarantine the sample it broke
        in: members after the break may have belonged to it."""
        sample = self.current
        self.current = None
        if broken is None:
            self._close(sample)
            if self.number == 0:
                self.ready.append(_Sample("", 0))
                self.ready[-1].bad = (self.uri, 0, f"{self.uri}: line 0: tar holds no file", None)
            return
        if sample is None:
            sample = _Sample("", self.number + 1)
        where = f"member {self.member_name}" if self.member_name else "line 0"
        dropped = f"; sample {sample.key} dropped" if sample.key else ""
        reason = f"{self.uri}: {where}: truncated tar at or after this member ({broken}){dropped}"
        sample.bad = (self.uri, sample.number, reason, None)
        self.ready.append(sample)

    def _fail(
        self, name: str, why: str, raw: bytes | None, info: tarfile.TarInfo | None = None
    ) -> None:
        """Quarantine the current sample for its member `name`; `raw` is the member's
        bytes, found again at `info.offset_data` (in the decompressed tar stream)."""
        sample = self.current
        reason = f"{self.uri}: member {name}: {why}"
        where = (info.offset_data, info.size) if raw is not None and info is not None else ()
        sample.bad = Record(self.uri, sample.number, reason, raw, 1, *where)
        sample.members.clear()

    def _close(self, sample: _Sample | None) -> None:
        if sample is None:
            return
        self.ready.append(sample)
        required = self.required
        if sample.bad is None and required and not any(e in sample.members for e in required):
            has = ", ".join(sorted(set(sample.extensions)))
            wanted = " or ".join(repr(e) for e in self.required)
            why = f"sample {sample.key}: no {wanted} member (has: {has})"
            sample.bad = (self.uri, sample.number, f"{self.uri}: {why}", None)
            sample.members.clear()


def _check(ext: str, data: bytes) -> str | None:
    """Why a member's bytes are bad for its extension, or None."""
    if not data:
        return "empty member (0 bytes)"
    if ext in TEXT_EXTENSIONS:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"invalid UTF-8 at byte {bad.start}"
        if ext in _JSON:
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError as err:
                return f"invalid JSON: {err}"
        return None
    last = ext.rsplit(".", 1)[-1]
    if not looks_like(last, data[:16]):
        return f"not a {last} file (starts with {data[:8].hex(' ')})"
    return None


def open_tar_stream(f, fs, path: str, uri: str, reader, with_text: bool):
    """(the tar stream read from the open file `f`, None), or (None, the `ReadResult` of
    one quarantine record saying why it cannot be read: an empty file, not a tar)."""
    try:
        return tarfile.open(fileobj=f, mode="r|*"), None
    except TAR_ERRORS as err:
        why = "empty file" if fs.size(path) == 0 else f"not a readable tar archive: {err}"
        return None, reader.bad_only(uri, 0, f"{uri}: line 0: {why}", None, with_text=with_text)


def ends_inside_a_header(tar: tarfile.TarFile) -> str | None:
    """tarfile ends a stream silently when it is cut inside or before a member header; a
    complete tar has at least one 512-byte end block after its last member."""
    stream = tar.fileobj
    while stream.read(1 << 20):
        pass
    if stream.pos - tar.offset < _BLOCK:
        return "ends inside a member header, without the end-of-archive blocks"
    return None


class _Rows:
    """Finished samples, turned into a `ReadResult` every `batch_bytes` of members."""

    def __init__(self, shard, reader):
        self.shard, self.reader = shard, reader
        self.wanted = None if reader.columns is None else {*reader.columns, *reader.required_fields}
        self.samples: list[_Sample] = []
        self.bad: list[Record] = []
        self.bytes = 0

    def add(self, sample: _Sample) -> None:
        if sample.bad is not None:
            self.bad.append(sample.bad)
        else:
            self.samples.append(sample)
            self.bytes += sum(len(v) for v in sample.members.values())

    def full(self) -> bool:
        return self.bytes >= self.reader.batch_bytes

    def flush(self) -> ReadResult:
        samples, bad = self.samples, self.bad
        self.samples, self.bad, self.bytes = [], [], 0
        quarantine = self.reader.quarantine(bad)
        exts = sorted({e for s in samples for e in s.members})
        if self.wanted is not None:
            exts = [e for e in exts if e in self.wanted]
        extras = {"key": pa.array([s.key for s in samples], pa.string())}
        for ext in exts:
            values = [s.members.get(ext) for s in samples]
            if ext in TEXT_EXTENSIONS:
                texts = [None if v is None else v.decode() for v in values]
                extras[ext] = pa.array(texts, pa.string())
            else:
                extras[ext] = pa.array(values, pa.binary())
        ids = [self._id(s) for s in samples]
        numbers = [s.number for s in samples]
        table = assemble(self.shard, None, ids, numbers, extras)
        return ReadResult(table, quarantine)

    def _id(self, sample: _Sample) -> str:
        for ext in _JSON:
            data = sample.members.get(ext)
            if data is not None:
                meta = orjson.loads(data)
                if isinstance(meta, dict) and meta.get(self.reader.id_field) is not None:
                    return id_string(meta[self.reader.id_field])
        return sample.key


def split_member_name(name: str) -> tuple[str, str] | None:
    """`(key, extension)` of a tar member name, as webdataset splits it, or None."""
    match = _NAME.match(name)
    return (match.group(1), match.group(2).lower()) if match else None
