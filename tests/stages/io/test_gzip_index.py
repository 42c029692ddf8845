"""A large gzip file planned with an index folder: its ranges carry a seek-point index and
each range's reader starts at the index point before its range; the rows, line numbers,
quarantine records and blank lines are those of the whole file, and a range without its
index still reads them (from the start of the file)."""

from __future__ import annotations

import gzip
import logging
import os
import random

import orjson
import pyarrow as pa
import pytest
import zstandard

from stages.io.formats import gzip_index
from stages.io.quarantine import blank_lines
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards

BOM = b"\xef\xbb\xbf"
SHARD_MB = 0.5
BAD = b'{"id": "bad", "text": broken'


def _lines(n: int, blank: bool, seed: int = 0) -> list[bytes]:
    """`n` JSON lines of random words (about 3 MB for 10 000), with blank ones when
    `blank`, and one unparsable line near the middle."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)
    ]
    lines = []
    for i in range(n):
        if i == n // 2 + 7:
            lines.append(BAD)
        elif blank and i % 53 == 4:
            lines.append(b"" if i % 2 else b"   ")
        else:
            text = " ".join(rng.choices(words, k=rng.randint(5, 90)))
            lines.append(orjson.dumps({"id": f"d{i}", "text": text, "n": i}))
    return lines


def _gzip(path, data: bytes, members: int = 1) -> None:
    """`data` gzipped into `path`, as one member or several (cut anywhere, as `cat a.gz
    b.gz` makes them)."""
    cuts = [len(data) * k // members for k in range(members + 1)]
    path.write_bytes(
        b"".join(gzip.compress(data[a:b]) for a, b in zip(cuts, cuts[1:], strict=False))
    )


def _read(shards: list[Shard]) -> tuple[pa.Table, pa.Table, int]:
    """Rows, quarantine records and blank lines of the shards, in order."""
    reader = ShardReader()
    results = [reader.read(shard) for shard in shards]
    rows = pa.concat_tables([r.table for r in results], promote_options="default")
    bad = pa.concat_tables([r.quarantine.replace_schema_metadata(None) for r in results])
    return rows, bad, sum(blank_lines(r.quarantine) for r in results)


def _indexes(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


FILES = {
    "plain": dict(blank=False, bom=False, members=1),
    "blank lines": dict(blank=True, bom=False, members=1),
    "bom, blank lines, members": dict(blank=True, bom=True, members=3),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_indexed_ranges_read_exactly_what_the_whole_file_reads(tmp_path, kind):
    spec = FILES[kind]
    lines = _lines(10_000, spec["blank"])
    data = (BOM if spec["bom"] else b"") + b"\n".join(lines) + b"\n"
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, data, spec["members"])
    index_dir = tmp_path / "_index"
    (whole,) = plan_shards(str(path), shard_size_mb=64)
    rows, bad, blank = _read([whole])
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(index_dir))
    assert len(shards) >= 5
    (name,) = _indexes(index_dir)
    assert name.endswith(".gzidx")
    assert {s.index for s in shards} == {str(index_dir / name)}
    split_rows, split_bad, split_blank = _read(shards)
    assert split_rows.equals(rows)
    ids = [f"d{i}" for i, line in enumerate(lines) if line.startswith(b'{"id":"d')]
    assert split_rows.column("id").to_pylist() == ids
    assert split_bad.equals(bad)
    assert split_blank == blank == sum(1 for line in lines if not line.strip())
    # The bad line is in a middle range and is numbered as in the file.
    true_line = lines.index(BAD) + 1
    where = data.index(BAD)
    middle = [s for s in shards if s.start <= where and (s.end is None or where < s.end)]
    assert middle and 0 < middle[0].part < len(shards) - 1
    (record,) = split_bad.to_pylist()
    assert record["line"] == true_line
    assert record["reason"].startswith(f"{path}: line {true_line}: ")
    assert data[record["offset"] : record["offset"] + record["length"]] == BAD


def test_a_range_reads_from_its_index_point_not_from_the_start_of_the_file(tmp_path):
    """Planned with an index, the last range reads its rows even once the start of the
    file is garbled (same size): it never decompresses that far back."""
    lines = _lines(10_000, blank=False)
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(lines) + b"\n")
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(tmp_path / "_index"))
    last = shards[-1]
    expected = _read([last])
    packed = bytearray(path.read_bytes())
    packed[100:4000] = bytes(3900)
    path.write_bytes(bytes(packed))
    rows, bad, _ = _read([last])
    assert rows.equals(expected[0]) and rows.num_rows > 100
    assert bad.num_rows == 0
    without_index = _read([Shard(**{**last.to_dict(), "index": None})])
    assert "corrupt gzip stream" in without_index[1].column("reason")[0].as_py()


def _indexed_plan(tmp_path, blank: bool):
    """A big gzip file planned with an index; returns its shards, the rows they read and
    the index file."""
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(_lines(10_000, blank=blank)) + b"\n")
    index_dir = tmp_path / "_index"
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(index_dir))
    (name,) = _indexes(index_dir)
    return shards, _read(shards), index_dir / name


def test_a_range_whose_index_is_gone_reads_the_same_rows_from_the_start(tmp_path, caplog):
    shards, expected, index = _indexed_plan(tmp_path, blank=True)
    os.remove(index)
    with caplog.at_level(logging.WARNING):
        again = _read(shards)
    assert again[0].equals(expected[0]) and again[1].equals(expected[1])
    assert again[2] == expected[2]
    assert any("cannot use the index" in r.getMessage() for r in caplog.records)


def test_a_range_whose_index_is_not_an_index_reads_the_same_rows(tmp_path):
    shards, expected, index = _indexed_plan(tmp_path, blank=False)
    index.write_bytes(b"GZIDX not an index")
    again = _read(shards)
    assert again[0].equals(expected[0]) and again[1].equals(expected[1])


def test_ranges_read_in_many_windows_read_what_the_whole_file_reads(tmp_path, monkeypatch):
    """A range larger than the reader's window is read a window at a time, each from the
    index point before it."""
    monkeypatch.setattr(gzip_index, "WINDOW", 50_000)
    lines = _lines(10_000, blank=True, seed=3)
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(lines) + b"\n")
    rows = _read(plan_shards(str(path)))
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(tmp_path / "_index"))
    assert len(shards) >= 5
    split = _read(shards)
    assert split[0].equals(rows[0]) and split[1].equals(rows[1]) and split[2] == rows[2]


def test_a_hand_made_range_with_an_index_keeps_the_hadoop_rule(tmp_path):
    """Ranges that start and end inside lines own the lines that start in them."""
    lines = _lines(10_000, blank=True, seed=4)
    data = b"\n".join(lines)  # no final newline
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, data)
    rows, bad, blank = _read(plan_shards(str(path)))
    planned = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(tmp_path / "_index"))
    index = planned[-1].index
    bounds = [0, len(data) // 3 + 5, len(data) // 2 + 11, 2 * len(data) // 3 - 3, None]
    assert all(data[b - 1 : b] != b"\n" for b in bounds[1:-1])
    hand_made = [
        Shard(uri=str(path), file_index=0, part=k, start=bounds[k], end=bounds[k + 1],
              first_line=None if k else 1, index=index)
        for k in range(len(bounds) - 1)
    ]  # fmt: skip
    split = _read(hand_made)
    assert split[0].equals(rows) and split[1].equals(bad) and split[2] == blank


def test_without_an_index_folder_no_index_is_written_and_shards_have_none(tmp_path):
    lines = _lines(10_000, blank=False)
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(lines) + b"\n")
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB)
    assert len(shards) >= 5
    assert {s.index for s in shards} == {None}
    assert sorted(os.listdir(tmp_path)) == ["big.jsonl.gz"]


def test_a_zstd_file_splits_as_before_and_gets_no_index(tmp_path):
    lines = _lines(10_000, blank=True)
    path = tmp_path / "big.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    index_dir = tmp_path / "_index"
    before = plan_shards(str(path), shard_size_mb=SHARD_MB)
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(index_dir))
    assert shards == before and len(shards) >= 5
    assert {s.index for s in shards} == {None}
    assert _indexes(index_dir) == []
    whole = _read(plan_shards(str(path), shard_size_mb=64))
    split = _read(shards)
    assert split[0].equals(whole[0]) and split[1].equals(whole[1])


def test_a_small_or_damaged_gzip_file_is_one_shard_without_an_index(tmp_path):
    lines = _lines(10_000, blank=False)
    data = b"\n".join(lines) + b"\n"
    _gzip(tmp_path / "small.jsonl.gz", data[:100_000])
    packed = gzip.compress(data)
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    index_dir = tmp_path / "_index"
    for name in ("small.jsonl.gz", "cut.jsonl.gz"):
        uri = str(tmp_path / name)
        assert plan_shards(uri, shard_size_mb=SHARD_MB, index_dir=str(index_dir)) == [
            Shard(uri=uri, file_index=0, format="jsonl")
        ]
    assert _indexes(index_dir) == []
    bad = _read([Shard(uri=str(tmp_path / "cut.jsonl.gz"), file_index=0)])[1]
    assert "truncated gzip stream" in bad.column("reason")[-1].as_py()


def test_planning_the_same_file_again_names_the_same_index(tmp_path):
    lines = _lines(10_000, blank=False)
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(lines) + b"\n")
    index_dir = str(tmp_path / "_index")
    first = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=index_dir)
    again = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=index_dir)
    assert first == again
    other = plan_shards(str(path), shard_size_mb=SHARD_MB / 2, index_dir=index_dir)
    assert other[-1].index != first[-1].index
    assert len(_indexes(index_dir)) == 2


def test_the_index_is_much_smaller_than_the_full_index_of_the_file(tmp_path):
    """Only the points the ranges start from are kept: about one 32 KB window per range."""
    lines = _lines(10_000, blank=False)
    path = tmp_path / "big.jsonl.gz"
    _gzip(path, b"\n".join(lines) + b"\n")
    shards = plan_shards(str(path), shard_size_mb=SHARD_MB, index_dir=str(tmp_path / "_index"))
    with open(path, "rb") as f:
        full = gzip_index.build_index(f, lambda raw: None, 64 << 10)
    kept = os.path.getsize(shards[-1].index)
    assert kept <= (len(shards) + 2) * (32 << 10) + 4096
    assert kept < len(full) / 4


def test_a_gzip_file_on_s3_is_indexed_on_s3_and_its_ranges_read_through_it(
    tmp_path, s3_bucket, caplog
):
    import s3fs

    lines = _lines(10_000, blank=True)
    local = tmp_path / "big.jsonl.gz"
    _gzip(local, b"\n".join(lines) + b"\n")
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe_file(f"{s3_bucket}/in/big.jsonl.gz", local.read_bytes())
    index_dir = f"s3://{s3_bucket}/out/_index"
    shards = plan_shards(f"s3://{s3_bucket}/in/big.jsonl.gz", SHARD_MB, index_dir=index_dir)
    assert len(shards) >= 5
    (found,) = fs.ls(f"{s3_bucket}/out/_index")
    assert shards[-1].index == f"s3://{found}" and found.endswith(".gzidx")
    whole = _read(plan_shards(str(local), shard_size_mb=64))
    with caplog.at_level(logging.WARNING):
        split = _read(shards)
    assert not [r for r in caplog.records if "cannot use the index" in r.getMessage()]
    assert split[0].drop_columns(["source"]).equals(whole[0].drop_columns(["source"]))
    assert split[2] == whole[2]


@pytest.mark.parametrize("kind", ["one member", "members", "corrupt"])
def test_building_an_index_hands_every_compressed_byte_once_and_in_order(tmp_path, kind):
    data = b"\n".join(_lines(6000, blank=False)) + b"\n"
    path = tmp_path / "a.jsonl.gz"
    _gzip(path, data, members=3 if kind == "members" else 1)
    if kind == "corrupt":
        packed = bytearray(path.read_bytes())
        packed[len(packed) // 2 : len(packed) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(packed))
    pieces: list[bytes] = []
    with open(path, "rb") as f:
        index = gzip_index.build_index(f, pieces.append, 1 << 20)
    assert b"".join(pieces) == path.read_bytes()
    assert (index is None) == (kind == "corrupt")


def test_a_shard_dict_keeps_its_index_and_an_old_dict_reads_without_one():
    shard = Shard(uri="s3://b/a.jsonl.gz", file_index=2, part=3, start=10, end=20,
                  first_line=7, index="s3://b/out/_index/x.gzidx")  # fmt: skip
    assert Shard.from_dict(shard.to_dict()) == shard
    old = {k: v for k, v in shard.to_dict().items() if k != "index"}
    assert Shard.from_dict(old).index is None
