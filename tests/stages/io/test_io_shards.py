"""plan_shards: listing, sorting, byte-range splitting (no line lost or read twice)."""

from __future__ import annotations

import random

import orjson
import pytest

from stages.io.errors import InputNotFound
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards


def _messy_jsonl(n: int, seed: int = 0) -> bytes:
    """Lines of varied length, with blank lines, a bad line and no final newline."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 97 == 13:
            out.append(b"")
        elif i % 211 == 7:
            out.append(b"{broken")
        else:
            out.append(orjson.dumps({"id": f"r{i}", "text": "x" * rng.randint(0, 300)}))
    return b"\n".join(out)


def _read_all(shards: list[Shard]):
    reader = ShardReader()
    ids, orders, bad = [], [], []
    for shard in shards:
        result = reader.read(shard)
        ids += result.table.column("id").to_pylist()
        orders += result.table.column("_order").to_pylist()
        bad += result.quarantine.column("line").to_pylist()
    return ids, orders, bad


def test_splitting_at_many_shard_sizes_loses_and_duplicates_no_line(tmp_path):
    path = tmp_path / "big.jsonl"
    data = _messy_jsonl(2000)
    path.write_bytes(data)
    whole = plan_shards(str(path), shard_size_mb=64)
    assert len(whole) == 1
    expected = _read_all(whole)
    assert len(expected[0]) > 1900 and expected[2]
    for size_bytes in (97, 151, 1000, 4097, 10_000, 77_777, len(data) - 1):
        shards = plan_shards(str(path), shard_size_mb=size_bytes / 2**20)
        assert len(shards) > 1
        assert [s.part for s in shards] == list(range(len(shards)))
        assert shards[0].start == 0 and shards[-1].end == len(data)
        assert all(a.end == b.start for a, b in zip(shards, shards[1:], strict=False))
        assert _read_all(shards) == expected, size_bytes


def test_ranges_of_a_few_bytes_each_still_read_every_line_once(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{"text": "bb"}\n{"text": ""}\n{"text": "ccc"}')
    expected = _read_all(plan_shards(str(path)))
    assert expected[1] == [1, 3, 4, 5]
    for size_bytes in (1, 2, 3, 13, 14, 15):
        assert _read_all(plan_shards(str(path), shard_size_mb=size_bytes / 2**20)) == expected


def test_split_shards_cover_the_file_and_have_sortable_keys(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_messy_jsonl(500))
    shards = plan_shards(str(tmp_path / "a.jsonl"), shard_size_mb=0.01)
    keys = [s.key for s in shards]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert keys[0] == "00000-0000"


def test_compressed_files_split_at_line_starts_of_their_decompressed_stream(tmp_path):
    import gzip

    data = _messy_jsonl(2000)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    shards = plan_shards(str(tmp_path), shard_size_mb=0.001)
    assert len(shards) > 1 and shards[-1].end is None
    assert all(data[s.start - 1 : s.start] == b"\n" for s in shards[1:])
    assert _read_all(shards) == _read_all(plan_shards(str(tmp_path)))


def test_inputs_are_sorted_and_numbered_whatever_order_they_are_given(tmp_path):
    for name in ("b.jsonl", "a.jsonl.gz", "c.parquet", "sub/d.jsonl.zst"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"not an input")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    shards = plan_shards([str(tmp_path / "b.jsonl"), str(tmp_path)])
    assert [(s.file_index, s.uri.rsplit("/", 2)[-1]) for s in shards] == [
        (0, "a.jsonl.gz"),
        (1, "b.jsonl"),
        (2, "c.parquet"),
        (3, "d.jsonl.zst"),
    ]
    assert [s.format for s in shards] == ["jsonl", "jsonl", "parquet", "jsonl"]


def test_glob_selects_matching_files(tmp_path):
    for name in ("x1.jsonl", "x2.jsonl", "y.jsonl"):
        (tmp_path / name).write_bytes(b'{"text": "a"}\n')
    shards = plan_shards(str(tmp_path / "x*.jsonl"))
    assert [s.uri for s in shards] == [str(tmp_path / "x1.jsonl"), str(tmp_path / "x2.jsonl")]


def test_shard_round_trips_through_a_dict(tmp_path):
    shard = Shard(uri="s3://b/x.jsonl", file_index=3, part=2, start=10, end=20, first_line=5)
    assert Shard.from_dict(shard.to_dict()) == shard
    assert shard.key == "00003-0002"


@pytest.mark.parametrize("pattern", ["missing.jsonl", "missing_dir", "*.nothing.jsonl"])
def test_missing_input_raises_input_not_found_naming_it(tmp_path, pattern):
    target = str(tmp_path / pattern)
    with pytest.raises(InputNotFound, match=target.replace("*", r"\*")):
        plan_shards(target)


def test_input_not_found_is_a_file_not_found_error():
    assert issubclass(InputNotFound, FileNotFoundError)


def test_unknown_extension_given_by_name_is_refused(tmp_path):
    (tmp_path / "data.csv").write_bytes(b"a,b\n")
    with pytest.raises(ValueError, match="data.csv: unknown input format"):
        plan_shards(str(tmp_path / "data.csv"))


def test_missing_s3_input_raises_input_not_found(s3_bucket):
    with pytest.raises(InputNotFound, match=f"s3://{s3_bucket}/nope"):
        plan_shards(f"s3://{s3_bucket}/nope/*.jsonl.gz")


def test_s3_plain_file_splits_like_a_local_one(tmp_path, s3_bucket):
    import s3fs

    data = _messy_jsonl(800)
    (tmp_path / "a.jsonl").write_bytes(data)
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe_file(f"{s3_bucket}/in/a.jsonl", data)
    size_mb = 5000 / 2**20
    local = plan_shards(str(tmp_path / "a.jsonl"), shard_size_mb=size_mb)
    remote = plan_shards(f"s3://{s3_bucket}/in/", shard_size_mb=size_mb)
    assert [(s.start, s.end, s.first_line) for s in remote] == [
        (s.start, s.end, s.first_line) for s in local
    ]
    local_rows, remote_rows = _read_all(local), _read_all(remote)
    assert remote_rows[0] == local_rows[0] and remote_rows[2] == local_rows[2]


def test_a_glob_under_a_dot_folder_the_user_named_finds_its_files(tmp_path):
    folder = tmp_path / ".cache" / "data"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"text": "x"}\n')
    (folder / "_tmp.jsonl").write_text('{"text": "x"}\n')
    shards = plan_shards(str(folder / "*.jsonl"))
    assert [s.uri.rsplit("/", 1)[-1] for s in shards] == ["a.jsonl"]


def test_brace_ranges_and_lists_name_shards_as_webdataset_does(tmp_path):
    from stages.io.shards import expand_braces

    assert expand_braces("s3://b/{00008..00011}.tar") == [
        "s3://b/00008.tar",
        "s3://b/00009.tar",
        "s3://b/00010.tar",
        "s3://b/00011.tar",
    ]
    assert expand_braces("{train,val}-{1..2}.tar") == [
        "train-1.tar",
        "train-2.tar",
        "val-1.tar",
        "val-2.tar",
    ]
    assert expand_braces("plain{x}.jsonl") == ["plain{x}.jsonl"]
    for n in range(3):
        (tmp_path / f"part-{n:03d}.jsonl").write_text('{"text": "a"}\n')
    shards = plan_shards(str(tmp_path / "part-{000..001}.jsonl"))
    assert [s.uri for s in shards] == [str(tmp_path / f"part-{n:03d}.jsonl") for n in (0, 1)]
    with pytest.raises(InputNotFound, match="part-003"):
        plan_shards(str(tmp_path / "part-{000..003}.jsonl"))
    odd = tmp_path / "{a,b}"  # a folder named with braces is read as written
    odd.mkdir()
    (odd / "x.jsonl").write_text('{"text": "a"}\n')
    assert [s.uri for s in plan_shards(str(odd))] == [str(odd / "x.jsonl")]
