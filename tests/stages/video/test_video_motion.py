"""Motion filter (NeMo Curator's): moving clips kept and still ones removed whether the
figures come from H.264's motion vectors or from optical flow (VP9), on one scale; small,
single-frame and undecodable clips; the keep rule at its thresholds."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from videos import Span, render, write_frames, write_video

from stages.base import FilterChain
from stages.video.motion import MotionFilterStage, MotionVectorDecodeStage

CODECS = {"vectors": ("libx264", "mp4"), "flow": ("libvpx-vp9", "webm")}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    """Encoded 2 s clips at 24 fps: "<source>-<moving|still>" at 320x240, and small ones."""
    folder = tmp_path_factory.mktemp("motion")
    out = {}
    for source, (codec, suffix) in CODECS.items():
        for name, motion in (("moving", 3.0), ("still", 0.0)):
            path = folder / f"{source}-{name}.{suffix}"
            out[f"{source}-{name}"] = write_video(path, [Span(2.0, 0, motion)], codec=codec)
    for name, motion in (("moving", 3.0), ("still", 0.0)):
        path = folder / f"small-{name}.mp4"
        out[f"small-{name}"] = write_video(path, [Span(2.0, 1, motion)], size=(160, 120))
    out["one-frame"] = write_frames(folder / "one.mp4", render([Span(1.0, 0)])[:1])
    out["short"] = write_video(folder / "short.mp4", [Span(0.25, 0, motion=3.0)])  # 6 frames
    return {name: path.read_bytes() for name, path in out.items()}


def _table(clips: dict[str, bytes], *names: str) -> pa.Table:
    return pa.table({"id": list(names), "clip": pa.array([clips[n] for n in names], pa.binary())})


@pytest.mark.parametrize("source", ["vectors", "flow"])
def test_a_moving_clip_is_kept_and_a_still_one_removed(clips, source):
    table = _table(clips, f"{source}-moving", f"{source}-still")

    measured = MotionVectorDecodeStage().process(table)
    kept = MotionFilterStage().process(table)

    assert measured["motion_source"].to_pylist() == [source, source]
    moving, still = measured["motion_score_global_mean"].to_pylist()
    assert moving > 5 * 0.00098
    assert still < 0.00098 / 10
    assert kept["id"].to_pylist() == [f"{source}-moving"]


def test_vectors_and_flow_measure_the_same_motion_on_nemos_scale(clips):
    measured = MotionVectorDecodeStage().process(_table(clips, "vectors-moving", "flow-moving"))
    # The clips pan 3 px a frame across and 1.5 down: ~3.35 px over width + height = 560.
    expected = math.hypot(3.0, 1.5) / (320 + 240)

    for column in ("motion_score_global_mean", "motion_score_per_patch_min_256"):
        by_vectors, by_flow = measured[column].to_pylist()
        assert by_vectors == pytest.approx(expected, rel=0.3)
        assert 1 / 3 < by_flow / by_vectors < 3
    assert measured.schema.field("motion_score_global_mean").type == pa.float64()


def test_a_clip_under_256_px_is_measured_on_one_patch(clips):
    table = _table(clips, "small-moving", "small-still")

    measured = MotionVectorDecodeStage().process(table)

    patch = measured["motion_score_per_patch_min_256"].to_pylist()
    assert patch[0] == pytest.approx(math.hypot(3.0, 1.5) / (160 + 120), rel=0.3)
    assert patch[1] == 0.0
    assert MotionFilterStage().process(table)["id"].to_pylist() == ["small-moving"]


def test_a_clip_with_a_still_region_is_removed_for_its_per_patch_minimum(tmp_path):
    # 512x256 is two 256 px patches: the left one pans, the right one stands still.
    frames = render([Span(2.0, 0, motion=3.0)], size=(512, 256))
    frames[:, :, 256:] = render([Span(2.0, 1, motion=0.0)], size=(512, 256))[:, :, 256:]
    for source, (codec, suffix) in CODECS.items():
        data = write_frames(tmp_path / f"half.{suffix}", frames, codec=codec).read_bytes()
        table = pa.table({"id": [source], "clip": [data]})

        measured = MotionVectorDecodeStage().process(table)

        assert measured["motion_score_global_mean"][0].as_py() > 0.00098, source
        assert measured["motion_score_per_patch_min_256"][0].as_py() < 0.000001, source
        assert MotionFilterStage().process(table).num_rows == 0, source


def test_score_only_keeps_every_clip_with_its_global_mean(clips):
    table = _table(clips, "vectors-moving", "vectors-still", "flow-still")

    out = MotionFilterStage(score_only=True).process(table)

    assert out["id"].to_pylist() == table["id"].to_pylist()
    means = MotionVectorDecodeStage().process(table)["motion_score_global_mean"]
    assert out["score_MotionFilterStage"].to_pylist() == means.to_pylist()


def test_an_undecodable_clip_scores_nan_and_is_removed_without_failing_the_batch(clips):
    table = pa.table(
        {
            "id": ["garbage", "empty", "good"],
            "clip": pa.array([b"not a video" * 50, b"", clips["vectors-moving"]], pa.binary()),
        }
    )

    measured = MotionVectorDecodeStage().process(table)

    means = measured["motion_score_global_mean"].to_pylist()
    assert math.isnan(means[0]) and math.isnan(means[1]) and means[2] > 0.00098
    assert measured["motion_source"].to_pylist() == [None, None, "vectors"]
    assert MotionFilterStage().process(table)["id"].to_pylist() == ["good"]


def test_a_single_frame_clip_is_a_still(clips):
    measured = MotionVectorDecodeStage().process(_table(clips, "one-frame"))

    assert measured["motion_score_global_mean"].to_pylist() == [0.0]
    assert MotionFilterStage().process(_table(clips, "one-frame")).num_rows == 0


def test_a_clip_shorter_than_one_sampling_step_is_measured_on_every_frame(clips):
    # At 2 frames a second only frame 0, a keyframe without vectors, would be sampled.
    measured = MotionVectorDecodeStage().process(_table(clips, "short"))

    assert measured["motion_source"].to_pylist() == ["vectors"]
    assert measured["motion_score_global_mean"][0].as_py() > 5 * 0.00098


def test_the_filter_applies_nemos_rule_to_the_decode_stages_columns_at_the_thresholds():
    # No clip column: the filter must decide from the figures alone.
    table = pa.table(
        {
            "id": ["both-at", "global-under", "patch-under", "nan"],
            "motion_score_global_mean": [0.00098, 0.00097, 0.01, math.nan],
            "motion_score_per_patch_min_256": [0.000001, 0.01, 0.0000009, 0.01],
        }
    )

    assert MotionFilterStage().process(table)["id"].to_pylist() == ["both-at"]
    looser = MotionFilterStage(global_mean_threshold=0.0005, per_patch_min_256_threshold=0)
    assert looser.process(table)["id"].to_pylist() == ["both-at", "global-under", "patch-under"]
    chained = FilterChain([MotionFilterStage(keep_score=True)]).process(table)
    assert chained["id"].to_pylist() == ["both-at"]
    assert chained["score_MotionFilterStage"].to_pylist() == [0.00098]


def test_the_decode_stage_asks_for_its_cpus_and_rejects_a_bad_rate():
    assert MotionVectorDecodeStage(num_cpus_per_worker=4).resources.cpus == 4
    assert MotionVectorDecodeStage().resources.cpus == 1
    with pytest.raises(ValueError, match="target_fps"):
        MotionVectorDecodeStage(target_fps=0)
    with pytest.raises(KeyError, match="clip"):
        MotionVectorDecodeStage().process(pa.table({"id": ["a"]}))


def test_figures_do_not_depend_on_the_batch_or_the_decoder_threads(clips):
    table = _table(clips, "vectors-moving", "flow-moving")
    columns = ["motion_score_global_mean", "motion_score_per_patch_min_256"]

    together = MotionVectorDecodeStage().process(table).select(columns)
    alone = [MotionVectorDecodeStage().process(table.slice(i, 1)) for i in (0, 1)]
    threaded = MotionVectorDecodeStage(num_cpus_per_worker=4).process(table).select(columns)

    assert pa.concat_tables(a.select(columns) for a in alone).equals(together)
    assert threaded.equals(together)
