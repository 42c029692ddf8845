"""NemoClipsWriter: NeMo Curator's clip layout (clips/, previews/, metas/v0/, the
embeddings' parquet folder) beside the clips table, under the commit protocol."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.io.commit import VersionWriter, dataset_files, read_manifest
from stages.io.shards import Shard
from stages.io.writers import NemoClipsWriter, dataset_writer

SHARD = Shard(uri="s3://raw/videos/", file_index=2, format="files")
PART = "part-00002-0000-0.parquet"
MP4, WEBM, WEBP = b"\x00\x00\x00\x18ftypmp42clip", b"\x1aE\xdf\xa3clip", b"RIFF\x00\x00WEBPanim"


def _clips() -> pa.Table:
    """Two clips of one video as the flow ends with them: an mp4 with a preview and a
    webm without, each with its embedding."""
    vectors = pa.array([0.6, 0.8, 1.0, 0.0], pa.float32())
    return pa.table(
        {
            "id": ["7d3c-clip-a", "9e1f-clip-b"],
            "video_id": ["cat"] * 2,
            "source": ["s3://raw/videos/cat.mp4"] * 2,
            "video_uri": ["s3://raw/videos/cat.mp4"] * 2,
            "start": [0.0, 2.5],
            "end": [2.5, 4.0],
            "duration": [2.5, 1.5],
            "caption": ["a cat jumps", "a cat lands"],
            "clip": pa.array([MP4, WEBM], pa.binary()),
            "extension": ["mp4", "webm"],
            "preview": pa.array([WEBP, None], pa.binary()),
            "embedding": pa.FixedSizeListArray.from_arrays(vectors, 2),
            "_order": [(2 << 32) | 0, (2 << 32) | 1],
        }
    )


@pytest.fixture
def written(tmp_path) -> tuple:
    """The clips written and committed: (version folder, files, manifest)."""
    version = VersionWriter(str(tmp_path / "out"), "v1")
    files = NemoClipsWriter().write_shard(version, SHARD, _clips())
    version.commit_shard(SHARD.key, files, {"rows": 2})
    manifest = version.commit(inputs=[], parameters={}, code_version="t", flow_run_id=None)
    return tmp_path / "out" / "v1", files, manifest


def test_each_clip_is_a_file_named_by_its_id_with_its_extension(written):
    root, _, _ = written
    assert (root / "clips" / "7d3c-clip-a.mp4").read_bytes() == MP4
    assert (root / "clips" / "9e1f-clip-b.webm").read_bytes() == WEBM


def test_a_preview_is_written_only_for_a_clip_that_has_one(written):
    root, _, _ = written
    assert sorted(p.name for p in (root / "previews").iterdir()) == ["7d3c-clip-a.webp"]
    assert (root / "previews" / "7d3c-clip-a.webp").read_bytes() == WEBP


def test_each_clips_metadata_has_nemos_fields_and_no_bytes(written):
    root, _, _ = written
    meta = orjson.loads((root / "metas" / "v0" / "9e1f-clip-b.json").read_bytes())
    assert meta["clip_uuid"] == meta["id"] == "9e1f-clip-b"
    assert meta["source_video"] == "s3://raw/videos/cat.mp4"
    assert meta["span"] == [2.5, 4.0]
    assert meta["caption"] == "a cat lands" and meta["duration"] == 1.5
    assert not {"clip", "preview", "embedding", "_order"} & set(meta)


def test_embeddings_go_to_the_algorithms_parquet_folder(written):
    root, _, _ = written
    table = pq.read_table(root / "clip_embd_parquet" / PART)
    assert table.column_names == ["id", "embedding"]
    assert table["id"].to_pylist() == ["7d3c-clip-a", "9e1f-clip-b"]
    assert table["embedding"].to_pylist() == [pytest.approx([0.6, 0.8]), [1.0, 0.0]]


def test_the_clips_table_has_one_row_per_clip_and_no_bytes_or_embedding(written):
    root, _, _ = written
    table = pq.read_table(root / PART)
    assert table["id"].to_pylist() == ["7d3c-clip-a", "9e1f-clip-b"]
    assert table.column_names == [
        "id",
        "video_id",
        "source",
        "video_uri",
        "start",
        "end",
        "duration",
        "caption",
        "extension",
    ]


def test_side_files_count_no_rows_and_name_their_side(written):
    _, files, manifest = written
    sides = {}
    for entry in manifest["files"]:
        if entry["path"] == PART:
            assert entry["rows"] == 2 and "side" not in entry
        else:
            assert entry["rows"] == 0
            sides.setdefault(entry["side"], []).append(entry["path"])
    assert sides == {
        "clips": ["clips/7d3c-clip-a.mp4", "clips/9e1f-clip-b.webm"],
        "embeddings": [f"clip_embd_parquet/{PART}"],
        "metas": ["metas/v0/7d3c-clip-a.json", "metas/v0/9e1f-clip-b.json"],
        "previews": ["previews/7d3c-clip-a.webp"],
    }
    assert len(files) == len(manifest["files"]) == 7


def test_the_version_counts_the_clips_once_and_reads_back_as_the_clips_table(written):
    root, _, manifest = written
    assert manifest["rows"] == 2
    assert dataset_files(str(root.parent)) == [str(root / PART)]
    assert read_manifest(str(root.parent))["rows"] == 2


def test_the_embedding_folder_is_named_for_the_algorithm(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    files = dataset_writer("nemo", embedding_algorithm="ce1").write_shard(version, SHARD, _clips())
    assert f"ce1_embd_parquet/{PART}" in [f["path"] for f in files]


def test_a_clip_without_a_uri_names_its_source_as_the_source_video(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    clips = _clips().drop_columns(["video_uri", "embedding"]).slice(0, 1)
    files = NemoClipsWriter().write_shard(version, SHARD, clips)
    meta = orjson.loads(
        (tmp_path / "out" / "v1" / "metas" / "v0" / "7d3c-clip-a.json").read_bytes()
    )
    assert meta["source_video"] == "s3://raw/videos/cat.mp4"
    assert not any(f.get("side") == "embeddings" for f in files)


def test_an_empty_shard_writes_nothing(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    assert NemoClipsWriter().write_shard(version, SHARD, _clips().slice(0, 0)) == []
    assert not (tmp_path / "out").exists()
