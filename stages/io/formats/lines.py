"""Whole lines of a line-based file (JSONL, manifests), plain, gzip or zstd, or of a range
of one: byte offsets in a plain file, offsets in the decompressed stream of a compressed one.

A range `[start, end)` owns every line that *starts* inside it (the Hadoop input-split
rule), so splitting a file loses and duplicates no line. A range of a compressed file is
read by decompressing from the start of the file and discarding what comes before it
(neither gzip nor zstd can start mid-stream), so planning cuts such a file at line starts
(`compressed_cuts`) and each range stops at the next one's first byte.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator

import zstandard
from isal import isal_zlib

from stages.io.formats.base import compression_of
from stages.io.fs import filesystem

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
        with fs.open(path, "rb") as f:
            stream = _readable(f, compression)
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
    step = max(1, shard_bytes // _CUT_GRID)
    found: list[tuple[int, int]] = []
    newlines = 0  # before `pos`
    pos = 0  # offset of the chunk in the stream
    grid = step  # the next multiple of `step` whose first line is not yet found
    fs, path = filesystem(uri, storage_options)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        try:
            for chunk in _decoded(f, compression_of(uri)):
                counted, seen = 0, 0  # newlines in chunk[:counted]
                # The first line at or after `grid` follows the first newline at or after
                # `grid - 1`; every multiple of `step` up to that line's start shares it.
                while (at := chunk.find(b"\n", max(grid - 1 - pos, 0))) >= 0:
                    seen += chunk.count(b"\n", counted, at)
                    counted = at
                    start = pos + at + 1
                    found.append((start, newlines + seen + 2))
                    grid = (start // step + 1) * step
                newlines += seen + chunk.count(b"\n", counted)
                pos += len(chunk)
        except _Damaged:
            return []
    size = pos
    if size <= shard_bytes:
        return []
    parts = math.ceil(math.ceil(size / shard_bytes) / multiple) * multiple
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


def _decoded(f, compression: str) -> Iterator[bytes]:
    """The decompressed bytes of a gzip or zstd file (see `_decoded_chunks`)."""
    if compression == "gzip":
        # ISA-L inflates about 3x faster than zlib, and releases the GIL while it works.
        return _decoded_chunks(
            f, lambda: isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16), isal_zlib.error
        )
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
    decoder = new_decoder()
    inside = False
    while raw := f.read(_CHUNK // 4):
        while raw:
            if not inside and not raw.strip(b"\0"):
                break  # zero padding after the last member, as `gzip` writes on tapes
            try:
                out = decoder.decompress(raw)
            except error as err:
                raise _Damaged(str(err)) from None
            inside = True
            if out:
                yield out
            if decoder.eof:
                raw = decoder.unused_data
                decoder = new_decoder()
                inside = False
            else:
                raw = b""
    if inside:
        raise _Damaged()
