"""The commit protocol's removed rows: `removed/part-<shard>.parquet` per shard, in the
shard's marker and the manifest, kept at commit and across a resume; apart from the data."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from stages.io.commit import VersionWriter, dataset_files, read_manifest, removed_files


def _rows(ids: list[str], removed_by: str | None = None) -> pa.Table:
    columns = {"id": ids, "text": [f"text of {i}" for i in ids], "_order": list(range(len(ids)))}
    if removed_by:
        columns["removed_by"] = [removed_by] * len(ids)
        columns["reason"] = [f"{removed_by}: score 1 < min_words 50"] * len(ids)
    return pa.table(columns)


def _commit(writer: VersionWriter) -> dict:
    return writer.commit(inputs=[], parameters={}, code_version="abc", flow_run_id=None)


def _shard(writer: VersionWriter, key: str, kept: list[str], gone: list[str]) -> dict:
    part = writer.write_part(key, _rows(kept))
    entry = writer.write_removed(key, _rows(gone, "WordCountFilter"))
    writer.commit_shard(key, [part], {"rows_written": len(kept)}, removed=[entry])
    return entry


def test_removed_rows_are_written_per_shard_and_listed_apart_from_the_data(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    entry = _shard(writer, "00000-0000", ["a", "b"], ["c"])
    _shard(writer, "00001-0000", ["d"], ["e", "f"])

    assert entry["path"] == "removed/part-00000-0000.parquet" and entry["rows"] == 1
    assert writer.done_shards()["00000-0000"]["removed"] == [entry]
    manifest = _commit(writer)

    assert [(f["path"], f["shard"], f["rows"]) for f in manifest["removed"]] == [
        ("removed/part-00000-0000.parquet", "00000-0000", 1),
        ("removed/part-00001-0000.parquet", "00001-0000", 2),
    ]
    assert manifest["removed_rows"] == 3 and manifest["rows"] == 3
    uri = str(tmp_path / "out")
    assert removed_files(uri) == [f"{uri}/v1/{f['path']}" for f in manifest["removed"]]
    assert all("/removed/" not in f for f in dataset_files(uri))
    table = pq.read_table(removed_files(uri)[1])
    assert table.column_names == ["id", "text", "removed_by", "reason"]  # no `_` columns
    assert table["id"].to_pylist() == ["e", "f"]


def test_a_file_under_removed_given_as_a_data_file_counts_as_removed(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    entry = writer.write_removed("00000-0000", _rows(["x"], "Dedup"))
    writer.commit_shard("00000-0000", [entry], {})
    marker = writer.done_shards()["00000-0000"]
    assert marker["files"] == [] and marker["removed"] == [entry]


def test_listed_removed_files_stay_and_leftovers_go_at_commit(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    _shard(writer, "00000-0000", ["a"], ["b"])
    # A crashed attempt at shard 00001 left its removed rows but no marker.
    writer.write_removed("00001-0000", _rows(["z"], "WordCountFilter"))
    _commit(writer)
    removed = tmp_path / "out" / "v1" / "removed"
    assert sorted(p.name for p in removed.iterdir()) == ["part-00000-0000.parquet"]


def test_a_resumed_run_keeps_the_removed_rows_of_shards_committed_before(tmp_path):
    first = VersionWriter(str(tmp_path / "out"), "v1")
    _shard(first, "00000-0000", ["a"], ["b", "c"])
    # The run stops; a new one (another writer of the same version) finishes the rest.
    resumed = VersionWriter(str(tmp_path / "out"), "v1")
    assert list(resumed.done_shards()) == ["00000-0000"]
    _shard(resumed, "00001-0000", ["d"], ["e"])
    manifest = _commit(resumed)
    assert [f["shard"] for f in manifest["removed"]] == ["00000-0000", "00001-0000"]
    assert manifest["removed_rows"] == 3
    ids = [
        i for f in removed_files(str(tmp_path / "out")) for i in pq.read_table(f)["id"].to_pylist()
    ]
    assert ids == ["b", "c", "e"]


def test_a_shard_without_removed_rows_lists_none(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _rows(["a"]))], {})
    manifest = _commit(writer)
    assert manifest["removed"] == [] and manifest["removed_rows"] == 0
    assert not (tmp_path / "out" / "v1" / "removed").exists()


def test_a_manifest_from_before_removed_rows_reads_as_having_none(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    writer.commit_shard("00000-0000", [writer.write_part("00000-0000", _rows(["a"]))], {})
    _commit(writer)
    path = tmp_path / "out" / "v1" / "_manifest.json"
    old = orjson.loads(path.read_bytes())
    del old["removed"], old["removed_rows"]
    path.write_bytes(orjson.dumps(old))
    assert removed_files(str(tmp_path / "out")) == []
    assert read_manifest(str(tmp_path / "out"))["rows"] == 1
