"""The clip checks that need no model: duration, resolution and aspect keep rules on the
transcoder's columns, and the blank-clip filter on small clips made here (black, uniform
grey, textured), an undecodable one and a missing one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from videos import Span, render, write_frames

from stages.base import Filter
from stages.video.filters import (
    BlankClipFilter,
    ClipAspectRatioFilter,
    ClipDurationFilter,
    ClipResolutionFilter,
)

SIZE = (64, 48)  # width, height


def _kept(stage: Filter, **columns) -> list:
    rows = pa.table({"id": [f"c{i}" for i in range(len(next(iter(columns.values()))))], **columns})
    return stage.process(rows)["id"].to_pylist()


def test_duration_keeps_clips_between_the_bounds_inclusive():
    durations = [0.5, 2.0, 5.0, 10.0, 12.0]
    assert _kept(ClipDurationFilter(2.0, 10.0), duration=durations) == ["c1", "c2", "c3"]


def test_duration_bounds_may_be_left_open():
    durations = [0.5, 2.0, 60.0]
    assert _kept(ClipDurationFilter(min_s=2.0), duration=durations) == ["c1", "c2"]
    assert _kept(ClipDurationFilter(max_s=2.0), duration=durations) == ["c0", "c1"]


def test_a_clip_without_a_duration_is_removed():
    durations = pa.array([3.0, None, float("nan")], pa.float64())
    assert _kept(ClipDurationFilter(1.0, 5.0), duration=durations) == ["c0"]


def test_duration_bounds_are_checked_and_the_column_required():
    with pytest.raises(ValueError, match="min_s=5 is above max_s=2"):
        ClipDurationFilter(5, 2)
    with pytest.raises(KeyError, match="no column 'duration'.*ClipTranscodingStage"):
        ClipDurationFilter(1.0).process(pa.table({"id": ["a"]}))


def test_resolution_keeps_clips_at_least_as_wide_and_as_tall():
    widths, heights = [320, 640, 1280, 256], [240, 360, 200, 256]
    stage = ClipResolutionFilter(min_width=300, min_height=240)
    assert _kept(stage, width=widths, height=heights) == ["c0", "c1"]


def test_the_resolution_score_is_the_shorter_side():
    rows = pa.table({"width": [320, 180], "height": [240, 320]})
    assert ClipResolutionFilter().score(rows).tolist() == [240, 180]


def test_aspect_ratio_keeps_long_over_short_side_up_to_the_maximum_either_way_up():
    widths = [320, 240, 300, 100, 400]
    heights = [240, 320, 100, 300, 100]
    stage = ClipAspectRatioFilter(max_ratio=3.0)
    # 4:3, 3:4, 3:1 and 1:3 are kept; 4:1 is not
    assert _kept(stage, width=widths, height=heights) == ["c0", "c1", "c2", "c3"]


def test_a_clip_with_no_size_fails_the_aspect_rule():
    assert _kept(ClipAspectRatioFilter(), width=[0, 320], height=[0, 240]) == ["c1"]


def test_aspect_ratio_below_one_is_refused():
    with pytest.raises(ValueError, match="max_ratio=0.5"):
        ClipAspectRatioFilter(max_ratio=0.5)


def _clip(tmp_path, name: str, pixels: np.ndarray) -> bytes:
    return write_frames(tmp_path / f"{name}.mp4", pixels, fps=12).read_bytes()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> pa.Table:
    """2 s clips at 12 fps: black, uniform grey, a moving textured scene, then bytes that
    are no video and a missing clip."""
    folder = tmp_path_factory.mktemp("blank")
    width, height = SIZE
    flat = np.zeros((24, height, width, 3), np.uint8)

    return pa.table(
        {
            "id": ["black", "grey", "textured", "junk", "missing"],
            "clip": pa.array(
                [
                    _clip(folder, "black", flat),
                    _clip(folder, "grey", flat + 128),
                    _clip(folder, "textured", render([Span(2.0, 1)], fps=12, size=SIZE)),
                    b"<html>not a clip</html>",
                    None,
                ],
                pa.binary(),
            ),
        }
    )


def test_blank_scores_are_the_share_of_blank_frames(clips):
    scores = BlankClipFilter().score(clips).tolist()
    assert scores == [1.0, 1.0, 0.0, 1.0, 1.0]


def test_blank_clip_filter_removes_black_and_grey_and_keeps_the_textured_clip(clips):
    kept, removed, _ = BlankClipFilter().apply(clips.slice(0, 3))
    assert kept["id"].to_pylist() == ["textured"]
    assert removed["id"].to_pylist() == ["black", "grey"]


def test_an_undecodable_or_missing_clip_counts_as_blank(clips):
    kept = BlankClipFilter(max_blank_fraction=0.99).process(clips)
    assert kept["id"].to_pylist() == ["textured"]


def test_a_clip_half_blank_is_kept_at_the_default_and_removed_below_it(tmp_path):
    width, height = SIZE
    moving = render([Span(1.0, 2)], fps=12, size=SIZE)
    pixels = np.concatenate([np.zeros((12, height, width, 3), np.uint8), moving])
    rows = pa.table({"id": ["half"], "clip": [_clip(tmp_path, "half", pixels)]})
    (score,) = BlankClipFilter().score(rows).tolist()
    assert score == 0.5
    assert BlankClipFilter().process(rows).num_rows == 1
    assert BlankClipFilter(max_blank_fraction=0.4).process(rows).num_rows == 0


def test_blank_fraction_must_be_a_share():
    with pytest.raises(ValueError, match="max_blank_fraction=2"):
        BlankClipFilter(max_blank_fraction=2)
