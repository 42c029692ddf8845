"""Compressed JSON lines (gzip, zstd) larger than the shard size split into ranges of their
decompressed stream, Parquet files into ranges of row groups; the ranges together read
exactly what the whole file reads."""

from __future__ import annotations

import gzip
import math
import random
import struct
import wave
from io import BytesIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from stages.io import shards as shards_module
from stages.io.quarantine import blank_lines
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards

BOM = b"\xef\xbb\xbf"


@pytest.fixture(autouse=True)
def _probe_every_compressed_file(monkeypatch):
    """These files compress far better than text, and their shards are tiny: the planner
    must probe them whatever their compressed size (the size rule has its own tests)."""
    monkeypatch.setattr(shards_module, "SPLIT_PROBE_RATIO", 1 << 30)


TINY_MB = 0.01  # about 10 KB: a few hundred KB of lines make dozens of ranges


def _messy(n: int, seed: int = 0) -> bytes:
    """Lines of varied length and every kind a reader must number and place exactly: blank
    ones, bad JSON, a non-object, invalid UTF-8, a line longer than several ranges; a
    leading BOM and no final newline. No line has an `id`, so ids are generated."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        if i % 97 == 13:
            lines.append(b"")
        elif i % 89 == 5:
            lines.append(b"  \r")
        elif i % 211 == 7:
            lines.append(b"{broken")
        elif i % 307 == 11:
            lines.append(b"[1, 2]")
        elif i % 401 == 17:
            lines.append(b'{"text": "caf\xe9", "n": 0}')
        elif i == n // 2:
            lines.append(orjson.dumps({"text": "long " * 8000, "n": i}))
        else:
            lines.append(orjson.dumps({"text": "w" * rng.randint(0, 300), "n": i}))
    return BOM + b"\n".join(lines)


def _pack(data: bytes, kind: str) -> bytes:
    """`data` compressed as one gzip member or zstd frame, or as several (cut anywhere,
    even inside a line, as `cat a.gz b.gz` does)."""
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    cuts = [0, len(data) // 3, len(data) // 3 + 1, 2 * len(data) // 3 + 7, len(data)]
    pieces = [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    if kind == "gzip-members":
        return b"".join(gzip.compress(p) for p in pieces)
    return b"".join(zstandard.ZstdCompressor().compress(p) for p in pieces)


def _name(kind: str) -> str:
    return "a.jsonl.gz" if kind.startswith("gzip") else "a.jsonl.zst"


def _read(shards: list[Shard], **kwargs) -> tuple[pa.Table, pa.Table, int]:
    """Rows, quarantine records and blank lines of the shards, in order."""
    reader = ShardReader(**kwargs)
    results = [reader.read(shard) for shard in shards]
    rows = pa.concat_tables([r.table for r in results], promote_options="default")
    bad = pa.concat_tables([r.quarantine.replace_schema_metadata(None) for r in results])
    return rows, bad, sum(blank_lines(r.quarantine) for r in results)


KINDS = ["gzip", "zstd", "gzip-members", "zstd-frames"]


@pytest.mark.parametrize("kind", KINDS)
def test_ranges_of_a_compressed_file_read_exactly_what_the_whole_file_reads(tmp_path, kind):
    data = _messy(2000)
    path = tmp_path / _name(kind)
    path.write_bytes(_pack(data, kind))
    (whole,) = plan_shards(str(path), shard_size_mb=64)
    expected = _read([whole])
    rows, bad, blank = expected
    assert rows.num_rows > 1900 and bad.num_rows > 10 and blank > 30
    assert rows.column("_order")[0].as_py() == 1  # the BOM is not part of line 1
    shards = plan_shards(str(path), shard_size_mb=TINY_MB)
    assert len(shards) > 20
    assert [s.part for s in shards] == list(range(len(shards)))
    assert shards[0].start == 0 and shards[-1].end is None
    assert all(a.end == b.start for a, b in zip(shards, shards[1:], strict=False))
    for shard in shards[1:]:  # each range starts at a line start, numbered as in the file
        assert data[shard.start - 1 : shard.start] == b"\n"
        assert shard.first_line == data[: shard.start].count(b"\n") + 1
    split = _read(shards)
    assert split[0].equals(rows)
    assert split[1].equals(bad)
    assert split[2] == blank


@pytest.mark.parametrize("size_bytes", [3000, 10_000, 77_777, "all but one"])
def test_splitting_at_many_shard_sizes_loses_and_duplicates_no_line(tmp_path, size_bytes):
    data = _messy(1500, seed=1)
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(data))
    expected = _read(plan_shards(str(path)))
    if size_bytes == "all but one":
        size_bytes = len(data) - 1
    shards = plan_shards(str(path), shard_size_mb=size_bytes / 2**20)
    assert len(shards) > 1
    split = _read(shards)
    assert split[0].equals(expected[0]) and split[1].equals(expected[1])


def test_ranges_are_about_equal_and_none_holds_more_than_the_shard_size(tmp_path):
    line = orjson.dumps({"text": "x" * 90}) + b"\n"
    data = line * 10_000  # about 1 MB
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    shard_bytes = 100_000
    shards = plan_shards(str(tmp_path / "a.jsonl.zst"), shard_size_mb=shard_bytes / 2**20)
    parts = math.ceil(len(data) / shard_bytes)
    assert len(shards) == parts
    ends = [s.end for s in shards[:-1]] + [len(data)]
    sizes = [end - s.start for s, end in zip(shards, ends, strict=True)]
    assert max(sizes) <= shard_bytes
    assert min(sizes) >= len(data) // parts - shard_bytes // 16 - len(line)


def _write(path, data: bytes) -> None:
    """`data` into `path`, compressed as its extension says."""
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.jsonl.zst", "a.jsonl"])
def test_a_file_no_larger_than_the_shard_size_is_one_whole_shard_as_before(tmp_path, name):
    data = _messy(300)
    path = tmp_path / name
    _write(path, data)
    shards = plan_shards(str(path), shard_size_mb=len(data) / 2**20)
    assert shards == [Shard(uri=str(path), file_index=0, format="jsonl")]


def test_an_empty_compressed_file_is_one_shard_that_reports_it(tmp_path):
    path = tmp_path / "empty.jsonl.gz"
    path.write_bytes(gzip.compress(b""))
    shards = plan_shards(str(path), shard_size_mb=1 / 2**20)
    assert shards == [Shard(uri=str(path), file_index=0, format="jsonl")]
    assert _read(shards)[1].column("reason").to_pylist() == [f"{path}: line 0: empty file"]


def _damaged(data: bytes, how: str) -> bytes:
    packed = gzip.compress(data, compresslevel=1)
    if how == "truncated":
        return packed[: len(packed) // 2]
    middle = len(packed) // 2
    return packed[:middle] + bytes(64) + packed[middle + 64 :]


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_gzip_is_one_shard_that_reports_the_damage_as_before(tmp_path, how):
    data = _messy(3000, seed=2)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(_damaged(data, how))
    shards = plan_shards(str(path), shard_size_mb=TINY_MB)
    assert shards == [Shard(uri=str(path), file_index=0, format="jsonl")]
    rows, bad, _ = _read(shards)
    assert rows.num_rows < 2900
    last = bad.to_pylist()[-1]
    assert last["reason"].startswith(f"{path}: line {last['line']}: {how} gzip stream after")
    if how == "truncated":  # the lines before the damage are kept, the partial one quarantined
        assert rows.num_rows > 0
        assert data[last["offset"] : last["offset"] + last["length"]] == last["raw"]


def test_a_range_that_ends_before_the_damage_does_not_report_it(tmp_path):
    data = _messy(3000, seed=2)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(_damaged(data, "truncated"))
    (whole,) = plan_shards(str(path))
    rows, bad, _ = _read([whole])
    cut = data.index(b"\n", 20_000) + 1
    line = data[:cut].count(b"\n") + 1
    head = Shard(uri=str(path), file_index=0, start=0, end=cut)
    tail = Shard(uri=str(path), file_index=0, part=1, start=cut, first_line=line)
    (head_rows, head_bad, _), (tail_rows, tail_bad, _) = _read([head]), _read([tail])
    assert not any("stream" in r for r in head_bad.column("reason").to_pylist())
    assert pa.concat_tables([head_rows, tail_rows]).equals(rows)
    assert pa.concat_tables([head_bad, tail_bad]).equals(bad)


def test_a_hand_made_range_of_a_compressed_file_counts_its_own_first_line(tmp_path):
    data = _messy(500, seed=3)
    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    rows, bad, _ = _read(plan_shards(str(path)))
    middle = len(data) // 2  # not a line start: the range owns the lines starting after it
    head = Shard(uri=str(path), file_index=0, start=0, end=middle)
    tail = Shard(uri=str(path), file_index=0, part=1, start=middle, first_line=None)
    split = _read([head, tail])
    assert split[0].equals(rows) and split[1].equals(bad)


def test_a_bom_is_stripped_only_at_the_start_of_the_stream(tmp_path):
    """Every line starts with BOM bytes and most ranges start at such a line: only the
    one at the start of the stream is a BOM, the others keep their lines bad."""
    lines = [BOM + orjson.dumps({"id": f"d{i}", "text": "t"}) for i in range(40)]
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    shards = plan_shards(str(path), shard_size_mb=200 / 2**20)
    assert len(shards) > 3
    rows, bad, _ = _read(shards)
    assert rows.column("id").to_pylist() == ["d0"]
    assert bad.column("line").to_pylist() == list(range(2, 41))


def _wav() -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<400h", *range(400)))
    return buffer.getvalue()


def test_a_compressed_manifest_splits_like_jsonl(tmp_path):
    (tmp_path / "wavs").mkdir()
    (tmp_path / "wavs" / "a.wav").write_bytes(_wav())
    lines = []
    for i in range(1500):
        audio = "wavs/a.wav" if i % 50 else "wavs/missing.wav"
        lines.append(orjson.dumps({"audio_filepath": audio, "duration": 0.05, "text": f"n {i}"}))
        if i % 70 == 3:
            lines.append(b"{broken")
    path = tmp_path / "train_manifest.json.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (whole,) = plan_shards(str(path), format="manifest")
    shards = plan_shards(str(path), shard_size_mb=TINY_MB, format="manifest")
    assert len(shards) > 5 and {s.format for s in shards} == {"manifest"}
    rows, bad, _ = _read([whole])
    assert bad.num_rows > 40
    split = _read(shards)
    assert split[0].equals(rows) and split[1].equals(bad)


def test_a_plain_file_still_splits_into_equal_byte_ranges(tmp_path):
    data = _messy(2000)
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    shards = plan_shards(str(path), shard_size_mb=TINY_MB)
    parts = math.ceil(len(data) / int(TINY_MB * 2**20))
    assert [(s.start, s.end) for s in shards] == [
        (len(data) * k // parts, len(data) * (k + 1) // parts) for k in range(parts)
    ]
    split = _read(shards)
    rows, bad, _ = _read(plan_shards(str(path)))
    assert split[0].equals(rows) and split[1].equals(bad)


def _parquet(path, rows: int = 2000, group: int = 100, **columns) -> None:
    texts = [None if i % 37 == 3 else f"row {i} " * (i % 20) for i in range(rows)]
    ids = [None if i % 5 == 0 else f"d{i}" for i in range(rows)]
    table = pa.table({"id": ids, "text": texts, "n": list(range(rows)), **columns})
    pq.write_table(table, path, row_group_size=group)


def test_a_parquet_file_splits_into_row_group_ranges_that_read_what_the_whole_file_reads(
    tmp_path,
):
    path = tmp_path / "a.parquet"
    _parquet(path)
    (whole,) = plan_shards(str(path))
    rows, bad, _ = _read([whole])
    assert rows.num_rows > 1900 and bad.num_rows > 40
    group_bytes = path.stat().st_size // 20
    shards = plan_shards(str(path), shard_size_mb=3 * group_bytes / 2**20)
    assert len(shards) > 4 and shards[-1].end is None
    assert [s.start for s in shards[1:]] == [s.end for s in shards[:-1]]
    split = _read(shards)
    assert split[0].equals(rows) and split[1].equals(bad)
    one_group_each = plan_shards(str(path), shard_size_mb=1 / 2**20)
    assert [(s.start, s.end) for s in one_group_each] == [(g, g + 1) for g in range(19)] + [
        (19, None)
    ]
    split = _read(one_group_each, columns=["n"])
    assert split[0].equals(_read([whole], columns=["n"])[0])


def test_a_parquet_file_no_larger_than_the_shard_size_or_of_one_group_is_one_shard(tmp_path):
    _parquet(tmp_path / "small.parquet")
    _parquet(tmp_path / "one-group.parquet", group=2000)
    size = (tmp_path / "small.parquet").stat().st_size
    [small] = plan_shards(str(tmp_path / "small.parquet"), shard_size_mb=size / 2**20)
    [one] = plan_shards(str(tmp_path / "one-group.parquet"), shard_size_mb=1 / 2**20)
    for shard in (small, one):
        assert shard == Shard(uri=shard.uri, file_index=0, format="parquet")


def test_a_file_level_parquet_record_comes_once_from_the_first_range(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["x" * 50] * 1000}), path, row_group_size=100)
    shards = plan_shards(str(path), shard_size_mb=1 / 2**20)
    assert len(shards) == 10
    bad = _read(shards)[1].to_pylist()
    assert [(b["line"], b["rows"]) for b in bad] == [(0, 1000)]
    assert bad[0]["reason"] == f"{path}: line 0: missing column 'text'"


def test_damaged_parquet_data_stops_only_the_range_it_is_in(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(
        pa.table({"text": [f"row {i} " * 50 for i in range(600)]}), path, row_group_size=100
    )
    start = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))
    shards = plan_shards(str(path), shard_size_mb=1 / 2**20)
    assert len(shards) == 6
    rows, bad, _ = _read(shards)
    assert rows.column("_order").to_pylist() == [*range(1, 201), *range(301, 601)]
    assert [(b["line"], b["rows"]) for b in bad.to_pylist()] == [(201, 100)]


def _never_probed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the planner decompressed a file it cannot split")

    monkeypatch.setattr(shards_module, "compressed_cuts", refuse)


def test_a_compressed_file_far_below_the_shard_size_is_not_decompressed(tmp_path, monkeypatch):
    monkeypatch.setattr(shards_module, "SPLIT_PROBE_RATIO", 8)
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(_messy(300)))
    _never_probed(monkeypatch)
    shard_mb = path.stat().st_size * 8 / 2**20  # the file is 1/8 of a shard
    assert plan_shards(str(path), shard_size_mb=shard_mb) == [
        Shard(uri=str(path), file_index=0, format="jsonl")
    ]


def test_many_compressed_files_are_read_whole_without_decompressing_them(tmp_path, monkeypatch):
    for i in range(8):
        (tmp_path / f"{i}.jsonl.gz").write_bytes(gzip.compress(_messy(300, seed=i)))
    _never_probed(monkeypatch)
    shards = plan_shards(str(tmp_path), shard_size_mb=TINY_MB, parallelism=2)
    assert [(s.file_index, s.part, s.start, s.end) for s in shards] == [
        (i, 0, 0, None) for i in range(8)
    ]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"])
def test_few_large_files_split_into_a_multiple_of_the_workers(tmp_path, name):
    data = orjson.dumps({"text": "y" * 200}) + b"\n"
    data = data * 3000  # about 0.6 MB
    path = tmp_path / name
    _write(path, data)
    shard_mb = len(data) / 3.5 / 2**20  # 4 ranges alone
    assert len(plan_shards(str(path), shard_size_mb=shard_mb)) == 4
    three = plan_shards(str(path), shard_size_mb=shard_mb, parallelism=3)
    assert len(three) == 6  # rounded up so that three workers end together
    whole = _read(plan_shards(str(path), shard_size_mb=1024))
    split = _read(three)
    assert split[0].equals(whole[0])
