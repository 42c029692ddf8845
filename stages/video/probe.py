"""`VideoProbe`: what a video is, and whether it can be used at all.

Each row names a video by `video_uri` (local or s3://; opened as a stream, never read
whole) or carries its bytes (`video`, or a WebDataset member such as `mp4`). The probe
opens the container with PyAV, demuxes every packet of the video stream (cheap: no
decoding) and decodes the first frames, then adds:

- `video_duration` (seconds, from the last packet's end: the true length, not the header's
  claim), `video_frames` (packets of the video stream), `video_fps`, `video_width`,
  `video_height`, `video_codec` (FFmpeg's decoder name: `h264`, `vp9`, `av1`...),
  `video_bit_rate` (bits/s of the container), `video_has_audio`, `video_audio_codec`;
  `video_declared_duration` (the header's claim, for the report).

A video that cannot be used goes to the quarantine with the reason, never skipped
silently: no such file, not a container FFmpeg can read, no video stream, a codec this
build cannot decode (named: NeMo Curator's users saw H.264 inputs skipped without a word
when ffprobe had no software decoder), no decodable frame, or truncated: the packets stop
before `truncated_tolerance` of the duration the header declares (a download cut short
whose index survived).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Resources, Validator
from stages.io.formats.media import declared_duration
from stages.io.quarantine import Record, RowPlaces, quarantine_table
from stages.video.frames import URI_COLUMN, VideoError, codec_name, open_video, video_stream

BYTES_COLUMNS = ("video", "mp4", "webm", "mkv", "mov", "avi", "m4v")
PROBED = {
    "video_duration": pa.float64(),
    "video_declared_duration": pa.float64(),
    "video_frames": pa.int64(),
    "video_fps": pa.float64(),
    "video_width": pa.int32(),
    "video_height": pa.int32(),
    "video_codec": pa.string(),
    "video_bit_rate": pa.int64(),
    "video_has_audio": pa.bool_(),
    "video_audio_codec": pa.string(),
}
FIRST_FRAMES = 3  # decoded to prove the codec works on this file


def video_source(batch: pa.Table, i: int, cache: dict | None = None):
    """Row `i`'s video: its bytes when the row carries them, else its `video_uri`."""
    cache = {} if cache is None else cache
    for name in (*BYTES_COLUMNS, URI_COLUMN):
        if name not in batch.column_names:
            continue
        if name not in cache:
            cache[name] = batch.column(name).to_pylist()
        value = cache[name][i]
        if value is not None:
            return value
    return None


class VideoProbe(Validator):
    """Probe every video (see the module doc); bad ones are quarantined with the reason.

    `truncated_tolerance`: a video whose packets cover less than this share of the duration
    its header declares is truncated (default 0.9: container headers are often a frame or
    two off, never a tenth).
    """

    nemo_equivalent: ClassVar[str] = "VideoReaderStage"

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 1

    def __init__(self, storage_options: dict | None = None, truncated_tolerance: float = 0.9):
        if not 0 < truncated_tolerance <= 1:
            raise ValueError(f"truncated_tolerance={truncated_tolerance}: must be in (0, 1]")
        self.storage_options = storage_options
        self.truncated_tolerance = truncated_tolerance

    def check(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        places = RowPlaces(batch)
        good = np.zeros(batch.num_rows, dtype=bool)
        facts: list[dict] = []
        records = []
        cache: dict = {}
        for i in range(batch.num_rows):
            source = video_source(batch, i, cache)
            if source is None:
                why = f"no video: no {URI_COLUMN!r} and no video bytes"
            else:
                try:
                    facts.append(self.probe(source))
                    good[i] = True
                    continue
                except VideoError as err:
                    why = str(err)
            raw = source if isinstance(source, bytes) else None
            records.append(Record(places.source(i), places.line(i), places.reason(i, why), raw))
        out = batch.filter(pa.array(good, pa.bool_()))
        for name, kind in PROBED.items():
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, pa.array([f[name] for f in facts], kind))
        return out, quarantine_table(records)

    def probe(self, source) -> dict:
        """The facts of one video (bytes or URI); raises `VideoError` saying why it is
        unusable."""
        import av

        with open_video(source, self.storage_options) as container:
            stream = video_stream(container)
            codec = codec_name(stream)
            base = float(stream.time_base or 0)
            declared = declared_duration(container, stream)
            first = last_end = None
            count = 0
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    count += 1
                    start = packet.pts * base
                    first = start if first is None else min(first, start)
                    end = start + (packet.duration or 0) * base
                    last_end = end if last_end is None else max(last_end, end)
            except av.FFmpegError as err:
                raise VideoError(
                    f"truncated or corrupt {codec} stream after {count} packets: {err}"
                ) from err
            if not count:
                raise VideoError(f"no video packets ({codec} stream is empty)")
            duration = max(0.0, (last_end or 0.0) - (first or 0.0))
            if declared and duration < self.truncated_tolerance * declared:
                raise VideoError(
                    f"truncated: packets cover {duration:.2f} s of the {declared:.2f} s "
                    "the header declares"
                )
            audio = container.streams.audio
            facts = {
                "video_duration": duration,
                "video_declared_duration": declared,
                "video_frames": count,
                "video_fps": float(stream.average_rate or stream.guessed_rate or 0) or None,
                "video_width": stream.codec_context.width,
                "video_height": stream.codec_context.height,
                "video_codec": codec,
                "video_bit_rate": container.bit_rate or None,
                "video_has_audio": bool(audio),
                "video_audio_codec": audio[0].codec_context.name if audio else None,
            }
        self._decodes(source, codec)
        return facts

    def _decodes(self, source, codec: str) -> None:
        import av

        with open_video(source, self.storage_options) as container:
            stream = video_stream(container)
            decoded = 0
            try:
                for _ in container.decode(stream):
                    decoded += 1
                    if decoded >= FIRST_FRAMES:
                        return
            except av.FFmpegError as err:
                raise VideoError(f"cannot decode its {codec} video: {err}") from err
            if not decoded:
                raise VideoError(f"no decodable frame in its {codec} video")
