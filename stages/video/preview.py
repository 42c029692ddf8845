"""Animated WebP previews of video clips, for browsing a curated dataset (NeMo Curator's
`PreviewStage`, which runs ffmpeg's libwebp encoder; here PyAV decodes and Pillow encodes).
"""

from __future__ import annotations

import io
import logging
from typing import ClassVar

import pyarrow as pa

from stages.base import Resources, Stage
from stages.video.frames import CLIP_COLUMN, VideoError, frames, open_video, video_stream

log = logging.getLogger(__name__)

PREVIEW = "preview"


class PreviewStage(Stage):
    """Adds `preview` (binary: an animated WebP, looping) to clip rows: the clip's frames at
    `target_fps` a second (the first frame at or after each tick, so a clip shorter than
    one tick gives a one-frame WebP), scaled to `target_height` pixels high with the width
    that keeps the aspect ratio (smaller clips are scaled up, as NeMo Curator's are), each
    shown for 1 / `target_fps` seconds. A clip that cannot be decoded gets a null preview;
    no row is removed.

    - `quality`: 0 (smallest) to 100 (best), lossy WebP;
    - `compression_level`: 0 (fastest) to 6 (slowest, smallest file) encoder effort, the
      same setting as ffmpeg's `-compression_level` for libwebp that NeMo Curator passes;
    - `num_cpus_per_worker`: CPUs each worker asks for.

    NeMo Curator previews each caption window; here a preview covers the whole clip.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 16

    def __init__(
        self,
        target_fps: float = 1.0,
        target_height: int = 240,
        compression_level: int = 6,
        quality: int = 50,
        num_cpus_per_worker: float = 1.0,
        clip_column: str = CLIP_COLUMN,
        verbose: bool = False,
    ):
        if not target_fps > 0:
            raise ValueError(f"target_fps must be greater than 0, got {target_fps}")
        if target_height < 1:
            raise ValueError(f"target_height must be at least 1, got {target_height}")
        if not 0 <= compression_level <= 6:
            raise ValueError(f"compression_level must be 0 to 6, got {compression_level}")
        if not 0 <= quality <= 100:
            raise ValueError(f"quality must be 0 to 100, got {quality}")
        self.target_fps = target_fps
        self.target_height = target_height
        self.compression_level = compression_level
        self.quality = quality
        self.clip_column = clip_column
        self.verbose = verbose
        if num_cpus_per_worker != type(self).resources.cpus:
            self.resources = Resources(cpus=num_cpus_per_worker)

    def process(self, batch: pa.Table) -> pa.Table:
        if self.clip_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.clip_column!r} "
                f"(columns: {batch.column_names})"
            )
        previews = []
        for row, data in enumerate(batch.column(self.clip_column).to_pylist()):
            try:
                previews.append(self.preview(data))
            except VideoError as err:
                if self.verbose:
                    log.info("%s: row %d: no preview: %s", self.stage_name, row, err)
                previews.append(None)
        if PREVIEW in batch.column_names:
            batch = batch.drop_columns([PREVIEW])
        return batch.append_column(PREVIEW, pa.array(previews, pa.binary()))

    def preview(self, data: bytes | None) -> bytes:
        """The animated WebP of one clip's bytes; raises VideoError when it has no frame."""
        from PIL import Image

        if not data:
            raise VideoError("no clip bytes")
        with open_video(data) as container:
            stream = video_stream(container)
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height:
                raise VideoError("video stream without a frame size")
            size = (max(1, round(width * self.target_height / height)), self.target_height)
            pictures = [
                Image.fromarray(frame.pixels)
                for frame in frames(container, fps=self.target_fps, size=size)
            ]
        if not pictures:
            raise VideoError("no decodable frame")
        buffer = io.BytesIO()
        pictures[0].save(
            buffer,
            format="WEBP",
            save_all=True,
            append_images=pictures[1:],
            duration=round(1000 / self.target_fps),
            loop=0,
            lossless=False,
            quality=self.quality,
            method=self.compression_level,
        )
        return buffer.getvalue()


__all__ = ["PREVIEW", "PreviewStage"]
