"""ShardReader: rows, projection, ids, and quarantine of every kind of bad input."""

from __future__ import annotations

import gzip

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from stages.io.errors import InputError
from stages.io.formats.jsonl import JsonlFormat
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards


def _rows(n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document number {i}", "lang": "en", "n": i} for i in range(n)]


def _jsonl(rows: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _read(path, **kwargs):
    shards = plan_shards(str(path))
    assert len(shards) == 1
    return ShardReader(**kwargs).read(shards[0])


def _write_all_formats(tmp_path, rows):
    data = _jsonl(rows)
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    return ["a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.parquet"]


def test_plain_gzip_zstd_and_parquet_read_the_same_rows(tmp_path):
    rows = _rows(50)
    names = _write_all_formats(tmp_path, rows)
    for name in names:
        result = _read(tmp_path / name)
        table = result.table
        assert table.column_names[:4] == ["id", "text", "source", "_order"]
        assert table.column("id").to_pylist() == [r["id"] for r in rows], name
        assert table.column("text").to_pylist() == [r["text"] for r in rows], name
        assert table.column("n").to_pylist() == list(range(50)), name
        assert set(table.column("source").to_pylist()) == {str(tmp_path / name)}
        assert result.quarantine.num_rows == 0, name


def test_order_is_file_index_times_2_pow_32_plus_line(tmp_path):
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(_jsonl(_rows(3)))
    shards = plan_shards(str(tmp_path))
    second = ShardReader().read(shards[1]).table
    assert second.column("_order").to_pylist() == [2**32 + 1, 2**32 + 2, 2**32 + 3]


def test_column_projection_keeps_only_requested_fields(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(_rows(5)))
    table = _read(tmp_path / "a.jsonl", columns=["lang", "absent"]).table
    assert table.column_names == ["id", "text", "source", "_order", "lang", "absent"]
    assert table.column("absent").null_count == 5


def test_parquet_column_projection(tmp_path):
    pq.write_table(pa.Table.from_pylist(_rows(5)), tmp_path / "a.parquet")
    table = _read(tmp_path / "a.parquet", columns=["n"]).table
    assert table.column_names == ["id", "text", "source", "_order", "n"]


def test_text_field_is_renamed_and_integer_ids_become_strings(tmp_path):
    rows = [{"doc": 7, "content": "hello"}, {"doc": 8, "content": "world"}]
    (tmp_path / "a.jsonl").write_bytes(_jsonl(rows))
    table = _read(tmp_path / "a.jsonl", text_field="content", id_field="doc").table
    assert table.column("text").to_pylist() == ["hello", "world"]
    assert table.column("id").to_pylist() == ["7", "8"]
    assert "content" not in table.column_names


def test_generated_ids_are_stable_and_name_the_file_and_line(tmp_path):
    (tmp_path / "web.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n'))
    first = _read(tmp_path / "web.jsonl.gz").table.column("id").to_pylist()
    again = _read(tmp_path / "web.jsonl.gz").table.column("id").to_pylist()
    assert first == again
    assert first[0].startswith("web-") and first[0].endswith("-1")
    assert first[1].endswith("-2")
    assert len(set(first)) == 2


def test_input_field_named_like_an_output_column_is_kept_with_a_prefix(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "a", "source": "crawl-7"}\n')
    table = _read(tmp_path / "a.jsonl").table
    assert table.column("source").to_pylist() == [str(tmp_path / "a.jsonl")]
    assert table.column("input_source").to_pylist() == ["crawl-7"]


BAD_LINES = [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "expected a JSON object, got array"),
    (b'"just a string"', "expected a JSON object, got string"),
    (b'{"title": "no text"}', "missing field 'text'"),
    (b'{"text": 42}', "field 'text' is number, expected a string"),
    (b'{"text": null}', "field 'text' is null, expected a string"),
    (b'{"text": "caf\xe9"}', "invalid UTF-8"),
]


@pytest.mark.parametrize(("bad", "why"), BAD_LINES, ids=[w for _, w in BAD_LINES])
def test_bad_line_is_quarantined_with_file_and_line_and_good_rows_survive(tmp_path, bad, why):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "good one"}\n' + bad + b'\n{"text": "good two"}\n')
    result = _read(path)
    assert result.table.column("text").to_pylist() == ["good one", "good two"]
    assert result.table.column("_order").to_pylist() == [1, 3]
    q = result.quarantine.to_pylist()
    assert len(q) == 1
    assert q[0]["source"] == str(path)
    assert q[0]["line"] == 2
    assert q[0]["reason"].startswith(f"{path}: line 2: ")
    assert why in q[0]["reason"]
    assert q[0]["raw"] == bad


@pytest.mark.parametrize(("bad", "why"), BAD_LINES, ids=[w for _, w in BAD_LINES])
def test_strict_mode_raises_input_error_naming_file_and_line(tmp_path, bad, why):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "good"}\n' + bad + b"\n")
    with pytest.raises(InputError, match=rf"^{path}: line 2: .*{why}"):
        _read(path, strict=True)


def test_blank_lines_are_skipped_but_still_counted(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "a"}\n\n  \r\n{"text": "b"}\n')
    result = _read(tmp_path / "a.jsonl")
    assert result.table.column("_order").to_pylist() == [1, 4]
    assert result.quarantine.num_rows == 0


def test_last_line_without_newline_is_read(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "a"}\n{"text": "b"}')
    assert _read(tmp_path / "a.jsonl").table.column("text").to_pylist() == ["a", "b"]


@pytest.mark.parametrize(
    "name", ["empty.jsonl", "empty.jsonl.gz", "empty.jsonl.zst", "empty.parquet"]
)
def test_empty_file_gives_zero_rows_and_a_quarantine_record(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(b""))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(b""))
    else:
        path.write_bytes(b"")
    result = _read(path)
    assert result.table.num_rows == 0
    assert result.quarantine.to_pylist() == [
        {
            "source": str(path),
            "line": 0,
            "reason": f"{path}: line 0: empty file",
            "raw": None,
            "rows": 1,
            "offset": None,
            "length": None,
        }
    ]


def test_empty_file_in_strict_mode_raises(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match="line 0: empty file"):
        _read(tmp_path / "empty.jsonl", strict=True)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_stream_keeps_rows_before_the_damage(tmp_path, kind):
    rows = _rows(20000)
    data = _jsonl(rows)
    if kind == "gzip":
        packed, path = gzip.compress(data), tmp_path / "cut.jsonl.gz"
    else:
        packed, path = zstandard.ZstdCompressor().compress(data), tmp_path / "cut.jsonl.zst"
    path.write_bytes(packed[: len(packed) // 2])
    result = _read(path)
    kept = result.table.num_rows
    assert 0 < kept < len(rows)
    assert result.table.column("id").to_pylist() == [r["id"] for r in rows[:kept]]
    q = result.quarantine.to_pylist()
    assert len(q) == 1
    assert q[0]["line"] == kept
    assert q[0]["reason"] == f"{path}: line {kept}: truncated {kind} stream after line {kept}"


def test_truncated_stream_in_strict_mode_raises(tmp_path):
    packed = gzip.compress(_jsonl(_rows(5000)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=r"cut.jsonl.gz: line \d+: truncated gzip stream"):
        _read(path, strict=True)


def test_parquet_null_text_rows_are_quarantined(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"]}), path)
    result = _read(path)
    assert result.table.column("text").to_pylist() == ["a", "c"]
    assert result.table.column("_order").to_pylist() == [1, 3]
    assert result.quarantine.column("line").to_pylist() == [2]
    assert result.quarantine.column("reason")[0].as_py().startswith(f"{path}: line 2: ")


def test_parquet_without_text_column_is_one_file_level_record(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["a"]}), path)
    result = _read(path)
    assert result.table.num_rows == 0
    assert result.quarantine.to_pylist()[0]["reason"] == f"{path}: line 0: missing column 'text'"


def test_corrupt_parquet_is_quarantined_not_raised(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"this is not parquet at all")
    result = _read(path)
    assert result.table.num_rows == 0
    assert "unreadable Parquet file" in result.quarantine.column("reason")[0].as_py()


def test_mixed_types_in_a_field_become_json_text(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "a", "m": 1}\n{"text": "b", "m": "x"}\n')
    table = _read(tmp_path / "a.jsonl").table
    assert table.column("m").to_pylist() == ["1", '"x"']


def test_hand_made_range_shard_counts_its_own_first_line(tmp_path):
    path = tmp_path / "a.jsonl"
    data = _jsonl(_rows(10))
    path.write_bytes(data)
    start = data.index(b"\n", len(data) // 2) + 1
    shard = Shard(uri=str(path), file_index=0, start=start, first_line=None)
    table = ShardReader().read(shard).table
    first = table.column("n")[0].as_py()
    assert table.column("_order")[0].as_py() == first + 1
    assert table.column("n").to_pylist() == list(range(first, 10))


def test_s3_round_trip_reads_the_same_rows_as_local(tmp_path, s3_bucket):
    import s3fs

    rows = _rows(30)
    names = _write_all_formats(tmp_path, rows)
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    for name in names:
        fs.put_file(str(tmp_path / name), f"{s3_bucket}/raw/{name}")
    shards = plan_shards(f"s3://{s3_bucket}/raw/*")
    assert [s.uri for s in shards] == [f"s3://{s3_bucket}/raw/{n}" for n in names]
    for shard in shards:
        table = ShardReader().read(shard).table
        assert table.column("id").to_pylist() == [r["id"] for r in rows]
        assert table.column("source")[0].as_py() == shard.uri


def test_fast_and_per_line_parsers_give_the_same_table(tmp_path, monkeypatch):
    rows = [
        {
            "id": i,
            "text": f"doc {i}",
            "score": i / 3,
            "tags": ["a", "b"][: i % 3],
            "meta": {"lang": "en", "n": i} if i % 2 else {"lang": "fr"},
            "flag": i % 2 == 0,
            "maybe": None if i % 4 else "x",
            "source": "crawl",
        }
        for i in range(200)
    ]
    path = tmp_path / "a.jsonl"
    path.write_bytes(_jsonl(rows))
    for columns in (None, ["score", "meta", "missing"]):
        fast = _read(path, columns=columns).table
        with monkeypatch.context() as m:
            m.setattr(JsonlFormat, "parse_clean", lambda *args: None)
            slow = _read(path, columns=columns).table
        assert fast.schema == slow.schema, columns
        assert fast.to_pylist() == slow.to_pylist(), columns


def test_date_like_strings_stay_strings(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "a", "date": "2020-01-01"}\n')
    assert _read(tmp_path / "a.jsonl").table.column("date").to_pylist() == ["2020-01-01"]


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("blank", [False, True], ids=["clean", "with-a-blank-line"])
@pytest.mark.parametrize("name", ["bom.jsonl", "bom.jsonl.gz", "bom.jsonl.zst"])
def test_a_leading_utf8_bom_is_not_part_of_the_first_row(tmp_path, name, blank):
    data = BOM + _jsonl(_rows(3)) + (b"\n" if blank else b"")
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    (tmp_path / name).write_bytes(data)
    result = _read(tmp_path / name)
    assert result.quarantine.num_rows == 0
    assert result.table.column("id").to_pylist() == ["d0", "d1", "d2"]
    assert result.table.column("_order").to_pylist() == [1, 2, 3]


def test_a_bom_is_stripped_only_at_the_start_of_the_file(tmp_path):
    """Split into byte ranges, the file still loses its leading BOM; the same bytes at the
    start of a later range are inside the file, so that line stays bad."""
    lines = [BOM + orjson.dumps(r) for r in _rows(40)]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    shards = plan_shards(str(path), shard_size_mb=200 / 2**20)
    assert len(shards) > 3 and shards[0].start == 0
    reader = ShardReader()
    results = [reader.read(s) for s in shards]
    ids = [i for r in results for i in r.table.column("id").to_pylist()]
    bad = [n for r in results for n in r.quarantine.column("line").to_pylist()]
    assert ids == ["d0"]
    assert bad == list(range(2, 41))
    start = data.index(b"\n") + 1  # a hand-made range starting at line 2's BOM
    tail = reader.read(Shard(uri=str(path), file_index=0, start=start, first_line=None))
    assert tail.table.num_rows == 0 and tail.quarantine.column("line")[0].as_py() == 2
