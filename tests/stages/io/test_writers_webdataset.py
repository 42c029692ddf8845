"""WebDatasetWriter: img2dataset's layout under the commit protocol, read back by the
webdataset library (local disk and S3) and by Ray Data."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from stages.io.commit import VersionWriter
from stages.io.fs import join, read_bytes
from stages.io.shards import plan_shards
from stages.io.writers import WebDatasetWriter, dataset_writer
from stages.io.writers.webdataset import key_widths, sample_keys, sniff_extension


@dataclass(frozen=True)
class _Shard:
    """What a writer uses of a planned shard: its key and its number in the plan."""

    key: str
    number: int


SHARD = _Shard("00003-0000", 3)


def _image(i: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (i * 40 % 256, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def _images_table(n: int = 5) -> pa.Table:
    return pa.table(
        {
            "id": [f"img-{i}" for i in range(n)],
            "source": ["s3://raw/images.parquet"] * n,
            "jpg": [_image(i, "JPEG") for i in range(n)],
            "png": [_image(i, "PNG") for i in range(n)],
            "webp": [_image(i, "WEBP") for i in range(n)],
            "caption": [f"a picture number {i}" for i in range(n)],
            "width": [8] * n,
            "aesthetic": [0.5 + i / 10 for i in range(n)],
            "tags": [["red", f"t{i}"] for i in range(n)],
            "_order": list(range(n)),
        }
    )


def _write_and_commit(output: str, table: pa.Table, shard=SHARD, **options) -> dict:
    version = VersionWriter(output, "v1")
    files = dataset_writer("webdataset", **options).write_shard(version, shard, table)
    version.commit_shard(shard.key, files, {"rows": table.num_rows})
    return version.commit(inputs=[], parameters={}, code_version="test", flow_run_id=None)


def _tars(manifest: dict) -> list[str]:
    return [
        join(manifest["uri"], f["path"]) for f in manifest["files"] if f["path"].endswith(".tar")
    ]


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _assert_samples_match(samples: list[dict], table: pa.Table) -> None:
    """Every row is a sample with its media bytes unchanged, its caption and its fields."""
    expected = table.to_pylist()
    assert len(samples) == len(expected)
    samples = sorted(samples, key=lambda s: s["__key__"])
    keys = sample_keys(SHARD.number, len(expected))
    for row, key, sample in zip(expected, keys, samples, strict=True):
        assert sample["__key__"] == key
        for ext in ("jpg", "png", "webp"):
            assert bytes(sample[ext]) == row[ext]
        assert bytes(sample["txt"]).decode() == row["caption"]
        fields = orjson.loads(bytes(sample["json"]))
        assert fields == {k: row[k] for k in ("id", "source", "width", "aesthetic", "tags")}


def _assert_layout(manifest: dict) -> None:
    """Keys of 9 digits, members sorted and grouped by key, a sibling Parquet per tar whose
    keys are the tar's samples in order."""
    for tar_uri in _tars(manifest):
        names = [name for name, _ in _members(read_bytes(tar_uri))]
        assert names == sorted(names)
        keys = [name.split(".", 1)[0] for name in names]
        runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert len(runs) == len(set(runs)), "a sample's members are not adjacent"
        assert all(len(k) == 9 and k.isdigit() for k in runs)
        sibling = pq.read_table(io.BytesIO(read_bytes(tar_uri[: -len(".tar")] + ".parquet")))
        assert sibling.column("key").to_pylist() == runs
        assert "jpg" not in sibling.column_names and "_order" not in sibling.column_names


def test_webdataset_round_trips_through_the_webdataset_library_on_local_disk(tmp_path):
    import webdataset

    table = _images_table()
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    _assert_layout(manifest)
    assert manifest["rows"] == table.num_rows
    samples = list(webdataset.WebDataset(_tars(manifest), shardshuffle=False))
    _assert_samples_match(samples, table)


def test_webdataset_round_trips_through_the_webdataset_library_on_s3(s3_bucket, monkeypatch):
    import s3fs
    import webdataset
    from webdataset.gopen import gopen_schemes

    def open_s3(url, mode="rb", bufsize=8192, **kw):
        return s3fs.S3FileSystem(use_listings_cache=False).open(url, mode)

    monkeypatch.setitem(gopen_schemes, "s3", open_s3)
    table = _images_table()
    manifest = _write_and_commit(f"s3://{s3_bucket}/out", table)
    assert manifest["uri"].startswith("s3://")
    _assert_layout(manifest)
    samples = list(webdataset.WebDataset(_tars(manifest), shardshuffle=False))
    _assert_samples_match(samples, table)


def test_webdataset_round_trips_through_ray_data_read_webdataset(tmp_path, ray_cluster):
    import ray

    table = _images_table()
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    samples = ray.data.read_webdataset(_tars(manifest), decoder=None).take_all()
    _assert_samples_match(samples, table)


def test_a_shard_of_25000_rows_splits_into_three_tars_with_10_digit_keys(tmp_path):
    n = 25_000
    table = pa.table({"id": [f"d{i}" for i in range(n)], "txt": [f"t{i}" for i in range(n)]})
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    tars = _tars(manifest)
    assert [t.rsplit("/", 1)[-1] for t in tars] == [
        "part-00003-0000-0.tar",
        "part-00003-0000-1.tar",
        "part-00003-0000-2.tar",
    ]
    assert [f["rows"] for f in manifest["files"] if f["path"].endswith(".tar")] == [
        10_000,
        10_000,
        5_000,
    ]
    assert manifest["rows"] == n
    all_keys = []
    for tar_uri in tars:
        members = _members(read_bytes(tar_uri))
        keys = [name.split(".", 1)[0] for name, _ in members[::2]]
        assert [name for name, _ in members] == [
            f"{k}.{ext}" for k in keys for ext in ("json", "txt")
        ]
        sibling = pq.read_table(tar_uri[: -len(".tar")] + ".parquet")
        assert sibling.column("key").to_pylist() == keys
        all_keys += keys
    assert all_keys == [f"00003{i:05d}" for i in range(n)]


def test_the_same_rows_give_byte_identical_tars(tmp_path):
    table = _images_table()
    first = _write_and_commit(str(tmp_path / "a"), table)
    second = _write_and_commit(str(tmp_path / "b"), table)
    assert [read_bytes(t) for t in _tars(first)] == [read_bytes(t) for t in _tars(second)]
    with tarfile.open(_tars(first)[0]) as tar:
        headers = {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar.getmembers()}
    assert headers == {(0, 0, 0, "", "", 0o644)}


def test_sidecar_parquet_is_listed_in_the_manifest_but_counts_no_rows(tmp_path):
    manifest = _write_and_commit(str(tmp_path / "out"), _images_table(3))
    assert [(f["path"], f["rows"], f.get("metadata_of")) for f in manifest["files"]] == [
        ("part-00003-0000-0.parquet", 0, "part-00003-0000-0.tar"),
        ("part-00003-0000-0.tar", 3, None),
    ]


def test_a_null_media_value_leaves_its_member_out(tmp_path):
    table = pa.table(
        {"id": ["a", "b"], "png": [_image(1, "PNG"), None], "caption": [None, "only text"]}
    )
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    names = [name for name, _ in _members(read_bytes(_tars(manifest)[0]))]
    assert names == ["000030000.json", "000030000.png", "000030001.json", "000030001.txt"]


def test_image_audio_video_columns_take_their_extension_from_the_bytes(tmp_path):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "image": [_image(0, "JPEG"), _image(1, "PNG"), _image(2, "WEBP")],
            "audio": [wav, b"fLaC\x00\x00\x00\x22", None],
        }
    )
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    members = dict(_members(read_bytes(_tars(manifest)[0])))
    assert sorted(members) == [
        "000030000.jpg",
        "000030000.json",
        "000030000.wav",
        "000030001.flac",
        "000030001.json",
        "000030001.png",
        "000030002.json",
        "000030002.webp",
    ]
    assert members["000030002.webp"] == table.column("image")[2].as_py()
    assert orjson.loads(members["000030000.json"]) == {"id": "a"}


def test_an_extension_column_names_the_media_member(tmp_path):
    table = pa.table(
        {"id": ["a", "b"], "video": [b"opaque-1", b"opaque-2"], "extension": [".MP4", "webm"]}
    )
    manifest = _write_and_commit(str(tmp_path / "out"), table)
    names = [name for name, _ in _members(read_bytes(_tars(manifest)[0]))]
    assert names == ["000030000.json", "000030000.mp4", "000030001.json", "000030001.webm"]


def test_media_of_unknown_format_without_extension_names_the_shard_and_column(tmp_path):
    table = pa.table({"id": ["a"], "image": [b"not an image"]})
    version = VersionWriter(str(tmp_path / "out"), "v1")
    with pytest.raises(ValueError, match=r"shard 00003-0000: sample 000030000 \(id 'a'\).*'image'"):
        WebDatasetWriter().write_shard(version, SHARD, table)


def test_two_columns_making_the_same_member_are_an_error(tmp_path):
    table = pa.table({"id": ["a"], "image": [_image(0, "PNG")], "png": [_image(1, "PNG")]})
    version = VersionWriter(str(tmp_path / "out"), "v1")
    with pytest.raises(ValueError, match=r"columns 'image' and 'png' both make 000030000.png"):
        WebDatasetWriter().write_shard(version, SHARD, table)


def test_bytes_nested_in_a_json_column_are_an_error(tmp_path):
    table = pa.table({"id": ["a"], "extra": [{"thumb": b"\x00"}]})
    version = VersionWriter(str(tmp_path / "out"), "v1")
    with pytest.raises(ValueError, match=r"shard 00003-0000: column 'extra'"):
        WebDatasetWriter().write_shard(version, SHARD, table)


def test_a_planned_shard_without_a_number_writes_keys_of_shard_zero(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a"}\n')
    shard = plan_shards(str(tmp_path / "in.jsonl"))[0]
    manifest = _write_and_commit(str(tmp_path / "out"), pa.table({"id": ["a"]}), shard=shard)
    names = [name for name, _ in _members(read_bytes(_tars(manifest)[0]))]
    assert names == [f"{sample_keys(getattr(shard, 'number', 0), 1)[0]}.json"]


def test_samples_per_tar_sets_the_tar_size(tmp_path):
    table = pa.table({"id": [f"d{i}" for i in range(5)]})
    manifest = _write_and_commit(str(tmp_path / "out"), table, samples_per_tar=2)
    assert [f["rows"] for f in manifest["files"] if f["path"].endswith(".tar")] == [2, 2, 1]


def test_an_empty_table_writes_no_file(tmp_path):
    version = VersionWriter(str(tmp_path / "out"), "v1")
    assert WebDatasetWriter().write_shard(version, SHARD, _images_table(0)) == []


@pytest.mark.parametrize(
    ("number", "rows", "widths"),
    [
        (3, 1, (5, 4)),
        (99_999, 10_000, (5, 4)),
        (3, 10_001, (5, 5)),
        (3, 25_000, (5, 5)),
        (100_000, 10, (6, 5)),
        (100_000, 200_000, (6, 6)),
        (3, 2_000_000, (7, 7)),
    ],
)
def test_key_widths_grow_in_step_from_img2datasets_five_and_four(number, rows, widths):
    assert key_widths(number, rows) == widths


def test_keys_of_shards_of_different_sizes_never_collide():
    small = set(sample_keys(123_456, 1_000))  # a wide shard number, few rows
    large = set(sample_keys(12_345, 100_000))  # a narrow shard number, many rows
    assert small.isdisjoint(large)


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (b"\xff\xd8\xff\xe0", "jpg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a", "gif"),
        (b"fLaC\x00", "flac"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"ID3\x04", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"\x00\x00\x00\x18ftypisom", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm"),
        (b"plain text", None),
    ],
)
def test_sniff_extension_knows_the_common_media_formats(head, ext):
    assert sniff_extension(head) == ext
