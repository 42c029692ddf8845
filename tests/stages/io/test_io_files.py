"""File collections (`format="files"`): one row per media file, small files grouped into
shards, large files by URI only, bad files quarantined."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from stages.io.errors import InputNotFound
from stages.io.formats.files import FILES_PER_SHARD
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards

MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _read_all(shards: list[Shard], **kwargs):
    reader = ShardReader(**kwargs)
    return [reader.read(s) for s in shards]


def test_a_folder_of_media_is_one_row_per_file_with_bytes_and_uri(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "tom.png").write_bytes(_png(1))
    (tmp_path / "dog.png").write_bytes(_png(2))
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / "song.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28)
    shards = plan_shards(str(tmp_path), format="files")
    assert len(shards) == 1
    [shard] = shards
    assert shard.uri == str(tmp_path)
    assert shard.members == ("cats/tom.png", "dog.png", "song.wav")
    result = ShardReader().read(shard)
    table = result.table
    assert result.quarantine.num_rows == 0
    assert table.column_names == [
        "id", "source", "_order", "extension", "image", "image_uri", "audio", "audio_uri"
    ]  # fmt: skip
    assert table.column("id").to_pylist() == ["cats/tom", "dog", "song"]
    uris = [str(tmp_path / m) for m in shard.members]
    assert table.column("source").to_pylist() == uris
    assert table.column("extension").to_pylist() == ["png", "png", "wav"]
    assert table.column("image").to_pylist()[:2] == [_png(1), _png(2)]
    assert table.column("image_uri").to_pylist() == uris[:2] + [None]
    assert table.column("audio_uri").to_pylist() == [None, None, uris[2]]
    assert table.column("_order").to_pylist() == [1, 2, 3]


def test_small_files_are_grouped_into_shards_by_size_and_count(tmp_path):
    n = FILES_PER_SHARD + 150
    for i in range(n):
        (tmp_path / f"{i:05d}.jpg").write_bytes(b"\xff\xd8\xff" + bytes(997))
    shards = plan_shards(str(tmp_path), format="files")
    assert [len(s.members) for s in shards] == [FILES_PER_SHARD, 150]
    small = plan_shards(str(tmp_path), format="files", shard_size_mb=100_000 / 2**20)
    assert {len(s.members) for s in small[:-1]} == {100}
    for plan in (shards, small):
        assert [s.number for s in plan] == list(range(len(plan)))
        assert len({s.key for s in plan}) == len(plan)
        every = [u for s in plan for u in s.uris]
        assert every == [str(tmp_path / f"{i:05d}.jpg") for i in range(n)]
    orders = [o for r in _read_all(small[:2]) for o in r.table.column("_order").to_pylist()]
    assert orders == sorted(orders) and len(set(orders)) == 200
    assert {o >> 32 for o in orders} == {small[0].file_index, small[1].file_index}


def test_a_files_shard_round_trips_through_json(tmp_path):
    (tmp_path / "a.png").write_bytes(_png(0))
    [shard] = plan_shards(str(tmp_path / "*.png"), format="files")
    again = Shard.from_dict(json.loads(json.dumps(shard.to_dict())))
    assert again == shard and again.members == ("a.png",)


def test_a_file_above_max_inline_mb_travels_by_uri_only(tmp_path):
    big = tmp_path / "film.mp4"
    with open(big, "wb") as f:
        f.write(MP4_HEADER)
        f.truncate(200 << 20)  # sparse: 200 MB on paper, a few bytes on disk
    (tmp_path / "clip.mp4").write_bytes(MP4_HEADER + bytes(100))
    shards = plan_shards([str(big), str(tmp_path / "clip.mp4")], format="files")
    assert [s.members for s in shards] == [("clip.mp4",), ("film.mp4",)]
    tables = [r.table for r in _read_all(shards)]
    film = tables[1].to_pylist()[0]
    assert film["video"] is None
    assert film["video_uri"] == str(big) and film["id"] == "film"
    assert tables[1].nbytes < 10_000
    assert tables[0].column("video").to_pylist() == [MP4_HEADER + bytes(100)]
    small_limit = ShardReader(max_inline_mb=50 / 2**20).read(shards[0]).table
    assert small_limit.column("video").to_pylist() == [None]


def test_missing_empty_and_mislabelled_files_are_quarantined(tmp_path):
    (tmp_path / "good.png").write_bytes(_png(0))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.jpg").write_bytes(b"<html>404</html>")
    (tmp_path / "gone.png").write_bytes(_png(1))
    [shard] = plan_shards(str(tmp_path), format="files")
    (tmp_path / "gone.png").unlink()
    result = ShardReader().read(shard)
    assert result.table.column("id").to_pylist() == ["good"]
    reasons = {q["source"]: (q["reason"], q["raw"]) for q in result.quarantine.to_pylist()}
    assert reasons == {
        str(tmp_path / "empty.png"): (f"{tmp_path / 'empty.png'}: line 0: empty file", None),
        str(tmp_path / "gone.png"): (f"{tmp_path / 'gone.png'}: line 0: no such file", None),
        str(tmp_path / "page.jpg"): (
            f"{tmp_path / 'page.jpg'}: line 0: not a jpg file (starts with 3c 68 74 6d "
            "6c 3e 34 30)",
            b"<html>404</html>",
        ),
    }


def test_two_files_that_would_share_an_id_are_refused_at_planning(tmp_path):
    (tmp_path / "x.png").write_bytes(_png(0))
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ValueError, match=r"x\.jpg and .*x\.png: both would get the id 'x'"):
        plan_shards(str(tmp_path), format="files")


def test_several_folders_keep_their_names_in_the_ids(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "001.png").write_bytes(_png(0))
    shards = plan_shards([str(tmp_path / "a"), str(tmp_path / "b")], format="files")
    ids = [i for r in _read_all(shards) for i in r.table.column("id").to_pylist()]
    assert ids == ["a/001", "b/001"]


def test_a_folder_without_media_names_the_files_format(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(InputNotFound, match=r"holds no files \(.jpg"):
        plan_shards(str(tmp_path), format="files")


def test_media_files_on_s3_read_like_local_ones(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    for i in range(3):
        fs.pipe_file(f"{s3_bucket}/img/{i}.png", _png(i))
    [shard] = plan_shards(f"s3://{s3_bucket}/img/", format="files")
    assert shard.uri == f"s3://{s3_bucket}/img"
    table = ShardReader().read(shard).table
    assert table.column("id").to_pylist() == ["0", "1", "2"]
    assert table.column("image").to_pylist() == [_png(i) for i in range(3)]
    assert table.column("image_uri")[0].as_py() == f"s3://{s3_bucket}/img/0.png"
