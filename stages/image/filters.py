"""Image size filters over the columns `ImageDecoder` adds (`width`, `height` as displayed,
`image_bytes`): no pixel is decoded again.

Where the rules come from: DataComp's "basic filtering" baseline (Gadre et al. 2023)
keeps images whose smaller side is at least 200 px and whose aspect ratio is under 3;
LAION-400M (Schuhmann et al. 2021) drops image files under 5 KB; img2dataset applies the
first two at download time (`min_image_size`, `max_aspect_ratio`). Defaults here are
looser where a dataset may hold small images on purpose (64 px, no minimum size).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter


def decoded_column(batch: pa.Table, name: str, stage: str) -> np.ndarray:
    """The decoder's column `name` of `batch` as int64 (a null counts as 0), with a clear
    error when the decoder has not run."""
    if name not in batch.column_names:
        raise KeyError(
            f"{stage}: input has no column {name!r}; run ImageDecoder first "
            f"(columns: {batch.column_names})"
        )
    column = batch.column(name).fill_null(0)
    return column.to_numpy().astype(np.int64, copy=False)


class _ImageFilter(Filter):
    # Shown beside the thumbnail of a removed row in reports: a WebDataset caption.
    text_field = "txt"


class ImageMinSideFilter(_ImageFilter):
    """Score: the shorter side in pixels, as displayed (`min(width, height)`).

    Keep rule: `score >= min_side`. Thumbnails and icons carry little for training;
    DataComp's basic filtering keeps a smaller side of 200 px or more, img2dataset's
    `min_image_size` does the same at download (64 px by default here).
    """

    def __init__(self, min_side: int = 64, keep_score: bool = False):
        if min_side < 0:
            raise ValueError(f"min_side={min_side}: must not be negative")
        self.min_side = min_side
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        width = decoded_column(batch, "width", self.stage_name)
        height = decoded_column(batch, "height", self.stage_name)
        return np.minimum(width, height)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_side


class ImageAspectRatioFilter(_ImageFilter):
    """Score: the longer side over the shorter, `max(width / height, height / width)`, so
    1.0 for a square and the same for a strip in either orientation (a side of 0 scores
    infinity).

    Keep rule: `score <= max_ratio`. Banners, strips and panoramas crop badly to the square
    inputs of vision models; DataComp's basic filtering and img2dataset's
    `max_aspect_ratio` drop them (3.0, as DataComp).
    """

    def __init__(self, max_ratio: float = 3.0, keep_score: bool = False):
        if not max_ratio >= 1.0:
            raise ValueError(f"max_ratio={max_ratio}: must be at least 1")
        self.max_ratio = max_ratio
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        width = decoded_column(batch, "width", self.stage_name).astype(np.float64)
        height = decoded_column(batch, "height", self.stage_name).astype(np.float64)
        longer, shorter = np.maximum(width, height), np.minimum(width, height)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = longer / shorter
        return np.where(shorter > 0, ratio, np.inf)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_ratio


class ImageFileSizeFilter(_ImageFilter):
    """Score: the stored size of the encoded image in bytes (`image_bytes`).

    Keep rule: `min_bytes <= score`, and `score <= max_bytes` when `max_bytes` is set. A
    few hundred bytes is a placeholder or a blank image (LAION-400M drops files under
    5 KB: `min_bytes=5_000`); a huge file is a scan or an uncompressed dump that costs more
    to move than it gives. Both bounds are off by default.
    """

    def __init__(self, min_bytes: int = 0, max_bytes: int | None = None, keep_score: bool = False):
        if min_bytes < 0:
            raise ValueError(f"min_bytes={min_bytes}: must not be negative")
        if max_bytes is not None and max_bytes < min_bytes:
            raise ValueError(f"max_bytes={max_bytes}: must be at least min_bytes={min_bytes}")
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        return decoded_column(batch, "image_bytes", self.stage_name)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        keep = scores >= self.min_bytes
        if self.max_bytes is not None:
            keep &= scores <= self.max_bytes
        return keep
