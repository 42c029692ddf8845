"""Decoding images, with Pillow.

`ImageDecoder` is the first stage of an image pipeline: it decodes every row's image once,
adds its size, format and mode, and sends what cannot be used (empty, truncated,
undecodable, too many pixels) to the quarantine.

`load_rgb` is what every scoring stage (perceptual hash, CLIP, NSFW) looks at: the EXIF
orientation applied, CMYK, palette, grey and 16-bit modes converted to 8-bit RGB, and
transparency composited over white (a transparent pixel's hidden colour is noise). The
stored bytes are never changed.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from PIL import Image, ImageOps, UnidentifiedImageError

from stages.base import Resources, Validator
from stages.io.quarantine import Record, RowPlaces, quarantine_table

BACKGROUND = (255, 255, 255)
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp")
MAX_PIXELS = 89_478_485  # Pillow's own warning limit (PIL.Image.MAX_IMAGE_PIXELS)
DECODED_COLUMNS = ("width", "height", "image_format", "image_mode", "image_bytes")
_ORIENTATION = 0x0112  # EXIF tag; values 5 to 8 turn the image a quarter
_TURNED = (2, 3, 4, 5, 6, 7, 8)  # orientations that flip or turn the stored pixels
_ADDRESS = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")  # in Pillow's DecompressionBombError


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
    return to_rgb(_upright(image, image.getexif().get(_ORIENTATION, 1)))


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as its EXIF `orientation` says (`ImageOps.exif_transpose`), or
    `image` itself when it is upright: no copy of the pixels."""
    return ImageOps.exif_transpose(image) if orientation in _TURNED else image


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


HASH_SIDE = 96  # smallest side a JPEG is decoded at for its perceptual hash


class ImageDecoder(Validator):
    """Decode every row's image once, record what it is, and quarantine what is unusable.

    The image is the row's `image_column`, or (None) the first of `IMAGE_COLUMNS`
    (`image`, `jpg`, `jpeg`, `png`, `webp`, `gif`, `tif`, `tiff`, `bmp`) that is not null
    in the row: a WebDataset sample has one binary column per member extension, a folder
    of files has `image`. Each image is opened with Pillow and fully decoded (`load()`, so
    a truncated file fails); a header claiming more than `max_pixels` pixels is refused
    before any pixel is allocated. Pillow's own hard limit (twice
    `PIL.Image.MAX_IMAGE_PIXELS`) still applies above it.

    With `phash=True` it also adds `phash` (uint64), the perceptual hash of the image it
    has just decoded (upright, `to_rgb`), without decoding a second time: bit for bit what
    `ImagePHash` gives, and `imagehash.phash`. With `phash="fast"` a JPEG is instead decoded
    at the smallest of libjpeg's scales (1/2, 1/4, 1/8) that keeps `HASH_SIDE` pixels a
    side: all of its data is still read and checked (a truncated or corrupt file is
    quarantined as before), the stage runs about 1.8 times as fast on web-sized photos
    (at the bare decode rate), and the hash of a JPEG may differ from the exact one by a
    few bits (at most 4 of 64, 0.8 on average, identical for 6 in 10 images on
    `benchmarks/image.py`'s pictures; the dedup threshold is 8); other formats hash
    exactly. Hashes of the two modes compare only within those few bits. Quarantined rows
    have no hash (they leave the batch).

    Columns added: `width`, `height` (int32, as displayed: after the EXIF orientation, so a
    portrait photo stored sideways is taller than wide), `image_format` (Pillow's name:
    `JPEG`, `PNG`, `WEBP`, `GIF`...), `image_mode` (the stored mode: `RGB`, `RGBA`, `CMYK`,
    `P`, `L`...), `image_bytes` (int64, the encoded size). The bytes are never changed.

    Later stages read one column, `image`. When a row's image was in another column (a
    WebDataset `jpg` member), its bytes move to `image` and the row's `extension` column
    is set to that column's name; the member's cell is then null, and a member column left
    all null is dropped. The WebDataset writer writes `image` as `KEY.<extension>`, so the
    sample keeps its member's extension (`jpeg` and `tif` come back as `jpg` and `tiff`,
    the writer's spelling), and the bytes are stored once: keeping the member column
    beside `image` would hold them twice and give the writer two columns for one
    `KEY.jpg`. Other members of a sample (a second image such as a mask) stay in their
    columns.

    Quarantined rows (one record each, `raw` = the image bytes when there are any), the
    reason starting `"{source}: line {n}: id {id!r}: "` (`n` = the sample number in the
    source, `_order & 0xFFFFFFFF`; 0 without `_order`) and then saying:

    - `no image ...`: the row has no image column, or it is null (for a file above the
      reader's `max_inline_mb`, the reason says so and names its `image_uri`);
    - `empty image (0 bytes) ...`;
    - `not an image Pillow can identify ...` (an HTML page saved as `.jpg`);
    - `truncated <FORMAT> image: ...`: the data ends before the last pixel;
    - `undecodable <FORMAT> image: ...`: Pillow's error (corrupt data, a bad EXIF block);
    - `<W>x<H> pixels is over max_pixels ...` (read from the header; Pillow refuses the
      largest claims itself, then the reason gives the pixel count it saw), or `over
      Pillow's decompression bomb limit: ...` when `max_pixels` is above that limit.
    """

    nemo_equivalent: ClassVar[str] = "ImageReaderStage"

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        image_column: str | None = None,
        max_pixels: int = MAX_PIXELS,
        phash: bool | Literal["fast"] = False,
    ):
        if max_pixels < 1:
            raise ValueError(f"max_pixels={max_pixels}: must be at least 1")
        if phash not in (False, True, "fast"):
            raise ValueError(f"phash={phash!r}: expected False, True or 'fast'")
        self.image_column = image_column
        self.max_pixels = max_pixels
        self.phash = phash

    def check(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        columns = self._image_columns(batch)
        n = batch.num_rows
        chosen = np.full(n, -1, dtype=np.int64)  # index in `columns` of each row's image
        for j in reversed(range(len(columns))):
            valid = batch.column(columns[j]).is_valid().to_numpy(zero_copy_only=False)
            chosen[valid] = j
        image_type = _common_binary_type([batch.schema.field(c).type for c in columns])
        if columns:
            images = pa.compute.coalesce(*[batch.column(c).cast(image_type) for c in columns])
        else:
            images = pa.nulls(n, image_type)
        data = images.to_pylist()

        good = np.zeros(n, dtype=bool)
        facts = []
        records = []
        place = RowPlaces(batch)
        with warnings.catch_warnings():
            # max_pixels decides; Pillow's warning below its hard limit is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            for i in range(n):
                if data[i] is None:
                    why = self._missing(batch, columns, i)
                else:
                    found, why = _inspect(data[i], self.max_pixels, self.phash)
                    if why is None:
                        good[i] = True
                        facts.append(found)
                        continue
                    why = f"{why} (column {columns[chosen[i]]!r})" if not data[i] else why
                records.append(
                    Record(place.source(i), place.line(i), place.reason(i, why), data[i])
                )

        keep = pa.array(good, pa.bool_())
        out = batch.filter(keep)
        out = _with_image(out, images.filter(keep), chosen[good], columns)
        out = out.drop_columns([c for c in DECODED_COLUMNS if c in out.column_names])
        columns6 = zip(*facts, strict=True) if facts else ([],) * 6
        width, height, formats, modes, sizes, hashes = columns6
        out = out.append_column("width", pa.array(width, pa.int32()))
        out = out.append_column("height", pa.array(height, pa.int32()))
        out = out.append_column("image_format", pa.array(formats, pa.string()))
        out = out.append_column("image_mode", pa.array(modes, pa.string()))
        out = out.append_column("image_bytes", pa.array(sizes, pa.int64()))
        if self.phash:
            if "phash" in out.column_names:
                out = out.drop_columns(["phash"])
            out = out.append_column("phash", pa.array(hashes, pa.uint64()))
        return out, quarantine_table(records)

    def _image_columns(self, batch: pa.Table) -> list[str]:
        """The batch's columns that may hold a row's image, in order of preference."""
        names = [self.image_column] if self.image_column else IMAGE_COLUMNS
        columns = [c for c in names if c in batch.column_names]
        for name in columns:
            kind = batch.schema.field(name).type
            if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)) and not (
                pa.types.is_null(kind)
            ):
                raise TypeError(
                    f"{self.stage_name}: column {name!r} is {kind}, expected binary "
                    "(the encoded image bytes)"
                )
        return columns

    def _missing(self, batch: pa.Table, columns: list[str], i: int) -> str:
        """Why row `i` has no image bytes."""
        if "image_uri" in batch.column_names and self.image_column in (None, "image"):
            uri = batch.column("image_uri")[i].as_py()
            if uri is not None:
                return (
                    f"no image bytes: the file is larger than the reader's max_inline_mb "
                    f"and was not read inline ({uri})"
                )
        if self.image_column:
            if not columns:
                return f"no image: no {self.image_column!r} column"
            return f"no image: {self.image_column!r} is null"
        if not columns:
            return f"no image: no image column (looked for {', '.join(IMAGE_COLUMNS)})"
        return f"no image: {', '.join(columns)} all null"


def _inspect(
    data: bytes, max_pixels: int, phash: bool | Literal["fast"] = False
) -> tuple[tuple, str | None]:
    """`((width, height, format, mode, size, phash), None)` for a usable image, else
    `((), why)`. With `phash`, the perceptual hash of the image just decoded, as
    `ImagePHash` computes it (upright, `to_rgb`): one decode for both; else None. With
    `phash="fast"`, that of a JPEG decoded at a reduced scale."""
    if not data:
        return (), "empty image (0 bytes)"
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        claimed = _BOMB_PIXELS.search(str(error))
        if claimed and int(claimed.group(1)) > max_pixels:
            return (), _too_many(f"{int(claimed.group(1)):,} pixels", max_pixels)
        return (), f"over Pillow's decompression bomb limit: {error}"
    except UnidentifiedImageError:
        return (), f"not an image Pillow can identify (starts with {data[:8].hex(' ')})"
    except Exception as error:  # noqa: BLE001 - a bad image is quarantined, never raised
        return (), f"undecodable image: {_message(error)}"
    with image:
        kind, mode = image.format or "unknown", image.mode
        width, height = image.size
        if width * height > max_pixels:
            return (), _too_many(f"{width}x{height} pixels", max_pixels)
        if phash == "fast" and kind == "JPEG":
            # Every byte of the entropy-coded data is still decoded (a truncated or
            # corrupt file fails as before); only the inverse DCT runs at a reduced scale,
            # down to no less than HASH_SIDE pixels a side: what the hash needs.
            image.draft(mode, (min(width, HASH_SIDE), min(height, HASH_SIDE)))
        try:
            image.load()
        except Exception as error:  # noqa: BLE001
            cut = isinstance(error, OSError) and "truncated" in str(error)
            return (), f"{'truncated' if cut else 'undecodable'} {kind} image: {_message(error)}"
        try:
            orientation = image.getexif().get(_ORIENTATION, 1)
        except Exception as error:  # noqa: BLE001 - load_rgb would fail on it as well
            return (), f"undecodable {kind} image: bad EXIF block: {_message(error)}"
        hashed = None
        if phash:
            from stages.image.phash import phash64

            try:
                hashed = phash64(to_rgb(_upright(image, orientation)))
            except Exception as error:  # noqa: BLE001
                return (), f"undecodable {kind} image: {_message(error)}"
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return (width, height, kind, mode, len(data), hashed), None


def _too_many(pixels: str, max_pixels: int) -> str:
    return f"{pixels} is over max_pixels ({max_pixels:,}); a decompression bomb?"


def _message(error: Exception) -> str:
    # Pillow names a buffer by its address: dropped, so a reason is the same every run.
    text = _ADDRESS.sub("data", str(error)) or "no message"
    return f"{type(error).__name__}: {text}"


def _common_binary_type(types: list[pa.DataType]) -> pa.DataType:
    return pa.large_binary() if any(pa.types.is_large_binary(t) for t in types) else pa.binary()


def _with_image(table: pa.Table, images, chosen: np.ndarray, columns: list[str]) -> pa.Table:
    """`table` with the chosen bytes in `image`; bytes taken from a member column move."""
    if "image" in table.column_names:
        table = table.set_column(table.schema.get_field_index("image"), "image", images)
    else:
        table = table.append_column("image", images)
    moved = [(j, c) for j, c in enumerate(columns) if c != "image" and (chosen == j).any()]
    if not moved:
        return table
    extension = None
    if "extension" in table.column_names:
        extension = table.column("extension")
        if not pa.types.is_string(extension.type):
            extension = None
    names = np.array([None] * table.num_rows, dtype=object)
    for j, name in moved:
        here = chosen == j
        names[here] = name
        column = table.column(name)
        left = pa.compute.if_else(
            pa.array(here, pa.bool_()), pa.nulls(table.num_rows, column.type), column
        )
        index = table.schema.get_field_index(name)
        if left.null_count == table.num_rows:
            table = table.remove_column(index)
        else:
            table = table.set_column(index, name, left)
    from_member = pa.array(np.isin(chosen, [j for j, _ in moved]), pa.bool_())
    given = extension if extension is not None else pa.nulls(table.num_rows, pa.string())
    values = pa.compute.if_else(from_member, pa.array(names, pa.string()), given)
    if "extension" in table.column_names:
        return table.set_column(table.schema.get_field_index("extension"), "extension", values)
    return table.append_column("extension", values)
