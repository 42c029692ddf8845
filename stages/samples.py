"""What a removed row looks like in a run report, whatever its modality.

`describe_rows` turns the first rows of a table into small JSON-able dicts: the id, a text
excerpt, an image thumbnail (a JPEG data URI of at most 96 px a side), the duration and
path of an audio or video row, and why a dedup step removed it. Media bytes never go into
a description, so a sample travels with the run report at a few kilobytes a row.
"""

from __future__ import annotations

import base64
import io
import re
import wave
from typing import Any

import pyarrow as pa

TEXT_CHARS = 300
THUMBNAIL_PX = 96
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp")
AUDIO_COLUMNS = ("audio", "flac", "wav", "mp3")
AUDIO_PATH_COLUMNS = ("audio_filepath", "audio_uri")
VIDEO_COLUMNS = ("video_uri", "clip", "mp4", "webm", "start", "end")
VIDEO_PATH_COLUMNS = ("video_uri",)
CLIP_COLUMNS = ("clip", "mp4", "webm")
KEPT_COLUMNS = ("duplicate_of", "similarity", "reason")
_ADDRESS = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def describe_rows(rows: pa.Table, limit: int = 3, text_field: str | None = "text") -> list[dict]:
    """One JSON-able dict per row for the first `limit` rows of `rows`.

    Keys, each only when the row has what it needs:

    - `id`;
    - `text`: the first 300 characters of `text_field` (else of `caption`);
    - an image (a binary `image`, `jpg`, `jpeg`, `png` or `webp` column): `thumbnail`, a
      `data:image/jpeg;base64,...` URI of at most 96 px a side, and `width`/`height` of the
      original; an image that does not decode gives `thumbnail: None` and `image_error`
      (the reason) instead of raising;
    - a video clip (`clip`, `mp4` or `webm` bytes, without an image column): the
      `thumbnail` of its middle frame, as for an image (none when it does not decode);
    - audio (`audio`, `flac`, `wav`, `mp3` bytes or an `audio_filepath`/`audio_uri`) and
      video (`video_uri`, `clip`, `mp4`, `webm`, `start`/`end`): `duration` (seconds, from
      a `duration` column, else `end - start`, else a WAV header), `path` (the URI
      column), `start`, `end`;
    - `duplicate_of`, `similarity`, `reason` as the row holds them.
    """
    rows = rows.slice(0, max(limit, 0))
    names = set(rows.column_names)
    out: list[dict] = [{} for _ in range(rows.num_rows)]
    if not out:
        return out

    def values(name: str) -> list:
        return rows.column(name).to_pylist()

    if "id" in names:
        for item, value in zip(out, values("id"), strict=True):
            item["id"] = _jsonable(value)

    text = next((c for c in (text_field, "caption") if c and c in names), None)
    if text:
        for item, value in zip(out, values(text), strict=True):
            if isinstance(value, str):
                item["text"] = value[:TEXT_CHARS]

    image = next((c for c in IMAGE_COLUMNS if c in names and _holds_bytes(rows.schema, c)), None)
    if image:
        for item, value in zip(out, values(image), strict=True):
            item.update(_thumbnail(_bytes_of(value)))

    clip = next((c for c in CLIP_COLUMNS if c in names and _holds_bytes(rows.schema, c)), None)
    if clip and not image:
        for item, value in zip(out, values(clip), strict=True):
            frame = _middle_frame(_bytes_of(value))
            if frame is not None:
                item.update(_thumbnail(frame))

    audio = any(c in names for c in AUDIO_COLUMNS + AUDIO_PATH_COLUMNS)
    if audio or any(c in names for c in VIDEO_COLUMNS):
        _describe_media(rows, out, names)

    for name in KEPT_COLUMNS:
        if name in names:
            for item, value in zip(out, values(name), strict=True):
                if value is not None:
                    item[name] = _jsonable(value)
    return out


def _describe_media(rows: pa.Table, out: list[dict], names: set[str]) -> None:
    """`duration`, `path`, `start`, `end` of audio and video rows."""

    def column(name: str) -> list:
        return rows.column(name).to_pylist() if name in names else [None] * rows.num_rows

    path = next((c for c in AUDIO_PATH_COLUMNS + VIDEO_PATH_COLUMNS if c in names), None)
    wav = next((c for c in ("wav", "audio") if c in names), None)
    columns = zip(
        column("duration"), column("start"), column("end"), column(path or ""), strict=True
    )
    for i, (duration, start, end, uri) in enumerate(columns):
        item = out[i]
        if _number(start) is not None:
            item["start"] = _number(start)
        if _number(end) is not None:
            item["end"] = _number(end)
        seconds = _number(duration)
        if seconds is None and "start" in item and "end" in item:
            seconds = item["end"] - item["start"]
        if seconds is None and wav:
            # Only rows that are described are read, so a header parse costs little.
            seconds = _wav_seconds(_bytes_of(rows.column(wav)[i].as_py()))
        if seconds is not None:
            item["duration"] = seconds
        if isinstance(uri, str):
            item["path"] = uri


def _middle_frame(data: bytes | None) -> bytes | None:
    """A video clip's middle frame as PNG bytes (for `_thumbnail`); None when the clip
    does not decode (its row then has no thumbnail: why is the clip's own error)."""
    if not data:
        return None
    try:
        from PIL import Image

        from stages.video.frames import sample

        frames = sample(data, fps=4.0)
        buffer = io.BytesIO()
        Image.fromarray(frames[len(frames) // 2]).save(buffer, format="PNG")
        return buffer.getvalue()
    except Exception:  # noqa: BLE001 - a report never fails on a bad clip
        return None


def _thumbnail(data: bytes | None) -> dict[str, Any]:
    if not data:
        return {"thumbnail": None, "image_error": "no image bytes"}
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            img.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode at a fraction
            img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                small = Image.new("RGB", rgba.size, "white")
                small.paste(rgba, mask=rgba.getchannel("A"))
            else:
                small = img.convert("RGB")
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=75)
    except Exception as error:  # noqa: BLE001 - a bad image is reported, never raised
        # PIL names the buffer by its address: dropped, so a report is the same every run.
        reason = _ADDRESS.sub("data", f"{type(error).__name__}: {error}")
        return {"thumbnail": None, "image_error": reason[:200]}
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"thumbnail": uri, "width": width, "height": height}


def _wav_seconds(data: bytes | None) -> float | None:
    if not data or not data.startswith(b"RIFF"):
        return None
    try:
        with wave.open(io.BytesIO(data)) as audio:
            return audio.getnframes() / audio.getframerate()
    except Exception:  # noqa: BLE001 - no duration rather than a failed report
        return None


def _holds_bytes(schema: pa.Schema, name: str) -> bool:
    kind = schema.field(name).type
    if pa.types.is_struct(kind):  # HuggingFace's Image/Audio: {bytes, path}
        return kind.get_field_index("bytes") >= 0
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _bytes_of(value: Any) -> bytes | None:
    if isinstance(value, dict):
        value = value.get("bytes")
    return value if isinstance(value, bytes) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):  # an id stored as bytes: its text, never media bytes
        try:
            return value.decode("utf-8") if len(value) <= 256 else f"<{len(value)} bytes>"
        except UnicodeDecodeError:
            return f"<{len(value)} bytes>"
    return str(value)
