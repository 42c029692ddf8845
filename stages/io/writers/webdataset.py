"""WebDataset tar shards in img2dataset's layout, each with a Parquet of its samples'
metadata.

Files of one shard (key `00003-0000`, number 3) in the version:

    part-00003-0000-0.tar       rows 0 .. 9,999 of the shard, one sample per row
    part-00003-0000-0.parquet   one row per sample of that tar, same order: `key` and the
                                non-binary columns
    part-00003-0000-1.tar       rows 10,000 .. 19,999, when the shard has more rows
    part-00003-0000-1.parquet

Sample keys follow img2dataset: the shard's number (its position in the plan), then the
row's index in the shard, both zero-padded: `000030042` is row 42 of shard 3. While shards
number under 100,000 and hold at most 10,000 rows each, keys are img2dataset's 9 digits
(5 + 4). A larger number widens the key: the widths are the first pair of (5, 4), (5, 5),
(6, 5), (6, 6), (7, 6), ... that fits both the shard number and the shard's row count, so a
shard of 25,000 rows has 10-digit keys. img2dataset widens its fields for the whole run;
this writer sees one shard at a time, so the two widths grow in step instead: each key
length then has a single split into (shard, row), and keys of shards of different sizes
never collide.

Members of a sample, `KEY.<ext>`, sorted by name, so a sample's members are adjacent and
samples come in key order (Ray Data's `read_webdataset` rejects or splits samples otherwise):

- a binary column named `image`, `audio`, `video` or `clip`: its bytes, unchanged, with the
  extension given by the row's `extension` column, else told by the bytes' magic number
  (JPEG, PNG, WebP, GIF, TIFF, FLAC, WAV, MP3, AAC, Ogg, MP4/M4A/MOV/AVIF/HEIC, WebM/MKV, AVI);
- a binary column `preview` (a video clip's animated WebP preview): `KEY.webp`;
- any other binary column (`jpg`, `png`, `webp`, `flac`, `wav`, `mp4`, ...): its bytes,
  unchanged, as `KEY.<column name>`;
- the first string column of `txt`, `caption`, `text`: `KEY.txt` (UTF-8);
- every other column (`id`, `source`, scalars, lists, structs): `KEY.json`, one object.
  It is always written, so every row is a sample. A string column `json` holding a JSON
  object (the WebDataset reader's column of the input's `KEY.json`) is merged into it
  field by field, a column of the same name winning, so a read-write round trip keeps
  `KEY.json` flat (a null one is left out; any other value is written as the field
  `json`). The sibling Parquet keeps the column as it is.

A null media or text value leaves its member out. Columns starting with `_` are never
written; an input column `key` is replaced by the sample key. Tar headers are fixed (mtime
0, uid/gid 0, mode 0o644): the same rows give byte-identical tars.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
import pyarrow as pa

from stages.io.commit import VersionWriter
from stages.io.write import parquet_bytes, public_columns, tar_bytes
from stages.io.writers.base import DatasetWriter, is_binary, write_file

SAMPLES_PER_TAR = 10_000
NAMED_MEDIA = ("image", "audio", "video", "clip")
RENAMED = {"preview": "webp"}  # column -> member extension
TEXT_COLUMNS = ("txt", "caption", "text")
SHARD_DIGITS, INDEX_DIGITS = 5, 4
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_ALIASES = {"jpeg": "jpg", "tif": "tiff"}


@dataclass(frozen=True)
class WebDatasetWriter(DatasetWriter):
    """Writes a shard as WebDataset tars of at most `samples_per_tar` samples, each with a
    sibling Parquet of its samples' metadata (see the module docstring for the layout).

    The sibling Parquet's file entry has `"rows": 0` (its rows are the tar's samples, which
    the tar's entry counts) and `"metadata_of": <tar path>`.
    """

    name = "webdataset"
    samples_per_tar: int = SAMPLES_PER_TAR

    def __post_init__(self):
        if self.samples_per_tar < 1:
            raise ValueError(f"samples_per_tar={self.samples_per_tar}: must be at least 1")

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if table.num_rows == 0:
            return []
        table = public_columns(table)
        layout = _Layout.of(table, shard.key)
        keys = sample_keys(getattr(shard, "number", 0), table.num_rows)
        files = []
        for n, start in enumerate(range(0, table.num_rows, self.samples_per_tar)):
            rows = table.slice(start, self.samples_per_tar)
            tar_keys = keys[start : start + rows.num_rows]
            tar_path = version.part_path(shard.key, n, "tar")
            meta_path = version.part_path(shard.key, n, "parquet")
            members = layout.members(rows, tar_keys, shard.key)
            tar_size = write_file(version, tar_path, tar_bytes(members))
            meta_size = write_file(
                version, meta_path, parquet_bytes(layout.metadata_table(rows, tar_keys))
            )
            files.append({"path": tar_path, "rows": rows.num_rows, "bytes": tar_size})
            files.append(
                {"path": meta_path, "rows": 0, "bytes": meta_size, "metadata_of": tar_path}
            )
        return files


def key_widths(number: int, rows: int) -> tuple[int, int]:
    """Digits of (shard number, row index) in the sample keys of a shard of `rows` rows."""
    shard_digits, index_digits = SHARD_DIGITS, INDEX_DIGITS
    while number >= 10**shard_digits or rows > 10**index_digits:
        if index_digits < shard_digits:
            index_digits += 1
        else:
            shard_digits += 1
    return shard_digits, index_digits


def sample_keys(number: int, rows: int) -> list[str]:
    """The sample keys of the `rows` rows of shard `number`, in row order."""
    if number < 0:
        raise ValueError(f"shard number {number}: must not be negative")
    shard_digits, index_digits = key_widths(number, rows)
    prefix = f"{number:0{shard_digits}d}"
    return [f"{prefix}{i:0{index_digits}d}" for i in range(rows)]


def sniff_extension(data: bytes) -> str | None:
    """The usual file extension of encoded media `data`, from its magic number; None when
    the format is not one of those listed in the module docstring."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"RIFF":
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 mark AAC's ADTS header.
        return "mp3" if head[1] & 0x06 else "aac"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "heic"
        return {b"M4A ": "m4a", b"qt  ": "mov"}.get(brand, "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head else "mkv"
    return None


def _contains_binary(data_type: pa.DataType) -> bool:
    if is_binary(data_type):
        return True
    return any(_contains_binary(data_type.field(i).type) for i in range(data_type.num_fields))


def _is_string(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _json_default(value):
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("bytes")
    return str(value)  # Decimal, timedelta: their exact text


@dataclass(frozen=True)
class _Layout:
    """Which column becomes which member, decided once per shard from its schema."""

    media: tuple[str, ...]
    text: str | None
    json: tuple[str, ...]
    metadata_columns: tuple[str, ...]
    extension: str | None
    merged_json: bool = False  # a string column `json`, merged into KEY.json

    @classmethod
    def of(cls, table: pa.Table, shard_key: str) -> _Layout:
        types = dict(zip(table.column_names, table.schema.types, strict=True))
        text = next((n for n in TEXT_COLUMNS if n in types and _is_string(types[n])), None)
        media, json, metadata = [], [], []
        for name, data_type in types.items():
            if is_binary(data_type):
                if name not in NAMED_MEDIA and (name == "json" or not _EXTENSION.match(name)):
                    raise ValueError(
                        f"shard {shard_key}: binary column {name!r} cannot name a tar member "
                        "(name a media column by its extension, such as jpg, flac or mp4)"
                    )
                media.append(name)
                continue
            if _contains_binary(data_type):
                raise ValueError(
                    f"shard {shard_key}: column {name!r} ({data_type}) holds bytes, which "
                    "cannot go in a sample's JSON; move them to a top-level binary column"
                )
            if name != "key":
                metadata.append(name)
                if name != text:
                    json.append(name)
        named = any(n in NAMED_MEDIA for n in media)
        extension = "extension" if named and _is_string(types.get("extension", pa.null())) else None
        merged = "json" in json and _is_string(types["json"])
        return cls(tuple(media), text, tuple(json), tuple(metadata), extension, merged)

    def members(self, rows: pa.Table, keys: list[str], shard_key: str) -> list[tuple[str, bytes]]:
        media = {name: rows.column(name).to_pylist() for name in self.media}
        texts = rows.column(self.text).to_pylist() if self.text else None
        extensions = rows.column(self.extension).to_pylist() if self.extension else None
        objects = rows.select(list(self.json)).to_pylist() if self.json else [{}] * rows.num_rows
        if self.merged_json:
            objects = [_merged(obj) for obj in objects]
        ids = rows.column("id").to_pylist() if "id" in rows.column_names else None
        out = []
        for i, key in enumerate(keys):
            try:
                row = {name: values[i] for name, values in media.items()}
                text = texts[i] if texts else None
                extension = extensions[i] if extensions else None
                out.extend(self._sample(key, objects[i], text, row, extension))
            except ValueError as error:
                which = f" (id {ids[i]!r})" if ids else ""
                raise ValueError(f"shard {shard_key}: sample {key}{which}: {error}") from None
        return out

    def _sample(
        self, key: str, obj: dict, text: str | None, media: dict, extension: str | None
    ) -> list[tuple[str, bytes]]:
        """The members of one sample, as `(name, data)`."""
        try:
            sample = {"json": ("the JSON columns", orjson.dumps(obj, default=_json_default))}
        except TypeError as error:
            raise ValueError(f"its JSON cannot be written: {error}") from None
        if text is not None:
            sample["txt"] = (self.text, text.encode())
        for name, data in media.items():
            if data is None:
                continue
            ext = RENAMED.get(name, name)
            if name in NAMED_MEDIA:
                ext = _extension_of(data, extension, name)
            if ext in sample:
                raise ValueError(f"columns {sample[ext][0]!r} and {name!r} both make {key}.{ext}")
            sample[ext] = (name, data)
        return [(f"{key}.{ext}", data) for ext, (_, data) in sample.items()]

    def metadata_table(self, rows: pa.Table, keys: list[str]) -> pa.Table:
        """The sibling Parquet's rows: `key`, then the non-binary columns."""
        key = pa.array(keys, pa.string())
        return rows.select(list(self.metadata_columns)).add_column(0, "key", key)


def _merged(obj: dict) -> dict:
    """`obj` with the JSON object in its `json` string merged in, field by field (`obj`'s
    own fields win); a null `json` is left out, any other value kept as the field."""
    text = obj["json"]
    fields = {k: v for k, v in obj.items() if k != "json"}
    if text is None:
        return fields
    try:
        inner = orjson.loads(text)
    except orjson.JSONDecodeError:
        return obj
    return {**inner, **fields} if isinstance(inner, dict) else obj


def _extension_of(data: bytes, given: str | None, column: str) -> str:
    if given:
        ext = given.strip().lstrip(".").lower()
        ext = _ALIASES.get(ext, ext)
        if not _EXTENSION.match(ext) or ext == "json":
            raise ValueError(f"extension {given!r} cannot name a tar member")
        return ext
    ext = sniff_extension(data)
    if ext is None:
        raise ValueError(
            f"cannot tell the format of column {column!r} from its bytes "
            f"(starting {bytes(data[:8])!r}); give the rows an `extension` column"
        )
    return ext
