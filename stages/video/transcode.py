"""`ClipTranscodingStage`: cut each clip out of its video, frame-accurately, and re-encode
it as a small standalone .mp4 (or .webm for VP9) in the `clip` column.

One decode pass per video serves all its clips (rows are grouped by `video_uri`): frames
are counted from the first decoded one, and frame k goes to every clip whose
[`start_frame`, `end_frame`) holds k, so a clip has exactly `end_frame - start_frame`
frames and its decoded duration is its recorded `end - start` (no keyframe snapping, as
`ffmpeg -ss ... -c copy` would do). Decoding stops after the video's last clip.

Encoders: whatever the PyAV build has; `libx264` by default (NeMo Curator's default is
`h264_nvenc`, a GPU encoder, used here when asked for and present), `libvpx-vp9`,
`libsvtav1`, `mpeg4`. `target_height` scales (aspect kept, even sizes), `target_fps`
resamples by dropping or repeating frames; `keep_audio` copies the clip's stretch of the
first audio track, re-encoded to AAC (Opus in WebM).

Columns set per clip: `clip` (bytes), `extension` (`mp4` or `webm`), `codec`, `width`,
`height`, `fps`, `frames`, `clip_bytes`. A video that fails to decode part-way leaves its
clips there were not enough frames for with a null `clip` (`clip_error` says why); the
flow's `ClipValidator` quarantines them.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Resources, Stage
from stages.video.frames import VideoError, codec_name, open_video, video_stream

WEBM_ENCODERS = ("libvpx-vp9", "libvpx")
SOURCE_COLUMNS = ("video", "mp4", "webm", "mkv", "mov", "avi", "m4v")


class ClipTranscodingStage(Stage):
    """See the module doc. `encoder_threads`: threads per encoder (1: workers, not
    threads, use the cores); `crf` and `preset` pass to x264 / x265-style encoders."""

    nemo_equivalent: ClassVar[str] = "ClipTranscodingStage"

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        encoder: str = "libx264",
        encoder_threads: int = 1,
        target_height: int | None = None,
        target_fps: float | None = None,
        keep_audio: bool = False,
        crf: int = 23,
        preset: str = "veryfast",
        storage_options: dict | None = None,
    ):
        import av

        if encoder not in av.codecs_available:
            have = sorted(c for c in av.codecs_available if c in _KNOWN)
            raise ValueError(f"encoder={encoder!r}: not in this PyAV build (it has {have})")
        self.encoder = encoder
        self.encoder_threads = encoder_threads
        self.target_height = target_height
        self.target_fps = target_fps
        self.keep_audio = keep_audio
        self.crf = crf
        self.preset = preset
        self.storage_options = storage_options
        self.resources = Resources(cpus=1.0, gpus=0.0)

    def process(self, batch: pa.Table) -> pa.Table:
        from stages.video.probe import video_source

        n = batch.num_rows
        results: list[dict | None] = [None] * n
        errors: list[str | None] = [None] * n
        starts = batch.column("start_frame").to_numpy(zero_copy_only=False)
        ends = batch.column("end_frame").to_numpy(zero_copy_only=False)
        groups: dict[object, list[int]] = {}
        cache: dict = {}
        for i in range(n):
            groups.setdefault(_key(batch, i, cache), []).append(i)
        for rows in groups.values():
            source = video_source(batch, rows[0], cache)
            try:
                done = self._cut(source, [(i, int(starts[i]), int(ends[i])) for i in rows])
            except VideoError as err:
                done = {}
                for i in rows:
                    errors[i] = f"cannot cut the clip: {err}"
            for i, found in done.items():
                results[i] = found
            for i in rows:
                if results[i] is None and errors[i] is None:
                    errors[i] = "the video ended before the clip's last frame"
        out = batch.drop_columns([c for c in SOURCE_COLUMNS if c in batch.column_names])
        columns = {
            "clip": pa.array([r and r["clip"] for r in results], pa.binary()),
            "extension": pa.array([r and r["extension"] for r in results], pa.string()),
            "codec": pa.array([r and r["codec"] for r in results], pa.string()),
            "width": pa.array([r and r["width"] for r in results], pa.int32()),
            "height": pa.array([r and r["height"] for r in results], pa.int32()),
            "fps": pa.array([r and r["fps"] for r in results], pa.float64()),
            "frames": pa.array([r and r["frames"] for r in results], pa.int64()),
            "clip_bytes": pa.array([r and len(r["clip"]) for r in results], pa.int64()),
            "clip_error": pa.array(errors, pa.string()),
        }
        for name, values in columns.items():
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, values)
        return out

    def _cut(self, source, clips: list[tuple[int, int, int]]) -> dict[int, dict]:
        """{row: encoded clip} for the (row, start_frame, end_frame) clips of one video."""
        import av

        last = max(end for _, _, end in clips)
        done: dict[int, dict] = {}
        open_: dict[int, _ClipWriter] = {}
        with open_video(source, self.storage_options) as container:
            stream = video_stream(container)
            rate = Fraction(stream.average_rate or stream.guessed_rate or 24)
            audio = (
                container.streams.audio[0] if self.keep_audio and container.streams.audio else None
            )
            base = float(stream.time_base or 0)
            origin = (stream.start_time or 0) * base
            wanted = [stream] + ([audio] if audio is not None else [])
            index = 0
            # Audio not yet behind the video: a threaded video decoder returns each frame
            # a packet per thread late, so a clip's first audio is decoded before its first
            # frame; kept for the clips still to open, which would otherwise lose it (0.6 s
            # of a 24 fps video with 16 threads) and play the rest of their sound early.
            ahead: list[tuple[av.AudioFrame, float]] = []
            try:
                for packet in container.demux(*wanted):
                    for frame in packet.decode():
                        if packet.stream is audio:
                            t = (frame.pts or 0) * float(audio.time_base) - origin
                            for writer in open_.values():
                                writer.audio(frame, t)
                            ahead.append((frame, t))
                            continue
                        for row, start, end in clips:
                            if index == start:
                                writer = _ClipWriter(self, stream, rate, audio, start, end)
                                for early, when in ahead:
                                    writer.audio(early, when)
                                open_[row] = writer
                        for row in list(open_):
                            writer = open_[row]
                            writer.video(frame)
                            if index + 1 >= writer.end:
                                done[row] = writer.close()
                                del open_[row]
                        index += 1
                        if ahead:  # no clip still to open starts before this frame
                            now = index / float(rate)
                            ahead = [(early, when) for early, when in ahead if when >= now]
                    if index >= last and not open_:
                        break
            except av.FFmpegError as err:
                if not done:
                    raise VideoError(str(err)) from err
        for writer in open_.values():
            writer.abandon()
        return done


_KNOWN = ("libx264", "h264_nvenc", "libvpx-vp9", "libsvtav1", "mpeg4", "libopenh264")


def _key(batch: pa.Table, i: int, cache: dict):
    for name in ("video_uri", "video_id", "source"):
        if name in batch.column_names:
            if name not in cache:
                cache[name] = batch.column(name).to_pylist()
            if cache[name][i] is not None:
                return (name, cache[name][i])
    return ("row", i)


class _ClipWriter:
    """One clip being encoded into memory."""

    def __init__(self, stage, source_stream, rate: Fraction, audio, start: int, end: int):
        import av

        self.end = end
        self.start_time = start / float(rate)
        self.end_time = end / float(rate)
        self.buffer = io.BytesIO()
        webm = stage.encoder in WEBM_ENCODERS
        self.extension = "webm" if webm else "mp4"
        self.container = av.open(self.buffer, "w", format="webm" if webm else "mp4")
        out_rate = Fraction(stage.target_fps).limit_denominator(1001) if stage.target_fps else rate
        self.rate, self.in_rate = out_rate, rate
        self.stream = self.container.add_stream(stage.encoder, rate=out_rate)
        width, height = source_stream.codec_context.width, source_stream.codec_context.height
        if stage.target_height and stage.target_height != height:
            width = round(width * stage.target_height / height)
            height = stage.target_height
        self.width, self.height = width - width % 2, height - height % 2
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        options = {"threads": str(stage.encoder_threads)}
        if stage.encoder == "libx264":
            options |= {"crf": str(stage.crf), "preset": stage.preset}
        elif stage.encoder in WEBM_ENCODERS:
            options |= {
                "crf": str(stage.crf + 10),
                "b": "0",
                "deadline": "realtime",
                "cpu-used": "8",
            }
        elif stage.encoder == "libsvtav1":
            options |= {"crf": str(stage.crf + 12), "preset": "10"}
        self.stream.options = options
        self.sound = None
        if audio is not None:
            self.sound = self.container.add_stream("libopus" if webm else "aac", rate=48000)
            self.sound.layout = "stereo" if audio.codec_context.channels > 1 else "mono"
            self.resampler = av.AudioResampler(format="fltp", layout=self.sound.layout, rate=48000)
            self.samples = 0
        self.frames = 0
        self.codec = codec_name(self.stream)

    def video(self, frame) -> None:
        """Add one source frame: written once, or as often as the target rate asks."""
        import av

        if self.rate == self.in_rate:
            copies = 1
        else:  # frames due by the end of this source frame, at the target rate
            seen = getattr(self, "_seen", 0) + 1
            self._seen = seen
            copies = int(np.floor(seen * self.rate / self.in_rate)) - self.frames
        if copies <= 0:
            return
        scaled = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        # The decoder's frame type (I, P) would make the encoder copy the source's GOP:
        # cleared, the encoder picks its own (B-frames, its keyframes), a third the size.
        scaled.pict_type = av.video.frame.PictureType.NONE
        for _ in range(copies):
            scaled.pts = self.frames
            scaled.time_base = 1 / self.rate
            for packet in self.stream.encode(scaled):
                self.container.mux(packet)
            self.frames += 1

    def audio(self, frame, time: float) -> None:
        if self.sound is None or not self.start_time <= time < self.end_time:
            return
        for piece in self.resampler.resample(frame):
            piece.pts = self.samples
            piece.time_base = Fraction(1, 48000)
            self.samples += piece.samples
            for packet in self.sound.encode(piece):
                self.container.mux(packet)

    def close(self) -> dict:
        for packet in self.stream.encode():
            self.container.mux(packet)
        if self.sound is not None:
            for packet in self.sound.encode():
                self.container.mux(packet)
        self.container.close()
        return {
            "clip": self.buffer.getvalue(),
            "extension": self.extension,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": float(self.rate),
            "frames": self.frames,
        }

    def abandon(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - an unfinished clip is dropped either way
            pass
