"""Decoding images for scoring, with Pillow.

`load_rgb` is what every scoring stage (perceptual hash, CLIP, NSFW) looks at: the EXIF
orientation applied, CMYK, palette, grey and 16-bit modes converted to 8-bit RGB, and
transparency composited over white (a transparent pixel's hidden colour is noise). The
stored bytes are never changed.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)


def load_rgb(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """The image encoded in `data` as 8-bit RGB, upright. Raises `ValueError` for an image
    larger than `max_pixels` (checked from the header, before decoding) and Pillow's errors
    (`PIL.UnidentifiedImageError`, `OSError`) for one that does not decode."""
    image = Image.open(io.BytesIO(data))
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise ValueError(
            f"{image.width}x{image.height} pixels is over the limit of {max_pixels:,} "
            "(a decompression bomb?)"
        )
    image.load()
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB, transparency composited over white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit grey to 8-bit
    return image.convert("RGB")
