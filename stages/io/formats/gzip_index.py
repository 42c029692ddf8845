"""Seek-point indexes of gzip files, so that the reader of a range of a large gzip file
starts near its range instead of decompressing everything before it.

A gzip stream decompresses only from its start, unless one keeps, at points along it,
what the decompressor needs to resume there: where the point is in both streams and the
32 KB of output before it. indexed_gzip (zran) builds such an index and decompresses from
the last point at or before the offset asked for. Planning builds a file's index in the
pass that finds its cuts (`build_index`: the compressed bytes are read once, for both),
keeps only the points its ranges' readers start from (`trim_index`), and writes it where
the workers read it (`index_uri`); a range's reader imports it (`open_indexed`) and asks
for `WINDOW` bytes at a time (`window_starts`), each from the kept point before it.
"""

from __future__ import annotations

import hashlib
import io
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterable

from indexed_gzip import IndexedGzipFile

from stages.io.fs import filesystem, join

WINDOW = 32 << 20  # decompressed bytes a range's reader asks for at a time
SUFFIX = ".gzidx"
_MIN_SPACING = 1 << 20
_MAX_POINTS = 1024  # points built while planning, per unit of the compression ratio
_READ = 2 << 20  # compressed bytes zran reads at a time
_PAST_THE_END = 1 << 62

# The index file (format version 1 of indexed_gzip 1.x, native byte order): a header,
# then each point (compressed offset, decompressed offset, bits, has a window), then the
# window of each point that has one.
_HEADER = struct.Struct("=5sBBQQIII")
_POINT = struct.Struct("=QQBB")


def index_spacing(shard_bytes: int, compressed_size: int) -> int:
    """Decompressed bytes between the points of the index built while planning. A reader
    decompresses, before each window it reads, what lies between the point before it and
    its start: half the spacing on average, so the spacing is a fraction of a window or
    shard. Every point holds 32 KB while planning, so the points of a very large file are
    spaced wider: they number at most `_MAX_POINTS` times its compression ratio."""
    return max(_MIN_SPACING, min(shard_bytes, WINDOW) // 8, compressed_size // _MAX_POINTS)


def build_index(f, sink: Callable[[bytes], None], spacing: int) -> bytes | None:
    """The full seek-point index of the gzip file `f` (open for reading, at its start),
    every compressed byte of which is handed to `sink`, in order, on the way: the file is
    read once. None when indexed_gzip cannot index it (a damaged stream; `sink` sees
    all of the file anyway). An exception from `sink` stops the reading and is raised."""
    tee = _Tee(f, sink)
    try:
        handle = IndexedGzipFile(fileobj=tee, spacing=spacing, readbuf_size=_READ)
        try:
            # Seeking past the end builds the whole index, as `build_full_index` does, but
            # lets other threads run meanwhile (planning indexes several files at once).
            handle.raw.seek(_PAST_THE_END)
            out = io.BytesIO()
            handle.export_index(fileobj=out)
            index = out.getvalue()
        finally:
            handle.close()
    except Exception:  # zran's errors; the tee's own are raised below
        index = None
    tee.drain()
    if tee.error is not None:
        raise tee.error
    return index


def window_starts(ranges: Iterable[tuple[int, int]]) -> list[int]:
    """Where the readers of the ranges `[start, end)` (`start > 0`; `end` the stream's size
    for the last) ask for a window: `start - 1`, where a range's first line is looked for,
    then every `WINDOW` bytes up to its end (see `lines._IndexedStream`)."""
    starts = []
    for start, end in ranges:
        starts += range(start - 1, end, WINDOW)
    return starts


def trim_index(index: bytes, offsets: Iterable[int], size: int) -> bytes | None:
    """`index` with only the points needed to start at `offsets` (the last point at or
    before each) and its first and last points; None unless it is a whole index of a
    stream of `size` decompressed bytes (its last point at the end), of a known layout."""
    try:
        magic, version, flags, csize, usize, spacing, window, npoints = _HEADER.unpack_from(index)
        points = [_POINT.unpack_from(index, _HEADER.size + i * _POINT.size) for i in range(npoints)]
    except struct.error:
        return None
    windows_at = _HEADER.size + npoints * _POINT.size
    if (
        magic != b"GZIDX"
        or version != 1
        or not points
        or points[0][1] != 0
        or points[-1][1] != size
        or len(index) != windows_at + window * sum(p[3] for p in points)
    ):
        return None
    keep = {0, npoints - 1}
    starts = [p[1] for p in points]
    for offset in offsets:
        keep.add(_last_at_or_before(starts, offset))
    kept = sorted(keep)
    window_of, at = {}, windows_at
    for i, point in enumerate(points):
        if point[3]:
            window_of[i] = index[at : at + window]
            at += window
    out = [_HEADER.pack(magic, version, flags, csize, usize, spacing, window, len(kept))]
    out += [_POINT.pack(*points[i]) for i in kept]
    out += [window_of[i] for i in kept if points[i][3]]
    return b"".join(out)


def _last_at_or_before(starts: list[int], offset: int) -> int:
    return max(0, bisect_right(starts, offset) - 1)


def index_uri(index_dir: str, uri: str, storage_options: dict | None, layout: Iterable[int]) -> str:
    """Where the index of the file `uri` cut at `layout` goes: a name hashed from its URI,
    size and version (ETag, else modification time) and the cuts, so that planning the
    same file the same way names the same index, and a changed file another."""
    fs, path = filesystem(uri, storage_options)
    info = fs.info(path)
    version = info.get("ETag") or info.get("mtime") or info.get("LastModified")
    key = repr((uri, info.get("size"), str(version), list(layout))).encode()
    return join(index_dir, hashlib.sha256(key).hexdigest()[:32] + SUFFIX)


def open_indexed(f, index: bytes) -> IndexedGzipFile:
    """The gzip file `f` (open for reading) as a decompressed stream that seeks through
    `index`; its `raw` stream decompresses each read from the point before it. Raises
    when the index does not fit the file (another size, an unreadable index)."""
    handle = IndexedGzipFile(fileobj=_Seekable(f), auto_build=False, readbuf_size=_READ)
    try:
        handle.import_index(fileobj=io.BytesIO(index))
    except BaseException:
        handle.close()
        raise
    return handle


class _Tee:
    """`f` as indexed_gzip reads it, each byte also handed to `sink`, once and in order,
    the first time it is read (indexed_gzip reads on from where it was; a seek back would
    re-read without handing again, one forward hands what it skips first). It has no file
    descriptor, so that indexed_gzip reads it through `read`."""

    def __init__(self, f, sink: Callable[[bytes], None]):
        self.f, self.sink = f, sink
        self.pos = 0  # where `f` is
        self.fed = 0  # bytes handed to `sink`
        self.error: Exception | None = None

    def read(self, n: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:  # an error is raised by `build_index`, not inside indexed_gzip
            if self.pos > self.fed:
                self._feed_to(self.pos)
            data = self.f.read(n)
            end = self.pos + len(data)
            if end > self.fed:
                self.sink(data[self.fed - self.pos :])
                self.fed = end
        except Exception as err:
            self.error = err
            return b""
        self.pos = end
        return data

    def _feed_to(self, pos: int) -> None:
        self.f.seek(self.fed)
        while self.fed < pos and (data := self.f.read(min(_READ, pos - self.fed))):
            self.sink(data)
            self.fed += len(data)
        self.f.seek(pos)

    def drain(self) -> None:
        """Hand `sink` the rest of the file (what indexed_gzip left unread)."""
        try:
            self.seek(self.fed)
        except Exception as err:
            self.error = err
        while self.error is None and self.read(_READ):
            pass

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.f.seek(offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class _Seekable:
    """`f` without its file descriptor, which indexed_gzip would otherwise reopen as a C
    stream of its own and never close."""

    def __init__(self, f):
        self.f = f

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True
