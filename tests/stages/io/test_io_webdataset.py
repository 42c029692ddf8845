"""WebDataset reader: samples grouped by key, one column per extension, and every bad
member, sample or truncated tar quarantined with its shard, member and reason."""

from __future__ import annotations

import io
import tarfile

import orjson
import pytest
from PIL import Image

from stages.io.errors import InputError
from stages.io.read import ShardReader
from stages.io.shards import plan_shards

IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


def _image(i: int, ext: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (i * 40 % 256, 90, 200)).save(buffer, format=IMAGE_FORMATS[ext])
    return buffer.getvalue()


def _sample(i: int, with_id: bool = True) -> list[tuple[str, bytes]]:
    key = f"{i:09d}"
    ext = list(IMAGE_FORMATS)[i % 3]
    meta = {"id": f"doc-{i}", "width": 8} if with_id else {"width": 8}
    return [
        (f"{key}.{ext}", _image(i, ext)),
        (f"{key}.json", orjson.dumps(meta)),
        (f"{key}.txt", f"caption {i}".encode()),
    ]


def _tar(path, members: list[tuple[str, bytes]]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return str(path)


def _read(uri: str, **kwargs):
    shards = plan_shards(uri)
    assert len(shards) == 1 and shards[0].format == "webdataset"
    return ShardReader(**kwargs).read(shards[0])


def test_each_key_is_one_row_with_a_column_per_extension(tmp_path):
    members = [m for i in range(6) for m in _sample(i, with_id=i % 2 == 0)]
    uri = _tar(tmp_path / "00000.tar", members)
    result = _read(uri)
    table = result.table
    assert result.quarantine.num_rows == 0
    assert table.column_names == [
        "id", "source", "_order", "key", "jpg", "json", "png", "txt", "webp"
    ]  # fmt: skip
    keys = [f"{i:09d}" for i in range(6)]
    assert table.column("key").to_pylist() == keys
    assert table.column("id").to_pylist() == [
        f"doc-{i}" if i % 2 == 0 else keys[i] for i in range(6)
    ]
    assert table.column("_order").to_pylist() == list(range(1, 7))
    assert set(table.column("source").to_pylist()) == {uri}
    assert table.column("txt").to_pylist() == [f"caption {i}" for i in range(6)]
    assert orjson.loads(table.column("json")[0].as_py()) == {"id": "doc-0", "width": 8}
    by_name = dict(members)
    for i, row in enumerate(table.to_pylist()):
        ext = list(IMAGE_FORMATS)[i % 3]
        assert row[ext] == by_name[f"{keys[i]}.{ext}"]
        assert Image.open(io.BytesIO(row[ext])).size == (8, 6)
    assert str(table.schema.field("jpg").type) == "binary"
    assert str(table.schema.field("txt").type) == "string"


def test_bad_members_and_samples_are_quarantined_once_each_and_counts_add_up(tmp_path):
    good = [m for i in range(3) for m in _sample(i)]
    jpeg = _image(9, "jpg")
    bad_samples = {
        "../evil": ([("../evil.jpg", jpeg)], "../evil.jpg", "unsafe path"),
        "000000010": (
            [("000000010.json", b'{"id": 1'), ("000000010.jpg", jpeg)],
            "000000010.json",
            "invalid JSON",
        ),
        "000000011": (
            [("000000011.jpg", jpeg), ("000000011.txt", b"")],
            "000000011.txt",
            "empty member (0 bytes)",
        ),
        "000000012": (
            [("000000012.jpg", b"<html>not found</html>")],
            "000000012.jpg",
            "not a jpg file",
        ),
        "000000013": ([("000000013.txt", b"no image here")], None, "no 'jpg' or 'png' or 'webp'"),
    }
    members = good[:3] + [m for ms, _, _ in bad_samples.values() for m in ms] + good[3:]
    uri = _tar(tmp_path / "mixed.tar", members)
    result = _read(uri, required_field="jpg;png;webp")
    keys_seen = 3 + len(bad_samples)
    assert result.table.num_rows + result.quarantine.num_rows == keys_seen
    assert result.table.column("key").to_pylist() == [f"{i:09d}" for i in range(3)]
    quarantined = result.quarantine.to_pylist()
    assert [q["source"] for q in quarantined] == [uri] * len(bad_samples)
    by_member = dict(members)
    for q, (key, (_, member, why)) in zip(quarantined, bad_samples.items(), strict=True):
        assert why in q["reason"], q["reason"]
        if member is None:
            assert q["reason"].startswith(f"{uri}: sample {key}: ")
            assert q["raw"] is None
        else:
            assert q["reason"].startswith(f"{uri}: member {member}: ")
            assert q["raw"] == by_member[member], member
    assert [q["line"] for q in quarantined] == [2, 3, 4, 5, 6]
    assert result.table.column("_order").to_pylist() == [1, 7, 8]


def test_a_sample_without_a_required_member_is_quarantined_with_what_it_has(tmp_path):
    uri = _tar(tmp_path / "a.tar", [("k1.txt", b"only text"), ("k1.json", b"{}")])
    for required in ("jpg", ("jpg", "png")):
        q = _read(uri, required_field=required).quarantine.to_pylist()
        assert len(q) == 1
        assert q[0]["reason"].startswith(f"{uri}: sample k1: no 'jpg'")
        assert q[0]["reason"].endswith("(has: json, txt)")


@pytest.mark.parametrize("where", ["inside member data", "inside a header", "at a header"])
def test_truncated_tar_keeps_the_samples_before_the_damage(tmp_path, where):
    members = [m for i in range(4) for m in _sample(i)]
    whole = tmp_path / "whole.tar"
    _tar(whole, members)
    data = whole.read_bytes()
    with tarfile.open(whole) as tar:
        infos = tar.getmembers()
    broken_in = infos[7]  # the json of sample 2 (0-based)
    cut = {
        "inside member data": broken_in.offset_data + 5,
        "inside a header": broken_in.offset + 100,
        "at a header": broken_in.offset,
    }[where]
    path = tmp_path / "cut.tar"
    path.write_bytes(data[:cut])
    result = _read(str(path))
    assert result.table.column("key").to_pylist() == [f"{i:09d}" for i in range(2)]
    q = result.quarantine.to_pylist()
    assert len(q) == 1
    assert q[0]["source"] == str(path)
    assert q[0]["line"] == 3
    assert "truncated tar" in q[0]["reason"]
    assert q[0]["reason"].endswith("sample 000000002 dropped")
    last_read = broken_in.name if where == "inside member data" else infos[6].name
    assert q[0]["reason"].startswith(f"{path}: member {last_read}: ")


def test_strict_mode_raises_naming_the_tar_and_member(tmp_path):
    uri = _tar(tmp_path / "a.tar", [("k1.jpg", b"GIF89a not a jpeg")])
    with pytest.raises(InputError, match=r"a\.tar: member k1\.jpg: not a jpg file"):
        _read(uri, strict=True)


def test_columns_keeps_only_the_listed_extensions(tmp_path):
    uri = _tar(tmp_path / "a.tar", [m for i in range(3) for m in _sample(i)])
    table = _read(uri, columns=["txt"]).table
    assert table.column_names == ["id", "source", "_order", "key", "txt"]
    assert table.column("id").to_pylist() == ["doc-0", "doc-1", "doc-2"]


def test_empty_and_non_tar_files_are_one_file_level_record(tmp_path):
    (tmp_path / "empty.tar").write_bytes(b"")
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar archive" * 40)
    for name, why in (("empty.tar", "empty file"), ("junk.tar", "not a readable tar archive")):
        result = _read(str(tmp_path / name))
        assert result.table.num_rows == 0
        [q] = result.quarantine.to_pylist()
        assert q["reason"].startswith(f"{tmp_path / name}: line 0: {why}")


def test_a_key_seen_again_after_other_samples_is_quarantined(tmp_path):
    jpeg = _image(1, "jpg")
    uri = _tar(tmp_path / "a.tar", [("a.jpg", jpeg), ("b.jpg", jpeg), ("a.txt", b"late")])
    result = _read(uri)
    assert result.table.column("key").to_pylist() == ["a", "b"]
    [q] = result.quarantine.to_pylist()
    assert "member a.txt: sample a appears again" in q["reason"]


def test_the_same_tar_on_s3_reads_the_same_rows(tmp_path, s3_bucket):
    import s3fs

    members = [m for i in range(5) for m in _sample(i)]
    members.insert(3, ("../evil.jpg", _image(0, "jpg")))
    local = _tar(tmp_path / "00000.tar", members)
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.put_file(local, f"{s3_bucket}/wds/00000.tar")
    remote = _read(f"s3://{s3_bucket}/wds/00000.tar")
    here = _read(local)
    assert remote.table.drop_columns(["source"]).equals(here.table.drop_columns(["source"]))
    assert remote.table.column("source")[0].as_py() == f"s3://{s3_bucket}/wds/00000.tar"
    [q] = remote.quarantine.to_pylist()
    assert q["reason"].startswith(f"s3://{s3_bucket}/wds/00000.tar: member ../evil.jpg: ")


def test_a_tar_beside_its_metadata_parquet_is_read_once(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _tar(tmp_path / "00000.tar", _sample(0))
    pq.write_table(pa.table({"key": ["000000000"]}), tmp_path / "00000.parquet")
    pq.write_table(pa.table({"text": ["alone"]}), tmp_path / "00001.parquet")
    shards = plan_shards(str(tmp_path))
    assert [(s.uri.rsplit("/", 1)[-1], s.format) for s in shards] == [
        ("00000.tar", "webdataset"),
        ("00001.parquet", "parquet"),
    ]


def test_tars_from_the_webdataset_writer_read_back_as_the_rows_written(tmp_path):
    import pyarrow as pa

    from stages.io.commit import VersionWriter
    from stages.io.writers import dataset_writer

    n = 4
    table = pa.table(
        {
            "id": [f"img-{i}" for i in range(n)],
            "source": ["s3://raw/images.parquet"] * n,
            "jpg": [_image(i, "jpg") for i in range(n)],
            "caption": [f"a picture number {i}" for i in range(n)],
        }
    )
    shard = plan_shards(_tar(tmp_path / "in.tar", _sample(0)))[0]
    version = VersionWriter(str(tmp_path / "out"), "v1")
    files = dataset_writer("webdataset").write_shard(version, shard, table)
    version.commit_shard(shard.key, files, {"rows": n})
    version.commit(inputs=[], parameters={}, code_version="test", flow_run_id=None)
    shards = plan_shards(str(tmp_path / "out"))
    assert [s.format for s in shards] == ["webdataset"]
    back = ShardReader().read(shards[0])
    assert back.quarantine.num_rows == 0
    assert back.table.column("id").to_pylist() == table.column("id").to_pylist()
    assert back.table.column("jpg").to_pylist() == table.column("jpg").to_pylist()
    assert back.table.column("txt").to_pylist() == table.column("caption").to_pylist()
