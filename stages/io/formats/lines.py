"""Whole lines of a line-based file (JSONL, manifests), plain, gzip or zstd, or of a range
of one: byte offsets in a plain file, offsets in the decompressed stream of a compressed one.

A range `[start, end)` owns every line that *starts* inside it (the Hadoop input-split
rule), so splitting a file loses and duplicates no line. Planning decompresses a large
compressed file once and cuts it at line starts (`compressed_cuts`), so each range stops
at the next one's first byte. Neither gzip nor zstd can start mid-stream, so a range of a
compressed file is read by decompressing from the start of the file and discarding what
comes before it, unless the file is a gzip file planned with an index: `indexed_cuts`
then also builds, in the same pass, a seek-point index of it (`gzip_index`), and the
reader of each later range (`Shard.index`) starts decompressing at the index point
before its range and reads only its range. Without its index (missing, unreadable, of
another file) such a range decompresses from the start, as any other. The first range,
a damaged file (read whole, never split) and zstd files read as before.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import zstandard
from indexed_gzip import NotCoveredError, ZranError
from indexed_gzip.indexed_gzip import CrcError
from isal import isal_zlib

from stages.io.formats import gzip_index
from stages.io.formats.base import compression_of
from stages.io.formats.gzip_index import (
    build_index,
    index_spacing,
    open_indexed,
    trim_index,
    window_starts,
)
from stages.io.fs import filesystem, read_bytes

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
_PROBE = 64 << 10
_COUNT_BLOCK = 16 << 20
_CUT_GRID = 16  # line starts recorded per shard size while planning cuts
_BOM = b"\xef\xbb\xbf"


class LineBlocks:
    """Iterates `(block, first_line, offset)`: blocks of whole lines (about `block_bytes`
    each, the last line possibly without its newline), the 1-based number of each block's
    first line, and the block's byte offset in the file (in the decompressed stream of a
    compressed file). Blank lines are in the blocks, and counted.

    A UTF-8 byte order mark at the start of the file is not part of the first line (only
    the range starting at byte 0 has one); offsets still count it, so
    `stream[offset : offset + len(block)] == block`.

    After iteration, `problem` is `(line, why, raw, offset)` when the file was empty or
    its stream ended early or was corrupt (`line` is the last good line, `raw` the bytes of
    the partial line after it, which start at `offset`), else None. A range that ends
    before the damage does not decompress that far, so only the range that reaches it
    reports it.

    A later range of a gzip file with an index (`Shard.index`) decompresses from the
    index point before it instead of from the start of the file; its blocks are the same.
    """

    def __init__(self, shard, storage_options: dict | None, block_bytes: int):
        self.shard = shard
        self.storage_options = storage_options
        self.block_bytes = block_bytes
        self.problem: tuple[int, str, bytes | None, int] | None = None

    def __iter__(self) -> Iterator[tuple[bytes, int, int]]:
        shard = self.shard
        uri = shard.uri
        line = shard.first_line
        if line is None and shard.start == 0:
            line = 1
        elif line is None:
            line = first_lines(uri, [shard.start], self.storage_options)[0]
        fs, path = filesystem(uri, self.storage_options)
        compression = compression_of(uri)
        pending: list[bytes] = []
        pending_bytes = 0
        carry = b""
        total = 0
        offset = shard.start
        damage: _Damaged | None = None
        with fs.open(path, "rb") as f, _range_stream(f, shard, self.storage_options) as stream:
            try:
                offset, rest = _owned_start(stream, shard.start)
                strip = offset == 0  # a BOM can only lead the file
                for chunk in _plain_chunks(stream, offset, rest, shard.end):
                    total += len(chunk)
                    buf = carry + chunk if carry else chunk
                    if strip:
                        if len(buf) < len(_BOM) and _BOM.startswith(buf):
                            carry = buf
                            continue
                        strip = False
                        if buf.startswith(_BOM):
                            buf = buf[len(_BOM) :]
                            offset += len(_BOM)
                            total -= len(_BOM)
                    cut = buf.rfind(b"\n")
                    if cut < 0:
                        carry = buf
                        continue
                    pending.append(buf[: cut + 1])
                    carry = buf[cut + 1 :]
                    pending_bytes += cut + 1
                    if pending_bytes >= self.block_bytes:
                        block = b"".join(pending)
                        pending, pending_bytes = [], 0
                        yield block, line, offset
                        line += block.count(b"\n")
                        offset += len(block)
            except _Damaged as err:
                damage = err
        if pending:
            block = b"".join(pending)
            yield block, line, offset
            line += block.count(b"\n")
            offset += len(block)
        if damage is not None:
            last = line - 1
            if damage.detail is None:
                why = f"truncated {compression} stream after line {last}"
            else:
                why = f"corrupt {compression} stream after line {last}: {damage.detail}"
            self.problem = (last, why, carry or None, offset)
        elif carry:
            yield carry, line, offset
        elif total == 0 and shard.start == 0:
            self.problem = (0, "empty file", None, 0)


def split_lines(block: bytes) -> list[bytes]:
    """The lines of a block from `LineBlocks` (without their newlines)."""
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def first_lines(uri: str, starts: list[int], storage_options: dict | None) -> list[int]:
    """For each range start `s > 0`, the number of the first line starting at or after `s`
    (in the decompressed stream of a compressed file; a damaged stream counts the lines
    before the damage).

    That line follows the first newline at or after byte `s - 1`, so its number is the count
    of newlines in `[0, s - 1)` plus 2.
    """
    fs, path = filesystem(uri, storage_options)
    compression = compression_of(uri)
    out: list[int] = []
    newlines = 0
    pos = 0
    with fs.open(path, "rb") as f:
        stream = _readable(f, compression)
        for s in starts:
            target = s - 1
            while pos < target:
                try:
                    chunk = stream.read(min(_COUNT_BLOCK, target - pos))
                except _Damaged:
                    chunk = b""
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                pos += len(chunk)
            out.append(newlines + 2)
    return out


def compressed_cuts(
    uri: str, shard_bytes: int, storage_options: dict | None, multiple: int = 1
) -> list[tuple[int, int]]:
    """Where to split a compressed file into ranges of about `shard_bytes` decompressed
    bytes each: `(offset, number)` of the first line of every range after the first, in
    the decompressed stream. Empty when the file decompresses to at most `shard_bytes`,
    is damaged or is missing (a dangling link): it is then read whole, and its reader
    reports the damage or the missing file.

    The file is decompressed once. Its size is known only at the end, so the first line
    starting at or after every multiple of `shard_bytes / _CUT_GRID` is recorded on the
    way; the ranges are then about equal, each within that step of `size / parts`. The
    number of ranges is rounded up to a multiple of `multiple` (the workers that will read
    them), so that they end together.
    """
    finder = _CutFinder(shard_bytes)
    fs, path = filesystem(uri, storage_options)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        try:
            for chunk in _decoded(f, compression_of(uri)):
                finder.feed(chunk)
        except _Damaged:
            return []
    return finder.cuts(multiple)


def indexed_cuts(
    uri: str, shard_bytes: int, storage_options: dict | None, multiple: int = 1
) -> tuple[list[tuple[int, int]], bytes | None]:
    """The `compressed_cuts` of a gzip file and, when it is split, the seek-point index
    from which each range's reader starts (`gzip_index`): the points before each range
    and before each window its reader asks for. The file is read once for both (ISA-L
    finds the cuts and any damage, zran builds the index from the same bytes). The index
    is None when the file is not split or zran cannot index it (its ranges then
    decompress from the start of the file)."""
    finder = _CutFinder(shard_bytes)
    inflater = _Inflater(*_GZIP)

    def take(raw: bytes) -> None:
        for chunk in inflater.feed(raw):
            finder.feed(chunk)

    fs, path = filesystem(uri, storage_options)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        return [], None
    with f:
        try:
            index = build_index(f, take, index_spacing(shard_bytes, fs.size(path)))
            inflater.finish()
        except _Damaged:
            return [], None
    cuts = finder.cuts(multiple)
    if not cuts or index is None:
        return cuts, None
    starts = [offset for offset, _ in cuts]
    ranges = zip(starts, [*starts[1:], finder.size], strict=True)
    return cuts, trim_index(index, window_starts(ranges), finder.size)


class _CutFinder:
    """Fed a decompressed stream in order, records the first line starting at or after
    every multiple of `shard_bytes / _CUT_GRID` (`found`: offset and number) and, at the
    end, picks the cuts (see `compressed_cuts`)."""

    def __init__(self, shard_bytes: int):
        self.shard_bytes = shard_bytes
        self.step = max(1, shard_bytes // _CUT_GRID)
        self.found: list[tuple[int, int]] = []
        self.newlines = 0  # before `size`
        self.size = 0  # bytes fed so far
        self.grid = self.step  # the next multiple of `step` whose first line is not found

    def feed(self, chunk: bytes) -> None:
        pos, step = self.size, self.step
        counted, seen = 0, 0  # newlines in chunk[:counted]
        # The first line at or after `grid` follows the first newline at or after
        # `grid - 1`; every multiple of `step` up to that line's start shares it.
        while (at := chunk.find(b"\n", max(self.grid - 1 - pos, 0))) >= 0:
            seen += chunk.count(b"\n", counted, at)
            counted = at
            start = pos + at + 1
            self.found.append((start, self.newlines + seen + 2))
            self.grid = (start // step + 1) * step
        self.newlines += seen + chunk.count(b"\n", counted)
        self.size += len(chunk)

    def cuts(self, multiple: int) -> list[tuple[int, int]]:
        size, found = self.size, self.found
        if size <= self.shard_bytes:
            return []
        parts = math.ceil(math.ceil(size / self.shard_bytes) / multiple) * multiple
        cuts: list[tuple[int, int]] = []
        for k in range(1, parts):
            i = bisect_left(found, size * k // parts, key=lambda cut: cut[0])
            if i < len(found) and found[i][0] < size and (not cuts or found[i][0] > cuts[-1][0]):
                cuts.append(found[i])
        return cuts


class _Damaged(Exception):
    """A compressed stream ended early (`detail` None) or is corrupt."""

    def __init__(self, detail: str | None = None):
        super().__init__(detail)
        self.detail = detail


def _owned_start(f, start: int) -> tuple[int, bytes]:
    """(offset of the first line starting at or after `start`, the bytes read past it).

    That line follows the first newline at or after byte `start - 1`; the file is left
    positioned after the returned bytes (at the end of the file when no line starts)."""
    if start <= 0:
        return 0, b""
    f.seek(start - 1)
    pos = start - 1
    while True:
        probe = f.read(_PROBE)
        if not probe:
            return pos, b""
        i = probe.find(b"\n")
        if i >= 0:
            return pos + i + 1, probe[i + 1 :]
        pos += len(probe)


def _plain_chunks(f, pos: int, rest: bytes, end: int | None) -> Iterator[bytes]:
    """Bytes of every line starting in `[pos, end)`, the last one read to its newline;
    `rest`: the bytes from `pos` already read (see `_owned_start`)."""
    if end is None:
        if rest:
            yield rest
        while chunk := f.read(_CHUNK):
            yield chunk
        return
    last = b"\n"
    while pos < end:
        if rest:
            chunk, rest = rest, b""
        else:
            chunk = f.read(min(_CHUNK, end - pos))
            if not chunk:
                return
        if pos + len(chunk) <= end:
            yield chunk
            pos += len(chunk)
            last = chunk[-1:]
            continue
        inside, over = chunk[: end - pos], chunk[end - pos :]
        if inside:
            yield inside
            last = inside[-1:]
        if last == b"\n":
            return
        i = over.find(b"\n")
        if i >= 0:
            yield over[: i + 1]
            return
        yield over
        break
    if last == b"\n":
        return
    # Finish the line that crosses `end`.
    while probe := f.read(_PROBE):
        i = probe.find(b"\n")
        if i >= 0:
            yield probe[: i + 1]
            return
        yield probe


_GZIP = (lambda: isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16), isal_zlib.error)


def _decoded(f, compression: str) -> Iterator[bytes]:
    """The decompressed bytes of a gzip or zstd file (see `_decoded_chunks`)."""
    if compression == "gzip":
        # ISA-L inflates about 3x faster than zlib, and releases the GIL while it works.
        return _decoded_chunks(f, *_GZIP)
    dctx = zstandard.ZstdDecompressor()
    return _decoded_chunks(f, dctx.decompressobj, zstandard.ZstdError)


def _readable(f, compression: str | None):
    """`f` when it is plain, else its decompressed stream read as a file."""
    return f if compression is None else _DecodedStream(_decoded(f, compression))


class _DecodedStream:
    """A decompressed stream read as a file by `_owned_start`, `_plain_chunks` and
    `first_lines`: `read(n)` gives at most `n` bytes (empty at the end), `seek` moves
    forward only, decompressing and discarding. Both raise `_Damaged` where the stream
    is damaged."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""  # decompressed, not yet read
        self._pos = 0  # stream offset of `_buf`

    def read(self, n: int) -> bytes:
        if not self._buf:
            self._buf = next(self._chunks, b"")
        out, self._buf = self._buf[:n], self._buf[n:]
        self._pos += len(out)
        return out

    def seek(self, pos: int) -> None:
        while self._pos + len(self._buf) < pos:
            self._pos += len(self._buf)
            self._buf = next(self._chunks, b"")
            if not self._buf:
                return
        self._buf = self._buf[pos - self._pos :]
        self._pos = pos


def _decoded_chunks(f, new_decoder, error: type[Exception]) -> Iterator[bytes]:
    """Decompressed bytes of a stream of one or more members (gzip) or frames (zstd).

    Everything decoded before damage is yielded first; then `_Damaged` is raised: with no
    detail when the input ends inside a member, with the decoder's message when corrupt.
    """
    inflater = _Inflater(new_decoder, error)
    while raw := f.read(_CHUNK // 4):
        yield from inflater.feed(raw)
    inflater.finish()


class _Inflater:
    """Decompresses a stream of one or more members (gzip) or frames (zstd) handed to it
    in pieces: `feed` yields what each piece decodes to, `finish` (at the end of the
    input) raises `_Damaged` when it ends inside a member; `feed` raises it, with the
    decoder's message, where the stream is corrupt."""

    def __init__(self, new_decoder: Callable, error: type[Exception]):
        self.new_decoder, self.error = new_decoder, error
        self.decoder = new_decoder()
        self.inside = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        while raw:
            if not self.inside and not raw.strip(b"\0"):
                break  # zero padding after the last member, as `gzip` writes on tapes
            try:
                out = self.decoder.decompress(raw)
            except self.error as err:
                raise _Damaged(str(err)) from None
            self.inside = True
            if out:
                yield out
            if self.decoder.eof:
                raw = self.decoder.unused_data
                self.decoder = self.new_decoder()
                self.inside = False
            else:
                raw = b""

    def finish(self) -> None:
        if self.inside:
            raise _Damaged()


@contextmanager
def _range_stream(f, shard, storage_options: dict | None) -> Iterator:
    """What the reader of `shard` reads its lines from: the file `f` when it is plain, else
    its decompressed stream; from the index point before the range when the shard is a
    later range of a gzip file with an index, else from the start of the file (also when
    the index cannot be used: a warning says why)."""
    compression = compression_of(shard.uri)
    handle = None
    if shard.index is not None and shard.start > 0 and compression == "gzip":
        try:
            handle = open_indexed(f, read_bytes(shard.index, storage_options))
        except Exception as err:
            log.warning(
                "%s: cannot use the index %s (%s); decompressing from the start of the file",
                shard.uri,
                shard.index,
                err,
            )
            f.seek(0)
    if handle is None:
        yield _readable(f, compression)
        return
    try:
        yield _IndexedStream(handle, shard.end)
    finally:
        handle.close()


class _IndexedStream:
    """A range of a gzip file read through its index (`gzip_index.open_indexed`) as a file
    for `_owned_start` and `_plain_chunks`. Each read of indexed_gzip decompresses from
    the index point before it, so the stream asks for `gzip_index.WINDOW` bytes at a time
    (at most to `end`, where the range's last line ends; planning kept a point before
    each such window) and serves reads from them. A corrupt stream raises `_Damaged`; an
    error of the file itself (a network error) is raised as it is."""

    def __init__(self, handle, end: int | None):
        self._handle = handle  # owns `_raw`: it is closed when the handle goes
        self._raw = handle.raw
        self._end = end
        self._buf = b""
        self._at = 0  # read up to here in `_buf`
        self._pos = 0  # stream offset of `_buf[_at]`

    def seek(self, pos: int) -> None:
        self._buf, self._at, self._pos = b"", 0, pos

    def read(self, n: int) -> bytes:
        if self._at >= len(self._buf):
            window = gzip_index.WINDOW
            ahead = window if self._end is None else min(window, self._end - self._pos)
            try:
                self._raw.seek(self._pos)
                self._buf = self._raw.read(max(n, ahead))
            except ZranError as err:
                if err.__cause__ is not None:
                    raise err.__cause__ from None
                raise _Damaged(str(err)) from None
            except (CrcError, NotCoveredError) as err:
                raise _Damaged(str(err)) from None
            self._at = 0
        out = self._buf[self._at : self._at + n]
        self._at += len(out)
        self._pos += len(out)
        return out
