"""ClipTranscodingStage: clips cut frame-accurately out of 4 s videos made here (two
moving scenes, a keyframe every 2 s, H.264 with an AAC tone or VP9), re-encoded as small
standalone files; a clip the video has no frames for is left null with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pytest
from videos import Span, write_video

from stages.video.filters import ClipValidator
from stages.video.frames import frames
from stages.video.transcode import ClipTranscodingStage

FPS = 24
SPANS = [Span(2.0, 0), Span(2.0, 1)]  # 96 frames, keyframes at frames 0 and 48
CLIPS = [(0, 30), (30, 48), (45, 96)]  # the second and third start between keyframes


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("transcode")
    return {
        "h264": write_video(folder / "tone.mp4", SPANS, FPS, audio=True),
        "vp9": write_video(folder / "scenes.webm", SPANS, FPS, codec="libvpx-vp9"),
    }


def _clip_rows(uri: Path, spans=CLIPS) -> pa.Table:
    """What the splitter hands the transcoder: one row per clip of one video."""
    return pa.table(
        {
            "id": [f"clip-{a}-{b}" for a, b in spans],
            "source": [str(uri)] * len(spans),
            "video_uri": [str(uri)] * len(spans),
            "start_frame": [a for a, _ in spans],
            "end_frame": [b for _, b in spans],
            "start": [a / FPS for a, _ in spans],
            "end": [b / FPS for _, b in spans],
        }
    )


@pytest.fixture(scope="module")
def h264_clips(sources) -> pa.Table:
    return ClipTranscodingStage().process(_clip_rows(sources["h264"]))


def _decoded(data: bytes) -> dict:
    """What a player sees in an encoded clip."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        times = [frame.time for frame in container.decode(video)]
        audio = container.streams.audio
        return {
            "format": container.format.name,
            "codec": video.codec_context.name,
            "frames": len(times),
            # the last frame lasts one frame interval too
            "duration": times[-1] - times[0] + 1 / float(video.average_rate),
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": float(video.average_rate),
            "audio": bool(audio),
        }


def _audio_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / stream.codec_context.sample_rate


def test_every_clip_decodes_to_exactly_its_frames_and_its_duration(h264_clips):
    for row in h264_clips.to_pylist():
        decoded = _decoded(row["clip"])
        assert decoded["frames"] == row["end_frame"] - row["start_frame"] == row["frames"]
        assert decoded["duration"] == pytest.approx(row["end"] - row["start"], abs=1 / FPS)
        assert row["clip_error"] is None and row["clip_bytes"] == len(row["clip"])


def test_a_clip_starts_and_ends_on_its_own_frames_not_on_a_keyframe(sources, h264_clips):
    source = np.stack([f.pixels for f in frames(str(sources["h264"]))]).astype(np.int16)
    for row in h264_clips.to_pylist():
        clip = np.stack([f.pixels for f in frames(row["clip"])]).astype(np.int16)
        for k, wanted in ((0, row["start_frame"]), (-1, row["end_frame"] - 1)):
            near = [j for j in (wanted - 1, wanted, wanted + 1) if 0 <= j < len(source)]
            closest = min(near, key=lambda j: np.abs(clip[k] - source[j]).mean())
            assert closest == wanted, (row["id"], k)


def test_clips_default_to_h264_in_mp4_at_the_source_size_and_rate(h264_clips):
    for row in h264_clips.to_pylist():
        decoded = _decoded(row["clip"])
        assert row["extension"] == "mp4" and "mp4" in decoded["format"]
        assert row["codec"] == decoded["codec"] == "h264"
        assert (row["width"], row["height"]) == decoded["size"] == (320, 240)
        assert row["fps"] == decoded["fps"] == FPS


def test_the_source_bytes_columns_are_not_carried_into_the_clips(sources):
    rows = _clip_rows(sources["h264"], [(0, 24)])
    rows = rows.append_column("mp4", pa.array([sources["h264"].read_bytes()], pa.binary()))
    out = ClipTranscodingStage().process(rows)
    assert "mp4" not in out.column_names and _decoded(out["clip"][0].as_py())["frames"] == 24


def test_clips_cut_from_a_vp9_source_are_frame_exact(sources):
    out = ClipTranscodingStage().process(_clip_rows(sources["vp9"]))
    for row in out.to_pylist():
        decoded = _decoded(row["clip"])
        assert decoded["frames"] == row["end_frame"] - row["start_frame"]
        assert decoded["codec"] == "h264"


def test_the_vp9_encoder_writes_webm(sources):
    out = ClipTranscodingStage(encoder="libvpx-vp9").process(
        _clip_rows(sources["h264"], [(30, 48)])
    )
    row = out.to_pylist()[0]
    decoded = _decoded(row["clip"])
    assert row["extension"] == "webm" and "webm" in decoded["format"]
    assert row["codec"] == decoded["codec"] == "vp9" and decoded["frames"] == 18


@pytest.mark.parametrize(("height", "size"), [(120, (160, 120)), (100, (132, 100))])
def test_target_height_scales_to_even_sizes_keeping_the_aspect(sources, height, size):
    out = ClipTranscodingStage(target_height=height).process(_clip_rows(sources["h264"], [(0, 24)]))
    row = out.to_pylist()[0]
    assert (row["width"], row["height"]) == _decoded(row["clip"])["size"] == size
    assert row["width"] % 2 == row["height"] % 2 == 0
    assert abs(row["width"] - 320 * height / 240) < 2  # 4:3 within the rounding to even


def test_target_fps_of_half_the_rate_halves_the_frames_and_keeps_the_duration(sources):
    out = ClipTranscodingStage(target_fps=12).process(_clip_rows(sources["h264"]))
    for row in out.to_pylist():
        decoded = _decoded(row["clip"])
        assert row["frames"] == decoded["frames"] == (row["end_frame"] - row["start_frame"]) // 2
        assert row["fps"] == decoded["fps"] == 12
        assert decoded["duration"] == pytest.approx(row["end"] - row["start"], abs=1 / 12)


def test_keep_audio_gives_each_clip_its_stretch_of_the_sound(sources):
    out = ClipTranscodingStage(keep_audio=True).process(_clip_rows(sources["h264"]))
    for row in out.to_pylist():
        assert _decoded(row["clip"])["audio"]
        # AAC works in frames of 1024 samples (21 ms at 48 kHz): one may be lost at each end
        assert _audio_seconds(row["clip"]) == pytest.approx(row["end"] - row["start"], abs=0.05)


def test_clips_have_no_audio_unless_asked(h264_clips):
    assert not any(_decoded(row["clip"])["audio"] for row in h264_clips.to_pylist())


def test_a_clip_past_the_end_of_the_video_is_null_with_the_reason(sources):
    out = ClipTranscodingStage().process(_clip_rows(sources["h264"], [(0, 24), (90, 120)]))
    good, late = out.to_pylist()
    assert good["clip"] is not None and good["clip_error"] is None
    assert late["clip"] is None and late["frames"] is None
    assert late["clip_error"] == "the video ended before the clip's last frame"


def test_the_clip_validator_quarantines_a_clip_that_was_not_cut_naming_its_span(sources):
    uri = sources["h264"]
    out = ClipTranscodingStage().process(_clip_rows(uri, [(0, 24), (90, 120)]))
    good, bad = ClipValidator().check(out)
    assert good["id"].to_pylist() == ["clip-0-24"] and "clip_error" not in good.column_names
    assert bad["rows"].to_pylist() == [1]
    assert bad["reason"].to_pylist() == [
        f"{uri}: line 0: id 'clip-90-120': clip 3.75-5.00 s: "
        "the video ended before the clip's last frame"
    ]


def test_a_video_that_cannot_be_opened_leaves_all_its_clips_null_with_the_reason(tmp_path):
    out = ClipTranscodingStage().process(_clip_rows(tmp_path / "gone.mp4", [(0, 24), (24, 48)]))
    assert out["clip"].null_count == 2
    assert out["clip_error"].to_pylist() == ["cannot cut the clip: no such file"] * 2


def test_an_unknown_encoder_is_refused_naming_the_ones_available():
    with pytest.raises(ValueError, match=r"encoder='h265_magic'.*'libvpx-vp9'.*'libx264'"):
        ClipTranscodingStage(encoder="h265_magic")
