"""Test images, generated in memory: small (at most 256 px a side), deterministic (seeded
NumPy generators, Pillow's encoders), and each made in a few milliseconds.

- Pixels (`PIL.Image.Image`): `gradient` (linear), `radial_gradient`, `texture` (smooth
  noise, photo-like), `shapes`, `text_card` (ImageDraw's default font), and `photo(seed)`,
  a composite that differs for every seed: what near-copy tests and benchmarks start
  from. A linear gradient is a poor input for a perceptual hash (most of its DCT
  coefficients are zero, so its hash bits hang on noise): use `photo` for hash tests.
- Encoders (bytes): `jpeg` (optionally with an EXIF orientation), `png`, `rgba_png` (a
  real alpha channel), `webp`, `cmyk_jpeg`, `palette_gif`.
- Broken or awkward inputs (bytes): `truncated_jpeg` (cut in half), `EMPTY`, `tiny_jpeg`
  (20x15), `strip_jpeg` (40x500), `bomb_png` (a PNG header claiming 50000x50000 pixels
  over a few bytes of data, valid CRCs), `rotated_jpeg` (EXIF orientation 6: stored
  landscape, displayed portrait), `html_as_jpg` (an error page saved as `.jpg`).
- `good_images()` and `bad_images()`: one of each, by file name.
- `near_copies(original)`: the same picture resized to 50% and 75%, recompressed at
  JPEG quality 50, brightened by 15%, cropped by 3% on each side, and a byte-identical copy.
- `write_tar(path, samples)`: a WebDataset shard (`KEY.jpg`, `KEY.txt`, `KEY.json`),
  members grouped and sorted by key, fixed tar headers.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

EMPTY = b""
NEAR_COPY_KINDS = (
    "identical",
    "resized_50",
    "resized_75",
    "jpeg_q50",
    "brightened_15",
    "cropped_3",
)
HTML_PAGE = b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n"
_WORDS = (
    "river bridge garden window morning library station harbour meadow lantern orchard "
    "valley island market canyon forest village tower ferry summit"
).split()


# --- pixels ------------------------------------------------------------------------------


def gradient(width: int = 128, height: int = 96, seed: int = 0) -> Image.Image:
    """A linear gradient between two seeded colours, at a seeded angle (a ramp: its 2-D DCT
    is zero outside the first row and column)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    y, x = np.mgrid[0:height, 0:width]
    t = x * np.cos(angle) + y * np.sin(angle)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    rgb = start + (end - start) * t[..., None]
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def texture(width: int = 128, height: int = 96, seed: int = 0, cell: int = 12) -> Image.Image:
    """Smooth colour noise with a fine grain, like an out-of-focus photo: random colours on
    a coarse grid of `cell` px, upsampled bicubically."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (max(2, height // cell), max(2, width // cell), 3), np.uint8)
    smooth = Image.fromarray(grid, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.normal(0.0, 5.0, (height, width, 3))
    pixels = np.clip(np.asarray(smooth, dtype=np.float64) + grain, 0, 255)
    return Image.fromarray(pixels.round().astype(np.uint8), "RGB")


def shapes(width: int = 128, height: int = 96, seed: int = 0, count: int = 6) -> Image.Image:
    """Filled ellipses, rectangles and triangles in seeded colours over a gradient."""
    rng = np.random.default_rng(seed)
    image = gradient(width, height, seed + 7919)
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x0, y0 = int(rng.integers(-width // 4, width)), int(rng.integers(-height // 4, height))
        w, h = (
            int(rng.integers(width // 6, width // 2)),
            int(rng.integers(height // 6, height // 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.polygon([(x0, y0 + h), (x0 + w // 2, y0), (x0 + w, y0 + h)], fill=colour)
    return image


def radial_gradient(width: int = 128, height: int = 96, seed: int = 0) -> Image.Image:
    """A radial gradient between two seeded colours around a seeded centre, with a seeded
    falloff: smooth like a sky, but not a linear ramp (see `gradient`)."""
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    inner, outer = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    y, x = np.mgrid[0:height, 0:width]
    r = np.hypot(x - cx, y - cy) / np.hypot(width, height)
    t = np.clip(r * rng.uniform(1.0, 3.0), 0, 1) ** rng.uniform(0.5, 2.0)
    rgb = inner + (outer - inner) * t[..., None]
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def text_card(
    text: str | None = None, width: int = 128, height: int = 96, seed: int = 0
) -> Image.Image:
    """Dark text (ImageDraw's default font) on a light background, placed at a seeded
    position; seeded lines of words when `text` is not given."""
    rng = np.random.default_rng(seed)
    if text is None:
        lines = int(rng.integers(1, max(2, height // 14)))
        text = "\n".join(
            " ".join(rng.choice(_WORDS, int(rng.integers(1, 4)))) for _ in range(lines)
        )
    background = tuple(int(c) for c in rng.integers(200, 256, 3))
    image = Image.new("RGB", (width, height), background)
    origin = (int(rng.integers(2, max(3, width // 3))), int(rng.integers(2, max(3, height // 3))))
    ImageDraw.Draw(image).multiline_text(origin, text, fill=(20, 20, 30), spacing=2)
    return image


def photo(seed: int, width: int = 160, height: int = 120) -> Image.Image:
    """A distinct picture per seed: a texture or gradient background, shapes, and for some
    seeds a line of text, mixed so that no two seeds look alike."""
    rng = np.random.default_rng(10_000 + seed)
    if seed % 2:
        image = texture(width, height, seed, cell=int(rng.integers(8, 32)))
    else:
        image = gradient(width, height, seed)
    layer = shapes(width, height, seed, count=int(rng.integers(3, 9)))
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(width // 8, width // 3))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=255)
    image.paste(layer, mask=mask)
    if seed % 3 == 0:
        words = " ".join(rng.choice(_WORDS, 2))
        x, y = int(rng.integers(0, width // 3)), int(rng.integers(0, height - 14))
        ImageDraw.Draw(image).text((x, y), words, fill=(255, 255, 255))
    return image


# --- encoders ----------------------------------------------------------------------------


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int = 90, orientation: int | None = None) -> bytes:
    """`image` as a JPEG; with `orientation`, an EXIF block holding that orientation."""
    params = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    return encode(image.convert("RGB"), "JPEG", quality=quality, **params)


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def rgba_png(image: Image.Image) -> bytes:
    """`image` as an RGBA PNG, transparent in its left half and opaque on the right."""
    rgba = image.convert("RGBA")
    alpha = np.zeros((image.height, image.width), np.uint8)
    alpha[:, image.width // 2 :] = 255
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return encode(rgba, "PNG")


def webp(image: Image.Image, quality: int = 80) -> bytes:
    return encode(image, "WEBP", quality=quality)


def cmyk_jpeg(image: Image.Image) -> bytes:
    return encode(image.convert("CMYK"), "JPEG", quality=90)


def palette_gif(image: Image.Image) -> bytes:
    """`image` reduced to a 64-colour palette, as a GIF (mode `P`)."""
    return encode(image.convert("RGB").quantize(64), "GIF")


# --- broken or awkward inputs ------------------------------------------------------------


def truncated_jpeg(seed: int = 0) -> bytes:
    """A JPEG cut in half: the header is whole, the pixels end early."""
    data = jpeg(photo(seed))
    return data[: len(data) // 2]


def tiny_jpeg() -> bytes:
    """A 20x15 JPEG."""
    return jpeg(gradient(20, 15, seed=3))


def strip_jpeg() -> bytes:
    """A 40x500 JPEG (aspect ratio 12.5)."""
    return jpeg(gradient(40, 500, seed=4))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels over a few bytes of data:
    valid signature and CRCs, so only the pixel count gives it away."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def rotated_jpeg(width: int = 128, height: int = 96, seed: int = 5) -> bytes:
    """A `width` x `height` JPEG with EXIF orientation 6 (turn 90 degrees clockwise to
    display): shown `height` wide and `width` tall."""
    return jpeg(photo(seed, width, height), orientation=6)


def html_as_jpg() -> bytes:
    """What a failed download saves as `.jpg`: an HTML error page."""
    return HTML_PAGE


def good_images() -> dict[str, bytes]:
    """One image of each kind a decoder must accept, by file name."""
    return {
        "gradient.jpg": jpeg(gradient()),
        "texture.png": png(texture(seed=1)),
        "alpha.png": rgba_png(shapes(seed=2)),
        "text.webp": webp(text_card(seed=3)),
        "cmyk.jpg": cmyk_jpeg(photo(4)),
        "palette.gif": palette_gif(photo(5)),
        "rotated.jpg": rotated_jpeg(),
        "tiny.jpg": tiny_jpeg(),
        "strip.jpg": strip_jpeg(),
    }


def bad_images() -> dict[str, bytes]:
    """One input of each kind a decoder must quarantine, by file name."""
    return {
        "truncated.jpg": truncated_jpeg(),
        "empty.jpg": EMPTY,
        "bomb.png": bomb_png(),
        "html.jpg": html_as_jpg(),
    }


# --- near copies -------------------------------------------------------------------------


def near_copies(original: bytes) -> dict[str, bytes]:
    """Edits of the encoded image `original` that keep the picture, by `NEAR_COPY_KINDS`
    name: `identical` (the same bytes), `resized_50` and `resized_75` (LANCZOS),
    `jpeg_q50` (decoded and saved at quality 50), `brightened_15` (+15%), `cropped_3` (3%
    off each side); all but `identical` saved as JPEG at quality 90."""
    image = Image.open(io.BytesIO(original)).convert("RGB")
    w, h = image.size
    dx, dy = round(w * 0.03), round(h * 0.03)
    lanczos = Image.Resampling.LANCZOS
    return {
        "identical": bytes(original),
        "resized_50": jpeg(image.resize((max(1, w // 2), max(1, h // 2)), lanczos)),
        "resized_75": jpeg(image.resize((max(1, w * 3 // 4), max(1, h * 3 // 4)), lanczos)),
        "jpeg_q50": jpeg(image, quality=50),
        "brightened_15": jpeg(ImageEnhance.Brightness(image).enhance(1.15)),
        "cropped_3": jpeg(image.crop((dx, dy, w - dx, h - dy))),
    }


# --- WebDataset --------------------------------------------------------------------------


def write_tar(
    path: str | Path,
    samples: Mapping[str, Mapping[str, bytes | str | dict]]
    | Iterable[tuple[str, Mapping[str, bytes | str | dict]]],
) -> str:
    """Write a WebDataset tar of `samples` (key -> {extension: data}) to `path`; returns
    the path as a string. Data: bytes as they are, a str as UTF-8, a dict as JSON. Members
    `KEY.<extension>` are grouped and sorted by key, then extension; headers are fixed
    (mtime 0, uid/gid 0, mode 0o644, no owner names), so the same samples give the same
    bytes."""
    items = samples.items() if isinstance(samples, Mapping) else samples
    members = []
    for key, fields in items:
        for ext, value in fields.items():
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True).encode()
            elif isinstance(value, str):
                value = value.encode()
            members.append((key, ext, bytes(value)))
    members.sort(key=lambda m: (m[0], m[1]))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, ext, data in members:
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    Path(path).write_bytes(buffer.getvalue())
    return str(path)
