"""Writers and the commit protocol: markers, manifest last, crash leftovers, _latest."""

from __future__ import annotations

import gzip
import os

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.io.commit import VersionWriter, dataset_files, quarantine_files, read_manifest
from stages.io.errors import InputNotFound
from stages.io.read import ShardReader
from stages.io.shards import plan_shards
from stages.io.write import write_jsonl, write_parquet


def _table(n: int, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": [f"d{i}" for i in range(offset, offset + n)],
            "text": [f"text {i}" for i in range(offset, offset + n)],
            "_order": list(range(offset, offset + n)),
        }
    )


def _commit(writer: VersionWriter) -> dict:
    return writer.commit(
        inputs=[{"uri": "raw/*.jsonl"}],
        parameters={"min_words": 3},
        code_version="abc123",
        flow_run_id="run-1",
    )


def test_write_parquet_drops_underscore_columns_and_reports_bytes(tmp_path):
    target = tmp_path / "out" / "x.parquet"
    size = write_parquet(_table(3), str(target))
    assert size == target.stat().st_size
    table = pq.read_table(target)
    assert table.column_names == ["id", "text"]
    assert pq.ParquetFile(target).metadata.row_group(0).column(0).compression == "ZSTD"


def test_write_parquet_leaves_no_temporary_file(tmp_path):
    write_parquet(_table(3), str(tmp_path / "x.parquet"))
    assert os.listdir(tmp_path) == ["x.parquet"]


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.jsonl.zst"])
def test_write_jsonl_round_trips_through_the_reader(tmp_path, name):
    write_jsonl(_table(4), str(tmp_path / name))
    if name.endswith(".gz"):
        first = gzip.decompress((tmp_path / name).read_bytes()).splitlines()[0]
        assert orjson.loads(first) == {"id": "d0", "text": "text 0"}
    result = ShardReader().read(plan_shards(str(tmp_path / name))[0])
    assert result.table.column("id").to_pylist() == ["d0", "d1", "d2", "d3"]


def test_shard_markers_are_listed_by_done_shards(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    assert writer.done_shards() == {}
    entry = writer.write_part("00000-0000", _table(3))
    writer.commit_shard("00000-0000", [entry], {"rows_in": 5, "rows_out": 3})
    done = writer.done_shards()
    assert list(done) == ["00000-0000"]
    assert done["00000-0000"]["files"] == [
        {"path": "part-00000-0000-0.parquet", "rows": 3, "bytes": entry["bytes"]}
    ]
    assert done["00000-0000"]["stats"] == {"rows_in": 5, "rows_out": 3}
    assert not writer.is_committed()


def test_commit_shard_refuses_a_file_that_was_not_written(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    with pytest.raises(FileNotFoundError, match="part-00000-0000-0.parquet"):
        writer.commit_shard("00000-0000", [{"path": "part-00000-0000-0.parquet", "rows": 1}], {})
    assert writer.done_shards() == {}


def test_manifest_lists_every_file_with_rows_bytes_and_lineage(tmp_path):
    output = str(tmp_path / "out")
    writer = VersionWriter(output, "v1")
    for k in range(2):
        key = f"0000{k}-0000"
        data = writer.write_part(key, _table(3, offset=10 * k))
        bad = writer.write_quarantine(
            key, pa.table({"source": ["f"], "line": [1], "reason": ["f: line 1: x"], "raw": [None]})
        )
        writer.commit_shard(key, [data, bad], {"rows_out": 3})
    manifest = _commit(writer)
    assert writer.is_committed()
    assert [f["path"] for f in manifest["files"]] == [
        "part-00000-0000-0.parquet",
        "part-00001-0000-0.parquet",
    ]
    assert [f["path"] for f in manifest["quarantine"]] == [
        "quarantine/part-00000-0000.parquet",
        "quarantine/part-00001-0000.parquet",
    ]
    assert manifest["rows"] == 6 and manifest["quarantined_rows"] == 2
    assert manifest["bytes"] == sum(f["bytes"] for f in manifest["files"])
    assert manifest["shards"] == {"00000-0000": {"rows_out": 3}, "00001-0000": {"rows_out": 3}}
    assert manifest["parameters"] == {"min_words": 3}
    assert manifest["code_version"] == "abc123" and manifest["flow_run_id"] == "run-1"
    assert manifest["inputs"] == [{"uri": "raw/*.jsonl"}] and manifest["created_at"]
    assert read_manifest(output) == read_manifest(writer.uri) == manifest
    assert dataset_files(output) == [f"{output}/v1/part-0000{k}-0000-0.parquet" for k in range(2)]
    assert quarantine_files(output)[0] == f"{output}/v1/quarantine/part-00000-0000.parquet"


def test_crash_leftovers_are_not_listed_and_are_removed_at_commit(tmp_path):
    output = str(tmp_path / "out")
    writer = VersionWriter(output, "v1")
    # A crashed attempt wrote a file for shard 1 but never its marker.
    orphan = writer.write_part("00001-0000", _table(2))
    entry = writer.write_part("00000-0000", _table(3))
    writer.commit_shard("00000-0000", [entry], {})
    orphan_path = tmp_path / "out" / "v1" / orphan["path"]
    torn = tmp_path / "out" / "v1" / ".part-00002-0000-0.parquet.tmp-1234"
    torn.write_bytes(b"half a file")
    bookkeeping = tmp_path / "out" / "v1" / "_work" / "state.json"
    bookkeeping.parent.mkdir()
    bookkeeping.write_bytes(b"{}")
    assert orphan_path.exists()
    manifest = _commit(writer)
    assert not torn.exists()
    assert bookkeeping.exists()
    assert [f["path"] for f in manifest["files"]] == ["part-00000-0000-0.parquet"]
    assert not orphan_path.exists()
    assert (tmp_path / "out" / "v1" / "part-00000-0000-0.parquet").exists()


def test_manifest_is_written_after_every_marker(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(1))], {})
    assert not (tmp_path / "out" / "v1" / "_manifest.json").exists()
    assert not (tmp_path / "out" / "_latest").exists()
    _commit(writer)
    root = tmp_path / "out" / "v1"
    marker_time = (root / "_shards" / "00000-0000.json").stat().st_mtime_ns
    assert (root / "_manifest.json").stat().st_mtime_ns >= marker_time


def test_uncommitted_version_is_not_a_dataset(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(1))], {})
    with pytest.raises(InputNotFound, match="not a committed dataset"):
        dataset_files(writer.uri)
    with pytest.raises(InputNotFound):
        plan_shards(writer.uri)


def test_reader_trusts_only_the_manifest(tmp_path):
    output = str(tmp_path / "out")
    writer = VersionWriter(output, "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(3))], {})
    _commit(writer)
    # A file dropped into the version after the commit is not part of the dataset.
    write_parquet(_table(5), f"{writer.uri}/part-99999-0000-0.parquet")
    for target in (output, writer.uri):
        shards = plan_shards(target)
        assert [s.uri for s in shards] == [f"{writer.uri}/part-00000-0000-0.parquet"]
        assert shards[0].format == "parquet"


def test_latest_points_to_the_newest_commit(tmp_path):
    output = str(tmp_path / "out")
    for version, rows in (("v1", 1), ("v2", 2)):
        writer = VersionWriter(output, version)
        writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(rows))], {})
        _commit(writer)
    assert read_manifest(output)["version"] == "v2"
    assert read_manifest(f"{output}/v1")["rows"] == 1


def test_extra_files_are_listed_apart_from_data_and_kept(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(1))], {})
    (tmp_path / "out" / "v1" / "report.md").write_text("# report")
    manifest = writer.commit(
        inputs=[],
        parameters={},
        code_version="x",
        flow_run_id=None,
        extra_files=[{"path": "report.md", "rows": 0}],
    )
    assert manifest["extra_files"] == [{"path": "report.md", "rows": 0, "bytes": 8}]
    assert (tmp_path / "out" / "v1" / "report.md").exists()
    assert dataset_files(writer.uri) == [f"{writer.uri}/part-00000-0000-0.parquet"]


def test_extra_file_that_was_not_written_is_refused(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    with pytest.raises(FileNotFoundError, match="report.md"):
        writer.commit(
            inputs=[],
            parameters={},
            code_version="x",
            flow_run_id=None,
            extra_files=[{"path": "report.md"}],
        )
    assert not writer.is_committed()


def test_commit_twice_returns_the_same_manifest(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(1))], {})
    first = _commit(writer)
    assert _commit(writer) == first


def test_version_must_be_one_plain_path_segment(tmp_path):
    for bad in ("", "a/b", "_latest", ".x"):
        with pytest.raises(ValueError):
            VersionWriter(str(tmp_path), bad)


def test_commit_protocol_on_s3(s3_bucket):
    import s3fs

    output = f"s3://{s3_bucket}/curated"
    writer = VersionWriter(output, "2024-01-01")
    orphan = writer.write_part("00009-0000", _table(2))
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _table(3))], {"n": 3})
    assert list(writer.done_shards()) == ["00000-0000"]
    assert not writer.is_committed()
    manifest = _commit(writer)
    assert writer.is_committed()
    assert manifest["rows"] == 3
    files = dataset_files(output)
    assert files == [f"{output}/2024-01-01/part-00000-0000-0.parquet"]
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    assert not fs.exists(f"{s3_bucket}/curated/2024-01-01/{orphan['path']}")
    result = ShardReader().read(plan_shards(output)[0])
    assert result.table.column("id").to_pylist() == ["d0", "d1", "d2"]
