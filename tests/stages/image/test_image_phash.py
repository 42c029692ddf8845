"""Perceptual hashes: `phash64` against a slow reference of the DCT formula and against
`imagehash`'s recipe, known answers derived by hand, the same hash in every process,
near-copies a few bits apart and distinct pictures far apart; `ImagePHash` per row; the
decoder's hash equal to it; the LANCZOS resize equal to Pillow's."""

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
    encode,
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
from stages.image.phash import ImagePHash, hamming, phash64, resize_grey

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


def _web_photos() -> dict[str, bytes]:
    """Photos at web sizes, wide and tall, as JPEG (one EXIF-rotated), PNG and WebP."""
    sizes = [(640, 480), (384, 517), (500, 375), (333, 700), (612, 408), (256, 256)]
    photos = {f"{w}x{h}.jpg": jpeg(photo(20 + i, w, h)) for i, (w, h) in enumerate(sizes)}
    photos["rotated.jpg"] = jpeg(photo(30, 480, 360), orientation=6)
    photos["photo.png"] = encode(photo(31, 400, 300), "PNG")
    photos["photo.webp"] = encode(photo(32, 300, 400), "WEBP")
    return photos


def test_the_decoder_hashes_the_image_it_decodes_bit_for_bit_as_the_hash_stage():
    from images import good_images

    from stages.image.decode import ImageDecoder

    images = {**good_images(), **_web_photos()}
    table = pa.table({"id": list(images), "image": list(images.values())})
    decoded, bad = ImageDecoder(phash=True).check(table)
    assert bad.num_rows == 0
    assert decoded.schema.field("phash").type == pa.uint64()
    assert decoded.column("phash").null_count == 0
    assert decoded.column("phash").equals(ImagePHash().process(table).column("phash"))
    assert "phash" not in ImageDecoder().check(table)[0].column_names


def test_the_fast_decoder_hash_is_within_a_few_bits_for_a_jpeg_and_exact_otherwise():
    from stages.image.decode import ImageDecoder

    images = _web_photos()
    table = pa.table({"id": list(images), "image": list(images.values())})
    fast, _ = ImageDecoder(phash="fast").check(table)
    exact = ImagePHash().process(table)
    is_jpeg = np.array([name.endswith(".jpg") for name in images])
    fast_hashes = np.array(fast.column("phash").to_pylist(), np.uint64)
    exact_hashes = np.array(exact.column("phash").to_pylist(), np.uint64)
    assert np.array_equal(fast_hashes[~is_jpeg], exact_hashes[~is_jpeg])
    assert np.all(hamming(fast_hashes[is_jpeg], exact_hashes[is_jpeg]) <= 4)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L")


# Upscaled, kept (32) and reduced sides; tall ones on each side of the height at which
# Pillow 13 starts resizing vertically first (h - 32 > 2 (w - 32)); web and camera sizes.
RESIZE_SHAPES = [(w, h) for w in (1, 2, 31, 32, 33, 64) for h in (1, 31, 32, 33, 65, 97)]
RESIZE_SHAPES += [(w, 2 * w - 32 + d) for w in (40, 333, 700) for d in (-1, 0, 1)]
RESIZE_SHAPES += [(640, 480), (480, 640), (517, 389), (1024, 768), (4000, 3000), (3000, 4000)]
RESIZE_SHAPES += [(1200, 90), (90, 1200), (32, 4000), (4000, 32)]


def test_the_lanczos_resize_gives_pillows_pixels_for_every_shape():
    for i, (width, height) in enumerate(RESIZE_SHAPES):
        image = _noise(width, height, seed=i)
        want = np.asarray(image.resize((32, 32), Image.Resampling.LANCZOS))
        assert np.array_equal(resize_grey(image), want), (width, height)


def test_the_lanczos_weights_of_every_side_up_to_1100_give_pillows_pixels():
    for side in range(1, 1101):
        for width, height in ((side, 48), (48, side)):
            image = _noise(width, height, seed=side)
            want = np.asarray(image.resize((32, 32), Image.Resampling.LANCZOS))
            assert np.array_equal(resize_grey(image), want), (width, height)


def test_a_pillow_resizing_in_an_unknown_order_gets_its_own_resize(monkeypatch):
    from stages.image import phash

    monkeypatch.setattr(phash, "_PASS_ORDERS", (lambda w, h: w > 50,))
    phash._pillow_pass_order.cache_clear()
    try:
        assert phash._pillow_pass_order() is None
        for width, height in [(640, 480), (100, 169), (20, 40)]:
            image = _noise(width, height)
            want = np.asarray(image.resize((32, 32), Image.Resampling.LANCZOS))
            assert np.array_equal(resize_grey(image), want)
    finally:
        phash._pillow_pass_order.cache_clear()
