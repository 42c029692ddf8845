"""Clip motion, and a filter that drops static clips: NeMo Curator's motion filter
(`MotionVectorDecodeStage`, `MotionFilterStage` in nemo_curator/stages/video/filtering),
with its names, keyword arguments, figures and keep rule.

Measured per clip, on every `round(fps / target_fps)`-th frame (at most `max(10,
target_fps * duration * target_duration_ratio)` of them): how far each pixel moved from
the frame before, in pixels over `width + height`.

- `motion_score_global_mean`: the mean over sampled frames and pixels;
- `motion_score_per_patch_min_256`: the smallest per-pixel mean (over frames) read at the
  centre of each cell of a grid of about 256 px (NeMo's `cv2.resize(fx=1/256)`: a
  bilinear sample, not an area mean). NeMo raises on a side under 256 px; here a side
  under 128 px is one cell.
- `motion_source`: "vectors" when these come from the codec's motion vectors (H.264,
  MPEG-4; each block's vector over its pixels, as NeMo paints them), "flow" when the codec
  exports none (FFmpeg's VP9, AV1, HEVC decoders), where NeMo finds no data and drops the
  clip: dense optical flow (Farneback) from the frame before each sampled one, on gray
  frames at most 256 px a side, in full-frame pixels rounded to a quarter pixel as H.264's
  vectors are. On the same pan the two agree within a few percent. A single frame: 0.0.

Keep rule (NeMo's): keep when `motion_score_global_mean >= 0.00098` and
`motion_score_per_patch_min_256 >= 0.000001`, so a static clip, or one with a still
region, goes. A clip that does not decode gets NaN and a null source (the flow
quarantines it), and the filter removes it, as NeMo removes a clip with no motion data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, Stage
from stages.video.frames import CLIP_COLUMN, VideoError, open_video, video_stream

GLOBAL_MEAN = "motion_score_global_mean"
PER_PATCH_MIN = "motion_score_per_patch_min_256"
SOURCE = "motion_source"
PATCH = 256  # px: the patch grid of NeMo's per-patch minimum
FLOW_SIDE = 256  # px: the longer side of the frames optical flow runs on
# Block sizes (w, h) NeMo paints, in its order: a later size overwrites an earlier one.
BLOCKS = ((8, 8), (16, 16), (16, 8), (8, 16))


def clip_motion(
    data: bytes, target_fps: float = 2.0, target_duration_ratio: float = 0.5, threads: int = 1
) -> tuple[float, float, str]:
    """(global mean, per-patch minimum, source) for one encoded clip; raises `VideoError`
    (or PyAV's error) when it does not decode."""
    found = _decode(data, target_fps, target_duration_ratio, threads, every_frame=False)
    if not found.vectors and not found.pairs and found.frames > 1:
        # Too short for a second sample at target_fps, or only keyframes were sampled.
        found = _decode(data, target_fps, target_duration_ratio, threads, every_frame=True)
    width, height = found.size
    if found.vectors:
        maps = (_painted(v, width, height) / (width + height) for v in found.vectors)
        return (*_summary(maps, len(found.vectors), width, height), "vectors")
    if not found.pairs:
        return 0.0, 0.0, "flow"  # a single frame: a still
    small_height, small_width = found.pairs[0][0].shape
    to_full = (width / small_width, height / small_height)
    maps = (_flow(a, b, to_full) / (width + height) for a, b in found.pairs)
    return (*_summary(maps, len(found.pairs), width, height), "flow")


@dataclass
class _Decoded:
    size: tuple[int, int] = (0, 0)  # (width, height)
    frames: int = 0  # decoded
    vectors: list = field(default_factory=list)  # of each sampled frame that has them
    pairs: list = field(default_factory=list)  # gray (frame before, sampled frame), small


def _decode(data, target_fps, target_duration_ratio, threads, every_frame) -> _Decoded:
    import av

    with open_video(data) as container:
        stream = video_stream(container)
        stream.codec_context.options = {"flags2": "+export_mvs"}
        stream.codec_context.thread_count = threads
        fps = float(stream.average_rate or stream.base_rate or 30)
        step = 1 if every_frame else max(1, round(fps / target_fps))
        seconds = (container.duration or 0) / 1_000_000  # in AV_TIME_BASE units
        most = max(10, round(target_fps * seconds * target_duration_ratio))
        found = _Decoded()
        previous = None  # the small gray frame before a sampled one
        for i, frame in enumerate(container.decode(stream)):
            if i == 0:
                found.size = (frame.width, frame.height)
                scale = min(1.0, FLOW_SIDE / max(found.size))
                small = [max(1, round(side * scale)) for side in found.size]
            found.frames = i + 1
            sampled = i % step == 0
            if sampled:
                side = frame.side_data.get(av.sidedata.sidedata.Type.MOTION_VECTORS)
                if side is not None:  # copied: a view would keep the decoded picture alive
                    found.vectors.append(side.to_ndarray().copy())
            if not found.vectors and (sampled or (i + 1) % step == 0):
                gray = frame.to_ndarray(width=small[0], height=small[1], format="gray")
                if sampled and previous is not None:
                    found.pairs.append((previous, gray))
                previous = gray
            if len(found.vectors) >= most or (not found.vectors and len(found.pairs) >= most):
                break
    if not found.frames:
        raise VideoError("no decodable frame")
    return found


def _painted(vectors: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each block's motion (pixels, from the reference frame) over the block's pixels; 0
    where no block says anything (intra blocks)."""
    motion = np.hypot(vectors["motion_x"], vectors["motion_y"]).astype(np.float32)
    motion /= np.maximum(vectors["motion_scale"], 1)
    x, y = vectors["dst_x"].astype(np.int64), vectors["dst_y"].astype(np.int64)
    out = np.zeros((height, width), np.float32)
    for bw, bh in BLOCKS:
        chosen = (vectors["w"] == bw) & (vectors["h"] == bh)
        if chosen.any():  # dst is the block's centre
            xs = np.clip(x[chosen, None] + np.arange(-bw // 2, bw // 2), 0, width - 1)
            ys = np.clip(y[chosen, None] + np.arange(-bh // 2, bh // 2), 0, height - 1)
            out[ys[:, :, None], xs[:, None, :]] = motion[chosen, None, None]
    return out


def _flow(previous: np.ndarray, current: np.ndarray, to_full: tuple[float, float]) -> np.ndarray:
    """Farneback's dense flow from `previous` to `current` (small frames), in pixels of the
    full frame rounded to a quarter pixel as H.264's vectors are: sub-pixel jitter from
    compression counts as no motion there, and so here."""
    import cv2

    # Five pyramid levels and poly_n=7 follow a fast pan across a small frame too.
    flow = cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 5, 15, 3, 7, 1.5, 0)
    dx = np.round(flow[..., 0] * (4 * to_full[0])) / 4
    dy = np.round(flow[..., 1] * (4 * to_full[1])) / 4
    return np.hypot(dx, dy)


def _summary(maps, count: int, width: int, height: int) -> tuple[float, float]:
    """(global mean, per-patch minimum) of `count` motion maps (frame-sized, smaller for
    the flow)."""
    import cv2

    average = (sum(maps) / count).astype(np.float32)
    grid = (round(width / PATCH), round(height / PATCH))  # as cv2 rounds (half to even)
    if average.shape == (height, width) and min(grid) > 0:
        patches = cv2.resize(average, None, fx=1 / PATCH, fy=1 / PATCH)  # NeMo's own call
    else:
        patches = cv2.resize(average, (max(1, grid[0]), max(1, grid[1])))
    return float(average.mean()), float(patches.min())


class MotionVectorDecodeStage(Stage):
    """Adds `motion_score_global_mean`, `motion_score_per_patch_min_256` (float64) and
    `motion_source` to clip rows (encoded bytes in `clip`); see the module doc.

    `target_fps`: frames sampled a second; `target_duration_ratio`: the share of the clip
    looked at, from its start (10 frames at least); `num_cpus_per_worker`: CPUs a worker
    asks for, and decoder threads (NeMo's default is 6; 1 here: one-thread workers decode
    short clips faster). NeMo's `verbose` is not taken (no per-clip log).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        target_fps: float = 2.0,
        target_duration_ratio: float = 0.5,
        num_cpus_per_worker: float = 1.0,
        clip_column: str = CLIP_COLUMN,
    ):
        if not (target_fps > 0 and target_duration_ratio > 0):
            raise ValueError(f"{target_fps=}, {target_duration_ratio=}: must be positive")
        self.target_fps = target_fps
        self.target_duration_ratio = target_duration_ratio
        self.clip_column = clip_column
        if num_cpus_per_worker != type(self).resources.cpus:
            self.resources = Resources(cpus=num_cpus_per_worker)

    def measure(self, data: bytes | None) -> tuple[float, float, str | None]:
        import av

        if not data:
            return np.nan, np.nan, None
        threads = max(1, int(self.resources.cpus))
        try:
            return clip_motion(data, self.target_fps, self.target_duration_ratio, threads)
        except (VideoError, av.FFmpegError, OSError, ValueError, EOFError):
            return np.nan, np.nan, None  # the flow quarantines undecodable clips

    def process(self, batch: pa.Table) -> pa.Table:
        if self.clip_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.clip_column!r} "
                f"(columns: {batch.column_names})"
            )
        rows = [self.measure(data) for data in batch.column(self.clip_column).to_pylist()]
        columns = {
            GLOBAL_MEAN: pa.array([r[0] for r in rows], pa.float64()),
            PER_PATCH_MIN: pa.array([r[1] for r in rows], pa.float64()),
            SOURCE: pa.array([r[2] for r in rows], pa.string()),
        }
        batch = batch.drop_columns([c for c in columns if c in batch.column_names])
        for name, values in columns.items():
            batch = batch.append_column(name, values)
        return batch


class MotionFilterStage(Filter):
    """Keeps a clip when `motion_score_global_mean >= global_mean_threshold` and
    `motion_score_per_patch_min_256 >= per_patch_min_256_threshold` (NeMo's rule); NaN
    (a clip that does not decode) is removed. `score_only=True` keeps every clip.

    Reads the columns `MotionVectorDecodeStage` adds, or measures the clips itself (with
    its defaults, not adding the columns) when they are missing. The score column
    (`score_MotionFilterStage`, with `keep_score` or `score_only`) is the global mean.
    NeMo's `num_gpus_per_worker`, `motion_filter_batch_size`, `verbose` are not taken.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        score_only: bool = False,
        global_mean_threshold: float = 0.00098,
        per_patch_min_256_threshold: float = 0.000001,
        keep_score: bool = False,
    ):
        self.score_only = score_only
        self.global_mean_threshold = global_mean_threshold
        self.per_patch_min_256_threshold = per_patch_min_256_threshold
        self.keep_score = keep_score

    def _measured(self, batch: pa.Table) -> pa.Table:
        if GLOBAL_MEAN in batch.column_names and PER_PATCH_MIN in batch.column_names:
            return batch
        return MotionVectorDecodeStage().process(batch)

    def score(self, batch: pa.Table) -> np.ndarray:
        return _floats(self._measured(batch), GLOBAL_MEAN)

    def keep(self, scores: np.ndarray, per_patch_min: np.ndarray | None = None) -> np.ndarray:
        """The keep mask for global means `scores` (and the per-patch minima, when given)."""
        keep = np.asarray(scores, np.float64) >= self.global_mean_threshold
        if per_patch_min is not None:
            keep &= np.asarray(per_patch_min, np.float64) >= self.per_patch_min_256_threshold
        return keep

    def mask(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        if batch.num_rows == 0:
            return super().mask(batch)
        batch = self._measured(batch)
        scores = _floats(batch, GLOBAL_MEAN)
        return scores, self.keep(scores, _floats(batch, PER_PATCH_MIN))


def _floats(batch: pa.Table, name: str) -> np.ndarray:
    """Column `name` as float64, a null as NaN."""
    return batch.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
