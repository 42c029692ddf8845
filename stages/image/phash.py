"""Perceptual hashes: 64 bits per image that change little when the picture is resized,
recompressed or lightly edited, so near-copies are a few bits apart (`hamming`).

`phash64` is the DCT hash of Zauner's thesis ("Implementation and Benchmarking of
Perceptual Image Hash Functions", 2010), as `imagehash.phash` computes it (hash_size 8,
highfreq_factor 4), bit for bit: the image in grey (`L`), resized to 32x32 with LANCZOS,
a 2-D DCT-II (unnormalised, as `scipy.fftpack.dct` along axis 0 then 1), the 8x8 block of
lowest frequencies, one bit per coefficient above their median, row by row, the first bit
the most significant: `f"{phash64(img):016x}" == str(imagehash.phash(img))`.

One exception, on purpose: a coefficient that exact arithmetic makes equal to the median
(a flat image's zero coefficients, a mirror-symmetric image's odd ones) is above it in
`imagehash` or not by floating-point noise, which differs between machines and libraries.
Here a coefficient must exceed the median by more than `TOLERANCE` (far below any real
difference between coefficients of 8-bit pixels), so such images get the same hash
everywhere (a flat image hashes to 0x8000000000000000: only the mean is above).

`ImagePHash` adds the hash of each row's image as a `phash` column (uint64).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
from PIL import Image

from stages.base import Resources, Stage
from stages.image.decode import MAX_PIXELS, load_rgb

HASH_SIZE = 8
IMAGE_SIZE = 32  # HASH_SIZE * highfreq_factor 4
TOLERANCE = 1e-6  # coefficients reach 1e6; rounding noise stays below 1e-8


def _dct_rows() -> np.ndarray:
    """The first HASH_SIZE rows of the unnormalised DCT-II matrix of size IMAGE_SIZE:
    `2 cos(pi k (2n + 1) / 2N)`, as `scipy.fftpack.dct(type=2, norm=None)` scales it."""
    k = np.arange(HASH_SIZE)[:, None]
    n = np.arange(IMAGE_SIZE)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * IMAGE_SIZE))


_DCT = _dct_rows()
_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(63, -1, -1, dtype=np.uint64))


def phash64(image: Image.Image) -> int:
    """The 64-bit perceptual hash of `image` (any mode; converted to grey as
    `imagehash.phash` does, so transparency is dropped, not composited)."""
    grey = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = _DCT @ pixels @ _DCT.T  # the 8x8 lowest frequencies of the 2-D DCT-II
    bits = (low - np.median(low)).ravel() > TOLERANCE
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits], initial=np.uint64(0)))


def hamming(a, b):
    """Bits that differ between uint64 hashes, element-wise over NumPy arrays (or Python
    ints up to 2**64 - 1): an int64 array of the broadcast shape, an int for two scalars."""
    xor = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    count = np.bitwise_count(xor).astype(np.int64)
    return int(count) if count.ndim == 0 else count


class ImagePHash(Stage):
    """Add `phash` (uint64): `phash64` of each row's image as every scoring stage sees it
    (`load_rgb`: upright, 8-bit RGB, transparency over white).

    Run it after `ImageDecoder`, which quarantines what does not decode; a row whose image
    is null or still fails to decode (or has more than `max_pixels` pixels) gets a null
    hash rather than failing the batch, and is never anyone's duplicate.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, image_column: str = "image", max_pixels: int = MAX_PIXELS):
        self.image_column = image_column
        self.max_pixels = max_pixels

    def process(self, batch: pa.Table) -> pa.Table:
        if self.image_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.image_column!r} (run "
                f"ImageDecoder first; columns: {batch.column_names})"
            )
        hashes = [self._hash(data) for data in batch.column(self.image_column).to_pylist()]
        column = pa.array(hashes, pa.uint64())
        if "phash" in batch.column_names:
            return batch.set_column(batch.schema.get_field_index("phash"), "phash", column)
        return batch.append_column("phash", column)

    def _hash(self, data: bytes | None) -> int | None:
        if not data:
            return None
        try:
            return phash64(load_rgb(data, self.max_pixels))
        except Exception:  # noqa: BLE001 - an image that fails here is left unhashed
            return None
