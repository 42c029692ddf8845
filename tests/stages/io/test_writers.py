"""The dataset writer registry, ParquetWriter and ManifestWriter (NeMo-style JSONL)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.io.commit import VersionWriter, read_manifest
from stages.io.shards import Shard
from stages.io.writers import (
    WRITERS,
    DatasetWriter,
    ManifestWriter,
    ParquetWriter,
    WebDatasetWriter,
    dataset_writer,
)

SHARD = Shard(uri="/in/audio.parquet", file_index=2, format="parquet")


def _audio_table(n: int = 4) -> pa.Table:
    return pa.table(
        {
            "id": [f"utt-{i}" for i in range(n)],
            "text": [f"hello {i}" for i in range(n)],
            "audio": [b"fLaC" + bytes([i]) for i in range(n)],
            "duration": [1.5 + i for i in range(n)],
            "audio_filepath": [f"/data/utt-{i}.flac" for i in range(n)],
            "_order": list(range(n)),
        }
    )


def test_the_registry_holds_parquet_webdataset_manifest_and_nemo_clips():
    from stages.io.writers import NemoClipsWriter

    assert WRITERS == {
        "parquet": ParquetWriter,
        "webdataset": WebDatasetWriter,
        "manifest": ManifestWriter,
        "nemo": NemoClipsWriter,
    }
    assert all(issubclass(w, DatasetWriter) and w.name == n for n, w in WRITERS.items())


def test_dataset_writer_builds_a_writer_with_its_options():
    assert dataset_writer("webdataset", samples_per_tar=5) == WebDatasetWriter(samples_per_tar=5)


def test_an_unknown_writer_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"'tfrecord'.*manifest, nemo, parquet, webdataset"):
        dataset_writer("tfrecord")


def test_an_unknown_option_is_an_error_naming_the_writer():
    with pytest.raises(ValueError, match=r"parquet writer: .*'samples_per_tar'"):
        dataset_writer("parquet", samples_per_tar=5)


def test_parquet_writer_writes_one_part_per_shard_like_write_part(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    table = _audio_table()
    files = ParquetWriter().write_shard(version, SHARD, table)
    assert files == [{"path": "part-00002-0000-0.parquet", "rows": 4, "bytes": files[0]["bytes"]}]
    written = pq.read_table(tmp_path / "out" / "v1" / "part-00002-0000-0.parquet")
    assert written.equals(table.drop_columns(["_order"]))


def test_parquet_writer_writes_nothing_for_an_empty_table(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    assert ParquetWriter().write_shard(version, SHARD, _audio_table(0)) == []
    assert not (tmp_path / "out").exists()


def test_manifest_round_trip_has_a_line_per_row_and_no_binary_column(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    table = _audio_table()
    files = ManifestWriter().write_shard(version, SHARD, table)
    version.commit_shard(SHARD.key, files, {})
    manifest = version.commit(inputs=[], parameters={}, code_version="t", flow_run_id=None)
    assert [(f["path"], f["rows"]) for f in manifest["files"]] == [("part-00002-0000-0.jsonl", 4)]
    lines = (tmp_path / "out" / "v1" / "part-00002-0000-0.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    assert len(rows) == table.num_rows
    assert [list(r) for r in rows] == [["audio_filepath", "duration", "text", "id"]] * 4
    expected = table.drop_columns(["audio", "_order"]).to_pylist()
    assert rows == expected
    assert read_manifest(str(tmp_path / "out"))["rows"] == 4


def test_manifest_writes_audio_uri_as_audio_filepath(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    table = pa.table({"id": ["a"], "audio_uri": ["s3://b/a.wav"], "audio": [b"RIFF"]})
    ManifestWriter().write_shard(version, SHARD, table)
    line = (tmp_path / "out" / "v1" / "part-00002-0000-0.jsonl").read_bytes()
    assert orjson.loads(line) == {"audio_filepath": "s3://b/a.wav", "id": "a"}


@pytest.mark.parametrize("paths", [None, ["/data/a.flac", None]])
def test_manifest_of_audio_bytes_without_a_path_names_the_shard_and_column(tmp_path, paths):
    columns = {"id": ["a", "b"], "audio": [b"fLaC1", b"fLaC2"]}
    if paths is not None:
        columns["audio_filepath"] = paths
    version = VersionWriter(str(tmp_path / "out"), "v1")
    row = "row 0 \\(id 'a'\\)" if paths is None else "row 1 \\(id 'b'\\)"
    with pytest.raises(ValueError, match=rf"shard 00002-0000: {row} .*column 'audio'"):
        ManifestWriter().write_shard(version, SHARD, pa.table(columns))


def test_manifest_drops_image_bytes_without_complaint(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    table = pa.table({"id": ["a"], "jpg": [b"\xff\xd8\xff"], "caption": ["c"]})
    ManifestWriter().write_shard(version, SHARD, table)
    line = (tmp_path / "out" / "v1" / "part-00002-0000-0.jsonl").read_bytes()
    assert orjson.loads(line) == {"id": "a", "caption": "c"}


def test_embeddings_are_written_apart_and_left_out_of_the_dataset_rows(tmp_path):
    import tarfile

    from stages.io.commit import dataset_files
    from stages.io.writers import EmbeddingsApart

    version = VersionWriter(str(tmp_path / "out"), "v1")
    vectors = pa.FixedSizeListArray.from_arrays(pa.array([0.6, 0.8, 1.0, 0.0], pa.float32()), 2)
    table = pa.table(
        {
            "id": ["cat", "dog"],
            "image": [b"\x89PNG\r\n\x1a\n" + b"a", b"\x89PNG\r\n\x1a\n" + b"b"],
            "embedding": vectors,
            "aesthetic_score": [5.5, 6.1],
            "_order": [0, 1],
        }
    )
    files = EmbeddingsApart(WebDatasetWriter()).write_shard(version, SHARD, table)

    side = files[-1]
    assert side["path"] == "embeddings/part-00002-0000-0.parquet"
    assert side["rows"] == 0 and side["side"] == "embeddings"
    apart = pq.read_table(tmp_path / "out" / "v1" / side["path"])
    assert apart.column_names == ["id", "embedding"]
    expected = [pytest.approx([0.6, 0.8]), pytest.approx([1.0, 0.0])]
    assert apart.column("embedding").to_pylist() == expected
    with tarfile.open(tmp_path / "out" / "v1" / files[0]["path"]) as tar:
        metadata = [
            orjson.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")
        ]
    assert [m["id"] for m in metadata] == ["cat", "dog"]
    assert all("embedding" not in m and "aesthetic_score" in m for m in metadata)

    version.commit_shard(SHARD.key, files, {})
    version.commit(inputs=[], parameters={}, code_version="x", flow_run_id=None)
    listed = dataset_files(str(tmp_path / "out"))
    assert not any("embeddings/" in uri for uri in listed) and len(listed) == 2
    without = EmbeddingsApart(ParquetWriter()).write_shard(
        version, SHARD, table.drop_columns(["embedding"])
    )
    assert [f["path"] for f in without] == ["part-00002-0000-0.parquet"]
