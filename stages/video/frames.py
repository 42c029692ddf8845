"""Opening videos and reading their frames with PyAV: the pieces every video stage uses.

A video travels by URI (`video_uri`, local or s3://, opened as a stream through fsspec,
never read whole into a table); a clip travels as its encoded bytes (`clip`, an .mp4 of a
few seconds). `open_video` takes either.

- `frames(source, fps=None, size=None, start=None, end=None)` yields `Frame`s (RGB
  `uint8` pixels of shape (height, width, 3), their time in seconds, their index), every
  frame or `fps` of them a second (the first frame at or after each tick), resized to
  `size` = (width, height) when given, between `start` and `end` seconds.
- `sample(data, fps=1.0, size=None, limit=None)`: a clip's frames at `fps` as one array
  (at least one frame for any non-empty clip), what the model stages score.

Errors: `VideoError` with the reason (PyAV's message), for the caller to quarantine.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CLIP_COLUMN = "clip"
URI_COLUMN = "video_uri"


class VideoError(Exception):
    """A video or clip that cannot be opened or decoded; the message says why."""


@dataclass(frozen=True)
class Frame:
    pixels: np.ndarray  # (height, width, 3) uint8 RGB
    time: float  # seconds from the start of the stream
    index: int  # frame number in decode order from the first decoded frame


def open_video(source: bytes | str, storage_options: dict | None = None, **options):
    """A PyAV input container for clip bytes or a video URI (a local path or any fsspec
    URI, streamed). The caller closes it (`with open_video(...) as container:`)."""
    import av

    try:
        if isinstance(source, bytes | bytearray | memoryview):
            return av.open(io.BytesIO(bytes(source)), "r", options=options)
        if "://" in source and not source.startswith("file://"):
            from stages.io.fs import filesystem

            fs, path = filesystem(source, storage_options)
            handle = fs.open(path, "rb", block_size=4 << 20)
            try:
                return _Streamed(av.open(handle, "r", options=options), handle)
            except BaseException:
                handle.close()
                raise
        return av.open(source.removeprefix("file://"), "r", options=options)
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(_reason(err)) from err


class _Streamed:
    """A container read through an fsspec file: closing it closes the file too."""

    def __init__(self, container, handle):
        self._container, self._handle = container, handle

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._handle.close()


def _reason(err: Exception) -> str:
    """FFmpeg's or the OS's words, without the errno and path the caller already names."""
    if isinstance(err, FileNotFoundError):
        return "no such file"
    text = getattr(err, "strerror", None) or str(err).strip() or type(err).__name__
    if "Invalid data found" in text:
        text = f"not a video FFmpeg can read ({text}; a file cut short loses its index)"
    return text.replace("\n", " ")[:300]


def codec_name(stream) -> str:
    """The codec's name (`h264`, `vp9`, `av1`), not the decoder's (`libdav1d`)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def video_stream(container):
    if not container.streams.video:
        raise VideoError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def frames(
    source,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    start: float | None = None,
    end: float | None = None,
    storage_options: dict | None = None,
    export_mvs: bool = False,
) -> Iterator[Frame]:
    """The frames of a video or clip (see the module doc). `source`: bytes, a URI or an
    open container. Seeks to the keyframe before `start` and decodes from there."""
    import av

    owned = not hasattr(source, "streams")
    container = open_video(source, storage_options) if owned else source
    try:
        stream = video_stream(container)
        if export_mvs:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        base = float(stream.time_base) if stream.time_base else 0.0
        origin = stream.start_time * base if stream.start_time is not None else 0.0
        if start:
            container.seek(int((start + origin) / base) if base else 0, stream=stream)
        step = 1.0 / fps if fps else None
        next_tick = start or 0.0
        index = 0
        for frame in container.decode(stream):
            time = (frame.pts * base - origin) if frame.pts is not None else index / _rate(stream)
            if start is not None and time < start - 1e-6:
                continue
            if end is not None and time >= end - 1e-6:
                break
            if step is None or time >= next_tick - 1e-6:
                if step is not None:
                    next_tick += step * max(1, int((time - next_tick) / step) + 1)
                yield Frame(_pixels(frame, size), float(time), index)
            index += 1
    except av.FFmpegError as err:
        raise VideoError(_reason(err)) from err
    finally:
        if owned:
            container.close()


def _rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or 24
    return float(rate)


def _pixels(frame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    width, height = size
    return frame.to_ndarray(width=width, height=height, format="rgb24")


def sample(
    data: bytes,
    fps: float = 1.0,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """A clip's frames at `fps` (uint8, (n, height, width, 3)); a clip shorter than one
    tick gives its first frame. Raises `VideoError` for a clip with no decodable frame."""
    picked = []
    for frame in frames(data, fps=fps, size=size):
        picked.append(frame.pixels)
        if limit is not None and len(picked) >= limit:
            break
    if not picked:
        raise VideoError("no decodable frame")
    return np.stack(picked)
