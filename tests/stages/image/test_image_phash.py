"""Perceptual hashes: `phash64` against a slow reference of the DCT formula and against
`imagehash`'s recipe, known answers derived by hand, the same hash in every process,
near-copies a few bits apart and distinct pictures far apart; `ImagePHash` per row."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from images import (
    NEAR_COPY_KINDS,
    bomb_png,
    html_as_jpg,
    jpeg,
    near_copies,
    photo,
    rgba_png,
    shapes,
    text_card,
    texture,
    truncated_jpeg,
)
from PIL import Image

from stages.image.decode import load_rgb
from stages.image.phash import ImagePHash, hamming, phash64

ROOT = Path(__file__).resolve().parents[3]


def _reference_phash(image: Image.Image) -> int:
    """The DCT hash written out from its definition, one loop per sum: grey, 32x32
    LANCZOS, X[k][l] = sum_m sum_n 4 x[m][n] cos(pi k (2m+1) / 64) cos(pi l (2n+1) / 64)
    for k, l < 8, bits = X > median, row by row, first bit most significant."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    x = [[grey.getpixel((n, m)) for n in range(32)] for m in range(32)]
    cos = [[math.cos(math.pi * k * (2 * i + 1) / 64) for i in range(32)] for k in range(8)]
    coefficients = []
    for k in range(8):
        for col in range(8):
            total = 0.0
            for m in range(32):
                for n in range(32):
                    total += 4 * x[m][n] * cos[k][m] * cos[col][n]
            coefficients.append(total)
    ordered = sorted(coefficients)
    median = (ordered[31] + ordered[32]) / 2
    value = 0
    for c in coefficients:
        value = (value << 1) | (c > median)
    return value


@pytest.mark.parametrize("seed", [0, 1])
def test_phash64_equals_the_dct_formula_written_out(seed):
    for image in (photo(seed), texture(seed=seed), shapes(seed=seed)):
        assert phash64(image) == _reference_phash(image)


def test_phash64_equals_imagehash_recipe_with_scipy_on_many_images():
    fftpack = pytest.importorskip("scipy.fftpack")

    def imagehash_phash(image: Image.Image) -> str:
        # imagehash.phash(image, hash_size=8, highfreq_factor=4), step by step.
        pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
        dct = fftpack.dct(fftpack.dct(pixels, axis=0), axis=1)
        low = dct[:8, :8]
        bits = "".join("1" if b else "0" for b in (low > np.median(low)).flatten())
        return f"{int(bits, 2):016x}"

    rng = np.random.default_rng(3)
    images = [photo(s) for s in range(30)] + [text_card(seed=s) for s in range(5)]
    images += [Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))]
    images.append(photo(31).convert("RGBA"))
    for image in images:
        assert f"{phash64(image):016x}" == imagehash_phash(image)


def test_hand_derived_hashes_fix_the_bit_order():
    # Left half black, right half white: only the horizontal frequencies l of row k = 0 are
    # non-zero: the mean, and odd l with the sign of -sin(pi l / 2), so l = 3 and 7 are
    # above the (zero) median. Bits 0, 3 and 7, the first the most significant.
    step = np.zeros((32, 32), np.uint8)
    step[:, 16:] = 255
    assert phash64(Image.fromarray(step, "L")) == 0x9100_0000_0000_0000
    # Top half black: the same along k, in column l = 0: bits 0, 24 and 56.
    assert phash64(Image.fromarray(step.T.copy(), "L")) == 0x8000_0080_0000_0080
    # A flat image, any colour: only the mean is above the median.
    assert phash64(Image.new("RGB", (40, 30), (200, 30, 90))) == 0x8000_0000_0000_0000
    assert phash64(Image.new("L", (8, 8), 0)) == 0


def test_the_same_image_hashes_the_same_in_another_process():
    seeds = [0, 1, 2, 3]
    here = [phash64(load_rgb(jpeg(photo(s)))) for s in seeds]
    assert here == [phash64(load_rgb(jpeg(photo(s)))) for s in seeds]
    code = (
        "from images import jpeg, photo\n"
        "from stages.image.decode import load_rgb\n"
        "from stages.image.phash import phash64\n"
        f"print([phash64(load_rgb(jpeg(photo(s)))) for s in {seeds}])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == str(here)


def test_near_copies_are_a_few_bits_from_their_original():
    bounds = {
        "identical": 0,
        "resized_50": 4,
        "resized_75": 4,
        "jpeg_q50": 4,
        "brightened_15": 6,
        "cropped_3": 12,
    }
    assert set(bounds) == set(NEAR_COPY_KINDS)
    for seed in range(8):
        original = jpeg(photo(seed))
        h = phash64(load_rgb(original))
        for kind, copy in near_copies(original).items():
            assert hamming(h, phash64(load_rgb(copy))) <= bounds[kind], (seed, kind)


def test_distinct_pictures_are_far_apart():
    hashes = np.array([phash64(load_rgb(jpeg(photo(s)))) for s in range(12)], np.uint64)
    distances = hamming(hashes[:, None], hashes[None, :])
    apart = distances[np.triu_indices(len(hashes), 1)]
    assert apart.min() >= 20  # every copy above is within 12


def test_hamming_counts_differing_bits_element_wise():
    a = np.array([0, 0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0001], np.uint64)
    b = np.array([0, 0, 0x0000_0000_0000_0001], np.uint64)
    assert hamming(a, b).tolist() == [0, 64, 1]
    assert hamming(a, b).dtype == np.int64
    assert hamming(a[:, None], a[None, :]).shape == (3, 3)
    assert hamming(2**64 - 1, 0) == 64 and isinstance(hamming(5, 3), int)


def _table(*images: bytes | None) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(images))], "image": list(images)})


def test_the_stage_adds_the_hash_of_what_scoring_stages_see():
    data = [jpeg(photo(0)), rgba_png(shapes(seed=2))]
    out = ImagePHash().process(_table(*data))
    assert out.schema.field("phash").type == pa.uint64()
    assert out["phash"].to_pylist() == [phash64(load_rgb(d)) for d in data]
    # Transparency is composited over white first, not dropped as imagehash would.
    rgba = Image.open(io.BytesIO(data[1]))
    assert out["phash"][1].as_py() != phash64(rgba)


def test_rows_that_do_not_decode_get_a_null_hash_and_the_batch_goes_on():
    data = [None, b"", html_as_jpg(), truncated_jpeg(), bomb_png(), jpeg(photo(1))]
    out = ImagePHash().process(_table(*data))
    assert out["phash"].to_pylist()[:5] == [None] * 5
    assert out["phash"][5].as_py() == phash64(load_rgb(data[5]))


def test_the_stage_needs_an_image_column_and_replaces_an_old_hash():
    with pytest.raises(KeyError, match="ImagePHash: input has no column 'image'"):
        ImagePHash().process(pa.table({"id": ["a"]}))
    table = _table(jpeg(photo(2))).append_column("phash", pa.array([7], pa.uint64()))
    out = ImagePHash().process(table)
    assert out.column_names.count("phash") == 1 and out["phash"][0].as_py() != 7


def test_the_decoder_hashes_the_image_it_decodes_close_to_the_hash_stage():
    from images import good_images

    from stages.image.decode import ImageDecoder

    images = good_images()
    table = pa.table({"id": list(images), "image": list(images.values())})
    decoded, _ = ImageDecoder(phash=True).check(table)
    separate = ImagePHash().process(table)
    jpeg_rows = decoded.column("image_format").to_numpy(zero_copy_only=False) == "JPEG"
    fused = np.array(decoded.column("phash").to_pylist(), dtype=np.uint64)
    full = np.array(separate.column("phash").to_pylist(), dtype=np.uint64)
    assert np.array_equal(fused[~jpeg_rows], full[~jpeg_rows])  # the same decode
    assert np.all(hamming(fused[jpeg_rows], full[jpeg_rows]) <= 4)  # a reduced-scale decode
    assert decoded.column("phash").null_count == 0
    assert "phash" not in ImageDecoder().check(table)[0].column_names
