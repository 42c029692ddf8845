"""What a removed row looks like in a run report, per modality (`stages.samples`): a text
excerpt, an image thumbnail, the duration and path of a clip, the row it duplicates."""

from __future__ import annotations

import base64
import io
import json
import wave

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from stages.samples import describe_rows


def _image(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else None).save(buffer, format=fmt)
    return buffer.getvalue()


def _decoded(uri: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))


def _wav(seconds: float, rate: int = 8000) -> bytes:
    tone = (np.sin(np.arange(int(seconds * rate)) / 5) * 3000).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(tone.tobytes())
    return buffer.getvalue()


def test_text_rows_give_their_id_and_a_300_character_excerpt():
    rows = pa.table({"id": ["a", "b"], "text": ["x" * 1000, "short"], "score_words": [1, 2]})
    assert describe_rows(rows) == [{"id": "a", "text": "x" * 300}, {"id": "b", "text": "short"}]


def test_only_the_first_limit_rows_are_described():
    rows = pa.table({"id": [str(i) for i in range(10)], "text": ["t"] * 10})
    assert [d["id"] for d in describe_rows(rows, limit=2)] == ["0", "1"]
    assert describe_rows(rows, limit=0) == []
    assert describe_rows(rows.slice(0, 0)) == []


def test_the_text_field_is_the_stages_and_a_caption_stands_in_for_it():
    rows = pa.table({"id": ["a"], "content": ["body"], "caption": ["a red square"]})
    assert describe_rows(rows, text_field="content")[0]["text"] == "body"
    assert describe_rows(rows, text_field="text")[0]["text"] == "a red square"
    assert describe_rows(rows, text_field=None)[0]["text"] == "a red square"


@pytest.mark.parametrize(("column", "fmt"), [("png", "PNG"), ("jpg", "JPEG"), ("image", "PNG")])
def test_an_image_gives_a_small_jpeg_thumbnail_and_its_size_but_never_its_bytes(column, fmt):
    data = _image(fmt, (400, 200))
    rows = pa.table({"id": ["i1"], column: [data], "caption": ["red"]})

    [sample] = describe_rows(rows)

    assert (sample["width"], sample["height"]) == (400, 200)
    assert sample["text"] == "red"
    thumb = _decoded(sample["thumbnail"])
    assert thumb.format == "JPEG" and max(thumb.size) <= 96
    assert thumb.size == (96, 48)
    assert thumb.convert("RGB").getpixel((48, 24))[0] > 200  # still red
    assert "image_error" not in sample
    assert not [v for v in sample.values() if isinstance(v, bytes)]
    json.dumps(sample)


def test_a_transparent_png_thumbnail_is_drawn_on_white():
    data = _image("PNG", (50, 50), mode="RGBA")  # fully transparent
    [sample] = describe_rows(pa.table({"id": ["t"], "png": [data]}))
    thumb = _decoded(sample["thumbnail"]).convert("RGB")
    assert thumb.size == (50, 50) and min(thumb.getpixel((25, 25))) > 240


@pytest.mark.parametrize(
    "data",
    [b"not an image at all", _image("JPEG", (64, 64))[:200], b"", None],
    ids=["garbage", "truncated-jpeg", "empty", "null"],
)
def test_an_undecodable_image_gives_no_thumbnail_and_the_reason_without_raising(data):
    rows = pa.table({"id": ["bad", "good"], "jpg": pa.array([data, _image("JPEG", (8, 8))])})

    bad, good = describe_rows(rows)

    assert bad["thumbnail"] is None and bad["image_error"]
    assert bad == describe_rows(rows)[0]  # the same reason every run: no object address
    assert " at 0x" not in bad["image_error"]
    assert "width" not in bad
    assert good["thumbnail"] and (good["width"], good["height"]) == (8, 8)


def test_an_image_column_that_is_not_bytes_is_not_an_image():
    rows = pa.table({"id": ["a"], "image": ["s3://b/a.jpg"]})
    assert describe_rows(rows) == [{"id": "a"}]


def test_huggingface_image_structs_give_a_thumbnail_from_their_bytes():
    image = pa.array([{"bytes": _image("PNG", (10, 20)), "path": "a.png"}])
    [sample] = describe_rows(pa.table({"id": ["a"], "image": image}))
    assert (sample["width"], sample["height"]) == (10, 20)
    assert max(_decoded(sample["thumbnail"]).size) <= 96


def test_audio_rows_give_their_duration_path_and_transcript():
    rows = pa.table(
        {
            "id": ["a1", "a2"],
            "audio_filepath": ["s3://bucket/a1.flac", "s3://bucket/a2.flac"],
            "duration": [3.2, None],
            "text": ["hello world", "bye"],
        }
    )
    assert describe_rows(rows) == [
        {"id": "a1", "text": "hello world", "duration": 3.2, "path": "s3://bucket/a1.flac"},
        {"id": "a2", "text": "bye", "path": "s3://bucket/a2.flac"},
    ]


def test_wav_bytes_without_a_duration_column_give_the_duration_from_their_header():
    rows = pa.table({"id": ["w"], "wav": [_wav(1.5)], "audio_uri": ["/data/w.wav"]})
    [sample] = describe_rows(rows)
    assert sample == {"id": "w", "duration": 1.5, "path": "/data/w.wav"}


def test_flac_bytes_with_a_duration_column_give_that_duration_and_no_bytes():
    rows = pa.table({"id": ["f"], "flac": [b"fLaC\x00\x00"], "duration": [7.25]})
    assert describe_rows(rows) == [{"id": "f", "duration": 7.25}]


def test_video_clips_give_their_source_video_start_end_and_duration():
    rows = pa.table(
        {
            "id": ["c0", "c1"],
            "video_uri": ["s3://v/a.mp4", "s3://v/a.mp4"],
            "start": [0.0, 2.5],
            "end": [2.5, 6.0],
            "clip": [b"\x00\x00\x00\x18ftypmp42", b"\x00"],
        }
    )
    assert describe_rows(rows) == [
        {"id": "c0", "start": 0.0, "end": 2.5, "duration": 2.5, "path": "s3://v/a.mp4"},
        {"id": "c1", "start": 2.5, "end": 6.0, "duration": 3.5, "path": "s3://v/a.mp4"},
    ]


def test_a_videos_duration_column_wins_over_start_and_end():
    rows = pa.table({"id": ["v"], "mp4": [b"\x00"], "duration": [12.0]})
    assert describe_rows(rows) == [{"id": "v", "duration": 12.0}]


def test_dedup_columns_are_kept_with_the_rows_content():
    rows = pa.table(
        {
            "id": ["d9"],
            "text": ["same words"],
            "duplicate_of": ["d1"],
            "similarity": [0.97],
            "reason": ["near-duplicate"],
            "cluster": [4],
        }
    )
    assert describe_rows(rows) == [
        {
            "id": "d9",
            "text": "same words",
            "duplicate_of": "d1",
            "similarity": 0.97,
            "reason": "near-duplicate",
        }
    ]


def test_a_described_row_is_json_whatever_the_column_types():
    rows = pa.table({"id": [b"raw-id", b"\xff" * 4], "reason": [[1, 2], None]})
    first, second = describe_rows(rows)
    json.dumps([first, second])
    assert first == {"id": "raw-id", "reason": "[1, 2]"}
    assert second == {"id": "<4 bytes>"}


def test_a_removed_video_clip_is_shown_by_a_thumbnail_of_its_middle_frame(tmp_path):
    from videos import Span, write_video

    clip = write_video(tmp_path / "c.mp4", [Span(1, 0), Span(1, 5)], 24, (160, 120))
    rows = pa.table(
        {
            "id": ["moving", "broken"],
            "clip": pa.array([clip.read_bytes(), b"not a video"], pa.binary()),
            "start": [0.0, 4.0],
            "end": [2.0, 5.0],
        }
    )
    good, bad = describe_rows(rows, 2)
    assert good["thumbnail"].startswith("data:image/jpeg;base64,")
    assert (good["width"], good["height"], good["duration"]) == (160, 120, 2.0)
    assert "thumbnail" not in bad and bad["duration"] == 1.0
