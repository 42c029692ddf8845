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

The 32x32 LANCZOS resize (`resize_grey`) is Pillow's own arithmetic (its coefficients, its
22-bit fixed point, its rounding and clipping, the order of its two passes) done as matrix
products with NumPy: the same pixels as `Image.resize` (tested for every side from 1 to
1100 px) in about half its time on a web-sized photo, where the resize costs as much as
the decode. Pillow's order of passes is checked on first use; a Pillow that resizes in
neither known order gets its own `resize`.

`ImagePHash` adds the hash of each row's image as a `phash` column (uint64).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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
    pixels = resize_grey(image.convert("L"))
    low = _DCT @ pixels @ _DCT.T  # the 8x8 lowest frequencies of the 2-D DCT-II
    bits = (low - np.median(low)).ravel() > TOLERANCE
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits], initial=np.uint64(0)))


# --- Pillow's LANCZOS resize to IMAGE_SIZE x IMAGE_SIZE, as matrix products -------------

_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2
_LANCZOS_SUPPORT = 3.0
_BANDS = 4  # output pixels per axis in groups of 8: each group reads a slice of the input


def resize_grey(grey: Image.Image) -> np.ndarray:
    """`grey` (mode `L`) resized to 32x32 with LANCZOS, as float64: exactly the pixels of
    `grey.resize((32, 32), Image.Resampling.LANCZOS)`."""
    vertical_first = _pillow_pass_order()
    if vertical_first is None:
        resized = grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(resized, dtype=np.float64)
    return _resize(np.asarray(grey, dtype=np.float64), vertical_first)


def _resize(pixels: np.ndarray, vertical_first: Callable[[int, int], bool]) -> np.ndarray:
    height, width = pixels.shape
    if vertical_first(width, height):
        return _horizontal_pass(_vertical_pass(pixels))
    return _vertical_pass(_horizontal_pass(pixels))


def _horizontal_pass(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[1] == IMAGE_SIZE:  # Pillow skips a pass that keeps the size
        return pixels
    out = np.empty((pixels.shape[0], IMAGE_SIZE))
    for first, end, start, stop, weights in _lanczos_weights(pixels.shape[1]):
        np.matmul(pixels[:, start:stop], weights.T, out=out[:, first:end])
    return _fixed_point_to_pixels(out)


def _vertical_pass(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[0] == IMAGE_SIZE:
        return pixels
    out = np.empty((IMAGE_SIZE, pixels.shape[1]))
    for first, end, start, stop, weights in _lanczos_weights(pixels.shape[0]):
        np.matmul(weights, pixels[start:stop], out=out[first:end])
    return _fixed_point_to_pixels(out)


def _fixed_point_to_pixels(sums: np.ndarray) -> np.ndarray:
    """Pillow's `clip8`: round the 22-bit fixed-point sums to 8-bit values. The sums are
    integers below 2**31, so float64 holds them, and these steps, exactly."""
    sums *= 2.0**-_PRECISION_BITS
    sums += 0.5
    np.floor(sums, out=sums)
    return np.clip(sums, 0.0, 255.0, out=sums)


def _lanczos_weights(size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """Pillow's 8-bit LANCZOS weights from `size` pixels to IMAGE_SIZE, in `_BANDS` groups
    of output pixels: `(first, end, start, stop, weights)`, output pixels `first:end`
    reading input pixels `start:stop` with `weights` (end - first, stop - start; integers
    in float64). Those of the 512 sides last seen up to 1024 px are kept (30 MB at most)."""
    if size > _CACHED_UP_TO:
        return _banded(size)
    return tuple((*band, weights.astype(np.float64)) for *band, weights in _cached(size))


_CACHED_UP_TO = 1024


@functools.lru_cache(maxsize=512)
def _cached(size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    # float32 holds the integer weights (at most 2**22 in magnitude) exactly, in half
    # the memory.
    return tuple((*band, weights.astype(np.float32)) for *band, weights in _banded(size))


def _banded(size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """`precompute_coeffs` and `normalize_coeffs_8bpc` of Pillow's Resample.c, step for
    step, vectorised over the output pixels."""
    scale = size / IMAGE_SIZE
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    taps = np.arange(math.ceil(support) * 2 + 1)
    center = (np.arange(IMAGE_SIZE) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C's (int): truncation
    count = np.minimum((center + support + 0.5).astype(np.int64), size) - first
    x = ((first[:, None] + taps) - center[:, None] + 0.5) * (1.0 / filterscale)
    used = (taps < count[:, None]) & (x >= -_LANCZOS_SUPPORT) & (x < _LANCZOS_SUPPORT)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(used, _sinc(x) * _sinc(x / 3), 0.0)
    total = np.cumsum(k, axis=1)[:, -1:]  # summed in order, as the C loop does
    k = np.divide(k, total, out=k, where=total != 0.0)
    k = np.trunc(k * float(1 << _PRECISION_BITS) + np.where(k < 0, -0.5, 0.5))
    step = IMAGE_SIZE // _BANDS
    bands = []
    for lo in range(0, IMAGE_SIZE, step):
        start, stop = int(first[lo]), int(first[lo + step - 1] + count[lo + step - 1])
        weights = np.zeros((step, stop - start))
        for j in range(step):
            at, n = int(first[lo + j]) - start, int(count[lo + j])
            weights[j, at : at + n] = k[lo + j, :n]
        bands.append((lo, lo + step, start, stop, weights))
    return tuple(bands)


def _sinc(x: np.ndarray) -> np.ndarray:
    # The weights are rounded to integers, so were NumPy's sin to differ from the C
    # library's in the last bit, only a weight at a rounding tie could change.
    scaled = x * math.pi
    return np.where(x == 0.0, 1.0, np.sin(scaled) / scaled)


# Which pass Pillow runs first, by the input's (width, height) for a 32x32 output.
_PASS_ORDERS: tuple[Callable[[int, int], bool], ...] = (
    # Pillow 13 (python-pillow/Pillow#9549): vertically first when the height is reduced
    # by more than twice as many pixels as the width.
    lambda w, h: h > IMAGE_SIZE and h - IMAGE_SIZE > 2 * (w - IMAGE_SIZE),
    lambda w, h: False,  # earlier Pillow: always horizontally first
)
_PROBE_SIZES = ((20, 40), (40, 20), (100, 168), (100, 169), (7, 300), (300, 7), (33, 90))


@functools.cache
def _pillow_pass_order() -> Callable[[int, int], bool] | None:
    """The pass order of the installed Pillow, from resizing a few noise images both ways
    (the orders give different pixels on them); None when neither matches."""
    rng = np.random.default_rng(0)
    probes = []
    for width, height in _PROBE_SIZES:
        image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L")
        resized = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        probes.append((np.asarray(image, dtype=np.float64), np.asarray(resized)))
    for order in _PASS_ORDERS:
        if all(np.array_equal(_resize(pixels, order), want) for pixels, want in probes):
            return order
    return None


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
