"""Test videos, generated with PyAV: small (320x240 or less), deterministic (seeded NumPy
generators, fixed encoder settings) and a few seconds long.

A video is a list of `Span`s, each a few seconds of one scene:

- `Span(seconds, scene, motion)`: `scene` picks a seeded picture (a textured pattern of
  its own colours), `motion` the pixels it moves per frame (0: perfectly still);
- a hard cut is a span following another with a different scene;
- `dissolve` > 0 on a span: the first that many seconds blend linearly from the previous
  span's last frame into this one (a gradual transition).

Writers: `write_video(path, spans, ...)` (codec libx264, libvpx-vp9 or libsvtav1; a
container by suffix: .mp4, .mkv, .webm, .mov, .avi; optional audio track: a 440 Hz tone),
`truncated(path)` (the first half of a file's bytes). `CUTS` gives the frame of each
hard cut of `standard_spans()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Span:
    seconds: float
    scene: int
    motion: float = 3.0
    dissolve: float = 0.0


def scene_picture(scene: int, width: int, height: int) -> np.ndarray:
    """A seeded picture twice the frame size (so it can pan): smooth colour blobs over a
    base colour of the scene's own (hues a golden angle apart, so consecutive scenes
    differ as a real cut does) with stripes of a period of its own."""
    import colorsys

    rng = np.random.default_rng(1000 + scene)
    h, w = 2 * height, 2 * width
    hue = (scene * 0.381966) % 1.0
    base = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.55 + 0.35 * (scene % 2))) * 255
    small = rng.normal(0, 45, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
    blobs = np.kron(small, np.ones((16, 16, 1), np.float32))[:h, :w]
    y, x = np.mgrid[0:h, 0:w]
    period = 8 + 6 * (scene % 5)
    stripes = np.sin((x + (scene % 3) * y) * 2 * np.pi / period)[..., None]
    picture = base + blobs + 30 * stripes
    return picture.clip(0, 255).astype(np.uint8)


def render(spans: list[Span], fps: int = 24, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """The frames of `spans`, uint8 of shape (frames, height, width, 3)."""
    width, height = size
    frames: list[np.ndarray] = []
    for span in spans:
        picture = scene_picture(span.scene, width, height)
        count = round(span.seconds * fps)
        blend = round(span.dissolve * fps)
        previous = frames[-1] if frames else None
        for i in range(count):
            shift = int(round(span.motion * i))
            dx = shift % width
            dy = (shift // 2) % height
            frame = picture[dy : dy + height, dx : dx + width]
            if previous is not None and i < blend:
                alpha = (i + 1) / (blend + 1)
                frame = (alpha * frame + (1 - alpha) * previous).astype(np.uint8)
            frames.append(np.ascontiguousarray(frame))
    return np.stack(frames)


def write_frames(
    path: Path,
    frames: np.ndarray,
    fps: int = 24,
    codec: str = "libx264",
    audio: bool = False,
    gop: int = 48,
) -> Path:
    """Encode `frames` into `path` (container by suffix); returns the path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "23", "threads": "1"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "35", "b": "0"}
        elif codec == "libsvtav1":
            stream.options = {"preset": "12", "crf": "40"}
        sound = None
        if audio:
            sound = container.add_stream("aac" if path.suffix != ".webm" else "libopus", 48000)
            sound.layout = "mono"
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _write_tone(container, sound, len(frames) / fps)
    return path


def _write_tone(container, stream, seconds: float, rate: int = 48000) -> None:
    import av

    samples = int(seconds * rate)
    t = np.arange(samples) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    size = 1024 if stream.codec_context.frame_size == 0 else stream.codec_context.frame_size
    for start in range(0, samples, size):
        chunk = tone[start : start + size]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_video(
    path: Path,
    spans: list[Span],
    fps: int = 24,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    return write_frames(path, render(spans, fps, size), fps, codec, audio)


def standard_spans() -> list[Span]:
    """12 s: scene 0 (3 s), hard cut, scene 1 (3 s), hard cut, scene 2 (3 s) whose last
    part is perfectly still, then scene 3 dissolving in over 1 s (3 s)."""
    return [
        Span(3.0, 0),
        Span(3.0, 1),
        Span(3.0, 2, motion=0.0),
        Span(3.0, 3, dissolve=1.0),
    ]


CUTS = (72, 144)  # frames of standard_spans()' hard cuts at 24 fps (3 s and 6 s)


def truncated(source: Path, target: Path, keep: float = 0.5) -> Path:
    """The first `keep` of `source`'s bytes in `target`: a download cut short."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * keep)])
    return Path(target)
