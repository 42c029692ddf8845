"""Clip checks that need no model: whether the clip was cut at all, its duration, its
resolution and shape, and whether it shows anything.

- `ClipValidator`: a clip the transcoder could not cut (null `clip`, its `clip_error`
  says why) goes to the quarantine with that reason; it is bad input, not a judgement.
- `ClipDurationFilter(min_s, max_s)`: keeps `min_s <= duration <= max_s`.
- `ClipResolutionFilter(min_width, min_height)`: keeps clips at least that large; the
  score is the shorter side.
- `ClipAspectRatioFilter(max_ratio)`: keeps long side / short side <= `max_ratio`.
- `BlankClipFilter(max_blank_fraction)`: samples frames at `sample_fps`; a frame is blank
  when its luma barely varies (standard deviation under `min_std`, a uniform colour: a
  black, white or test-card frame); the score is the blank frames' share, kept when at
  most `max_blank_fraction` (0.5). An undecodable clip scores 1.0.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, Validator
from stages.io.quarantine import Record, RowPlaces, quarantine_table
from stages.video.frames import CLIP_COLUMN, VideoError, sample


def _numbers(batch: pa.Table, name: str, stage: str) -> np.ndarray:
    if name not in batch.column_names:
        raise KeyError(f"{stage}: input has no column {name!r} (run ClipTranscodingStage first)")
    return batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


class ClipValidator(Validator):
    """Quarantine clips without bytes, with the transcoder's reason."""

    def check(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        if CLIP_COLUMN not in batch.column_names:
            raise KeyError(f"{self.stage_name}: no {CLIP_COLUMN!r} column")
        valid = batch.column(CLIP_COLUMN).is_valid().to_numpy(zero_copy_only=False)
        places = RowPlaces(batch)
        errors = (
            batch.column("clip_error").to_pylist()
            if "clip_error" in batch.column_names
            else [None] * batch.num_rows
        )
        spans = [
            (s, e)
            for s, e in zip(
                batch.column("start").to_pylist() if "start" in batch.column_names else [],
                batch.column("end").to_pylist() if "end" in batch.column_names else [],
                strict=True,
            )
        ] or [(None, None)] * batch.num_rows
        records = []
        for i in np.flatnonzero(~valid):
            start, end = spans[i]
            where = f"clip {start:.2f}-{end:.2f} s: " if start is not None else ""
            why = where + (errors[i] or "no clip bytes")
            records.append(Record(places.source(i), places.line(i), places.reason(i, why), None))
        good = batch.filter(pa.array(valid, pa.bool_()))
        if "clip_error" in good.column_names:
            good = good.drop_columns(["clip_error"])
        return good, quarantine_table(records)


class ClipDurationFilter(Filter):
    """Keep clips lasting between `min_s` and `max_s` seconds (either may be None)."""

    def __init__(self, min_s: float | None = None, max_s: float | None = None):
        if min_s is not None and max_s is not None and min_s > max_s:
            raise ValueError(f"min_s={min_s} is above max_s={max_s}")
        self.min_s, self.max_s = min_s, max_s

    def score(self, batch: pa.Table) -> np.ndarray:
        return _numbers(batch, "duration", self.stage_name)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        keep = np.isfinite(scores)
        if self.min_s is not None:
            keep &= scores >= self.min_s
        if self.max_s is not None:
            keep &= scores <= self.max_s
        return keep


class ClipResolutionFilter(Filter):
    """Keep clips at least `min_width` x `min_height` pixels; the score is the shorter
    side."""

    def __init__(self, min_width: int = 0, min_height: int = 0):
        self.min_width, self.min_height = min_width, min_height

    def score(self, batch: pa.Table) -> np.ndarray:
        width = _numbers(batch, "width", self.stage_name)
        height = _numbers(batch, "height", self.stage_name)
        self._sizes = (width, height)
        return np.minimum(width, height)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        width, height = self._sizes
        return (width >= self.min_width) & (height >= self.min_height)


class ClipAspectRatioFilter(Filter):
    """Keep clips whose long side / short side is at most `max_ratio`."""

    def __init__(self, max_ratio: float = 3.0):
        if max_ratio < 1:
            raise ValueError(f"max_ratio={max_ratio}: must be at least 1")
        self.max_ratio = max_ratio

    def score(self, batch: pa.Table) -> np.ndarray:
        width = _numbers(batch, "width", self.stage_name)
        height = _numbers(batch, "height", self.stage_name)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.maximum(width, height) / np.minimum(width, height)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.isfinite(scores) & (scores <= self.max_ratio)


class BlankClipFilter(Filter):
    """Remove clips that are mostly blank frames (see the module doc)."""

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self, max_blank_fraction: float = 0.5, min_std: float = 4.0, sample_fps: float = 1.0
    ):
        if not 0 <= max_blank_fraction <= 1:
            raise ValueError(f"max_blank_fraction={max_blank_fraction}: must be in [0, 1]")
        self.max_blank_fraction = max_blank_fraction
        self.min_std = min_std
        self.sample_fps = sample_fps

    def score(self, batch: pa.Table) -> np.ndarray:
        clips = batch.column(CLIP_COLUMN).to_pylist()
        return np.array([self._blank_share(c) for c in clips], dtype=np.float64)

    def _blank_share(self, data: bytes | None) -> float:
        if not data:
            return 1.0
        try:
            frames = sample(data, fps=self.sample_fps, size=(64, 36))
        except VideoError:
            return 1.0
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        spread = luma.reshape(len(frames), -1).std(axis=1)
        return float(np.mean(spread < self.min_std))

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_blank_fraction
