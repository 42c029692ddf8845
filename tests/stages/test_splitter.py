"""A Splitter turns a row into zero or more rows; the engine counts what a split adds, so
a run's counts still add up: rows read + rows added = written + removed + duplicates +
quarantined. The splitter here is the fixed-stride video splitter, which needs only the
probe's columns (no video is opened)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flows.runtime.engine import RunReport, StageMetrics, run_stage
from stages.base import Filter, Splitter
from stages.video.split import FixedStrideExtractorStage

FILE = 5


def _videos() -> pa.Table:
    """A 12 s video (three 4 s clips) and one the probe found no frame in (none)."""
    return pa.table(
        {
            "id": ["long", "empty"],
            "source": ["s3://raw/long.mp4", "s3://raw/empty.mp4"],
            "video_uri": ["s3://raw/long.mp4", "s3://raw/empty.mp4"],
            "video_fps": [24.0, 24.0],
            "video_frames": [288, 0],
            "_order": [(FILE << 32) | 0, (FILE << 32) | 1],
        }
    )


def _split() -> tuple[pa.Table, dict]:
    out, records = run_stage(FixedStrideExtractorStage(clip_len_s=4.0), _videos())
    assert len(records) == 1
    return out, records[0]


def test_run_stage_records_the_rows_a_split_adds():
    out, record = _split()
    assert out.num_rows == 3
    assert (record["rows_in"], record["rows_out"], record["rows_added"]) == (2, 3, 2)
    assert record["stage"] == "FixedStrideExtractorStage"


def test_a_row_that_becomes_nothing_is_removed_by_the_splitter():
    _, record = _split()
    metrics = StageMetrics(record["stage"])
    metrics.add(record)
    assert (metrics.added, metrics.removed) == (2, 1)
    assert metrics.to_dict()["added"] == 2 and metrics.to_dict()["removed"] == 1


def test_the_removed_sample_describes_the_row_that_became_nothing():
    _, record = _split()
    assert record["removed_sample"] == [{"id": "empty", "path": "s3://raw/empty.mp4"}]


def test_the_run_report_adds_up_with_a_splitter():
    out, record = _split()
    report = RunReport()
    report.add_shard({"rows_read": 2, "rows_written": out.num_rows, "metrics": [record]})
    assert report.rows_added == 2 and report.rows_removed == 1
    assert report.rows_read + report.rows_added == (
        report.rows_written
        + report.rows_removed
        + report.duplicates_removed
        + report.rows_quarantined
    )
    assert report.unaccounted == 0 and report.to_dict()["rows_added"] == 2


class _ShortClips(Filter):
    """Removes clips shorter than 4 s."""

    def score(self, batch):
        return batch.column("duration").to_numpy()

    def keep(self, scores):
        return scores >= 4.0


def test_counts_add_up_across_a_splitter_and_a_filter_after_it_over_two_shards():
    report = RunReport()
    splitter = FixedStrideExtractorStage(clip_len_s=4.0, min_clip_length_s=1.0)
    for frames in ([288, 0], [240, 120]):  # 3 + 0 clips; 3 (one of 2 s) + 2 (one of 1 s)
        videos = _videos().set_column(4, "video_frames", pa.array(frames))
        clips, first = run_stage(splitter, videos)
        kept, second = run_stage(_ShortClips(), clips)
        report.add_shard({"rows_read": 2, "rows_written": kept.num_rows, "metrics": first + second})
    stages = {s["stage"]: s for s in report.to_dict()["stages"]}
    assert stages["FixedStrideExtractorStage"]["added"] == 2 + 3
    assert stages["FixedStrideExtractorStage"]["removed"] == 1
    assert stages["_ShortClips"]["removed"] == 2
    assert report.rows_written == 6 and report.unaccounted == 0


def test_a_splitter_run_in_batches_counts_the_rows_added_by_every_batch():
    class _OneRowAtATime(FixedStrideExtractorStage):
        batch_size = 1

    out, records = run_stage(_OneRowAtATime(clip_len_s=4.0), pa.concat_tables([_videos()] * 2))
    assert out.num_rows == 6
    assert records[0]["rows_added"] == 4
    assert [s["id"] for s in records[0]["removed_sample"]] == ["empty", "empty"]


# --------------------------------------------------------------------------- children


def test_children_repeat_their_parents_columns_and_add_their_own():
    parents = pa.table({"id": ["a", "b"], "lang": ["en", "fr"]})
    children = Splitter.children(parents, [2, 1], {"part": pa.array([0, 1, 0])})
    assert children.to_pylist() == [
        {"id": "a", "lang": "en", "part": 0},
        {"id": "a", "lang": "en", "part": 1},
        {"id": "b", "lang": "fr", "part": 0},
    ]


def test_a_childs_order_keeps_the_file_then_packs_the_parents_sample_and_its_number():
    parents = pa.table({"id": ["a", "b", "c"], "_order": [(FILE << 32) | s for s in (0, 1, 7)]})
    children = Splitter.children(parents, [2, 0, 3], {})
    orders = children["_order"].to_pylist()
    assert orders == [
        (FILE << 32) | (0 << 16) | 0,
        (FILE << 32) | (0 << 16) | 1,
        (FILE << 32) | (7 << 16) | 0,
        (FILE << 32) | (7 << 16) | 1,
        (FILE << 32) | (7 << 16) | 2,
    ]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_a_column_of_the_children_replaces_the_parents_of_that_name():
    parents = pa.table({"id": ["video"], "_order": [0]})
    children = Splitter.children(parents, [2], {"id": pa.array(["clip-0", "clip-1"])})
    assert children.column_names == ["_order", "id"]
    assert children["id"].to_pylist() == ["clip-0", "clip-1"]


def test_order_numbers_that_would_collide_are_refused():
    parents = pa.table({"_order": [(FILE << 32) | 0]})
    assert Splitter.children(parents, [1 << 16], {}).num_rows == 1 << 16  # numbers 0..65535
    with pytest.raises(ValueError, match="more than 65535 parts"):
        Splitter.children(parents, [(1 << 16) + 1], {})
    parents = pa.table({"_order": [(FILE << 32) | (1 << 16)]})
    with pytest.raises(ValueError, match="more than 65535 samples"):
        Splitter.children(parents, [1], {})


def test_no_children_of_no_parents():
    parents = pa.table({"id": pa.array([], pa.string()), "_order": pa.array([], pa.int64())})
    assert Splitter.children(parents, np.zeros(0, np.int64), {}).num_rows == 0
