"""Each clip gets an animated WebP preview at target_fps and target_height; a clip that
cannot be decoded keeps its row with a null preview."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image, ImageSequence
from videos import Span, write_video

from stages.video.preview import PreviewStage


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """3 s of 24 fps, 320x240, with a hard cut at 1.5 s."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    return write_video(path, [Span(1.5, 0), Span(1.5, 1)], 24, (320, 240)).read_bytes()


def _webp(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    return image


def test_the_preview_is_an_animated_webp_at_the_target_rate_and_height(clip):
    table = pa.table({"id": ["a"], "clip": [clip]})
    out = PreviewStage(target_fps=2.0, target_height=120).process(table)
    assert out.column_names == ["id", "clip", "preview"]
    image = _webp(out.column("preview")[0].as_py())
    assert image.is_animated
    assert image.n_frames == 6  # 3 s at 2 a second
    assert image.size == (160, 120)  # aspect kept
    assert image.info["loop"] == 0
    durations = []
    for frame in ImageSequence.Iterator(image):
        frame.load()  # Pillow reads a WebP frame's duration as it decodes it
        durations.append(frame.info["duration"])
    assert durations == [500] * 6
    # The hard cut shows: the first and last frames differ.
    image.seek(0)
    first = image.convert("RGB").getpixel((80, 60))
    image.seek(5)
    last = image.convert("RGB").getpixel((80, 60))
    assert first != last


def test_nemo_curators_defaults_give_one_frame_a_second_240_high(clip):
    out = PreviewStage().process(pa.table({"id": ["a"], "clip": [clip]}))
    image = _webp(out.column("preview")[0].as_py())
    assert (image.n_frames, image.size) == (3, (320, 240))


def test_an_undecodable_clip_keeps_its_row_with_a_null_preview(clip):
    table = pa.table({"id": ["a", "b", "c"], "clip": pa.array([b"junk", clip, None], pa.binary())})
    out = PreviewStage(target_height=60).process(table)
    assert out.column("id").to_pylist() == ["a", "b", "c"]
    previews = out.column("preview").to_pylist()
    assert previews[0] is None and previews[2] is None
    assert _webp(previews[1]).size == (80, 60)


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="quality"):
        PreviewStage(quality=101)
    with pytest.raises(ValueError, match="compression_level"):
        PreviewStage(compression_level=7)
    with pytest.raises(ValueError, match="target_fps"):
        PreviewStage(target_fps=0)
