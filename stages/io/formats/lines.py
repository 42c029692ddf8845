"""Whole lines of a line-based file (JSONL, manifests): plain, gzip or zstd, or a byte
range of a plain file.

A range `[start, end)` owns every line that *starts* inside it (the Hadoop input-split
rule), so splitting a file loses and duplicates no line.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import zstandard

from stages.io.formats.base import compression_of
from stages.io.fs import filesystem

_CHUNK = 8 << 20
_PROBE = 64 << 10
_COUNT_BLOCK = 16 << 20
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
    the partial line after it, which start at `offset`), else None.
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
        damage: _Damaged | None = None
        with fs.open(path, "rb") as f:
            if compression == "gzip":
                chunks, offset = _gzip_chunks(f), 0
            elif compression == "zstd":
                chunks, offset = _zstd_chunks(f), 0
            else:
                offset, rest = _owned_start(f, shard.start)
                chunks = _plain_chunks(f, offset, rest, shard.end)
            strip = offset == 0  # a BOM can only lead the file
            try:
                for chunk in chunks:
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
    """For each range start `s > 0`, the number of the first line starting at or after `s`.

    That line follows the first newline at or after byte `s - 1`, so its number is the count
    of newlines in `[0, s - 1)` plus 2.
    """
    fs, path = filesystem(uri, storage_options)
    out: list[int] = []
    newlines = 0
    pos = 0
    with fs.open(path, "rb") as f:
        for s in starts:
            target = s - 1
            while pos < target:
                chunk = f.read(min(_COUNT_BLOCK, target - pos))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                pos += len(chunk)
            out.append(newlines + 2)
    return out


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


def _gzip_chunks(f) -> Iterator[bytes]:
    return _decoded_chunks(f, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), zlib.error)


def _zstd_chunks(f) -> Iterator[bytes]:
    dctx = zstandard.ZstdDecompressor()
    return _decoded_chunks(f, dctx.decompressobj, zstandard.ZstdError)


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
