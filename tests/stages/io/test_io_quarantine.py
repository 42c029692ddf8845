"""Quarantine records: the bad row's bytes (whole up to 1 MB), where the row lies in its
source (`offset`, `length`) so a larger one can be recovered, and how many input rows each
record stands for (`rows`); blank lines are counted apart, never as rows."""

from __future__ import annotations

import gzip
import io
import tarfile

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from stages.io.quarantine import RAW_BYTES, blank_lines, quarantine_counts
from stages.io.read import ShardReader
from stages.io.shards import plan_shards

BOM = b"\xef\xbb\xbf"
GOOD = b'{"text": "a good row"}'


def _read(path, **kwargs):
    [shard] = plan_shards(str(path))
    return ShardReader(**kwargs).read(shard)


def test_raw_keeps_up_to_one_megabyte():
    assert RAW_BYTES == 1 << 20


def test_a_bad_line_keeps_its_whole_bytes_and_its_place_in_the_file(tmp_path):
    bad = b"{" + b"x" * 9000
    data = GOOD + b"\n" + bad + b"\n" + GOOD + b"\n"
    (tmp_path / "a.jsonl").write_bytes(data)
    [q] = _read(tmp_path / "a.jsonl").quarantine.to_pylist()
    assert q["raw"] == bad
    assert (q["line"], q["rows"], q["offset"], q["length"]) == (2, 1, len(GOOD) + 1, len(bad))


def test_a_line_over_a_megabyte_keeps_its_first_megabyte_and_where_the_rest_is(tmp_path):
    big = b'{"text": "' + b"y" * (RAW_BYTES + 500)  # never closed: not JSON
    data = GOOD + b"\n" + big + b"\n"
    (tmp_path / "a.jsonl").write_bytes(data)
    [q] = _read(tmp_path / "a.jsonl").quarantine.to_pylist()
    assert q["raw"] == big[:RAW_BYTES]
    assert q["source"] == str(tmp_path / "a.jsonl") and q["length"] == len(big)
    assert data[q["offset"] : q["offset"] + q["length"]] == big


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"])
def test_offsets_are_in_the_decompressed_stream_bom_included(tmp_path, name):
    bad = b'{"text": 42}'
    stream = BOM + GOOD + b"\n\n" + bad + b"\n" + GOOD + b"\n"
    data = stream
    if name.endswith(".gz"):
        data = gzip.compress(stream)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(stream)
    (tmp_path / name).write_bytes(data)
    [q] = _read(tmp_path / name).quarantine.to_pylist()
    assert q["line"] == 3 and q["raw"] == bad
    assert stream[q["offset"] : q["offset"] + q["length"]] == bad


def test_offsets_of_byte_range_shards_are_offsets_in_the_file(tmp_path):
    lines = [orjson.dumps({"text": "t" * i}) for i in range(80)]
    lines = [b"{broken %d" % i if i % 7 == 3 else line for i, line in enumerate(lines)]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    shards = plan_shards(str(path), shard_size_mb=300 / 2**20)
    assert len(shards) > 3
    records = [q for s in shards for q in ShardReader().read(s).quarantine.to_pylist()]
    assert [q["line"] for q in records] == [i + 1 for i in range(80) if i % 7 == 3]
    for q in records:
        assert data[q["offset"] : q["offset"] + q["length"]] == q["raw"] == lines[q["line"] - 1]


def test_the_partial_line_of_a_truncated_stream_is_located(tmp_path):
    stream = b"".join(orjson.dumps({"text": f"row {i} " * 20}) + b"\n" for i in range(3000))
    packed = gzip.compress(stream)
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    [q] = _read(tmp_path / "cut.jsonl.gz").quarantine.to_pylist()
    assert q["raw"] and q["length"] == len(q["raw"])
    assert stream[q["offset"] : q["offset"] + q["length"]] == q["raw"]
    assert stream[q["offset"] - 1 : q["offset"]] == b"\n"


def test_a_bad_tar_member_keeps_its_bytes_and_offset_in_the_tar(tmp_path):
    members = [("k1.txt", b"fine"), ("k2.json", b'{"id": 1'), ("k2.txt", b"x")]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "a.tar").write_bytes(buffer.getvalue())
    [q] = _read(tmp_path / "a.tar").quarantine.to_pylist()
    assert q["raw"] == b'{"id": 1'
    assert buffer.getvalue()[q["offset"] : q["offset"] + q["length"]] == q["raw"]


# --------------------------------------------------------------------------- counts


def test_blank_lines_are_counted_apart_from_rows_and_quarantine(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD + b"\n\n  \r\n" + GOOD + b"\n{bad\n\n")
    result = _read(tmp_path / "a.jsonl")
    assert result.table.num_rows == 2
    assert result.blank_lines == 3
    assert quarantine_counts(result.quarantine) == (1, 1)  # (rows, records)
    assert blank_lines(result.quarantine) == 3  # travels with the shard's quarantine


def test_blank_lines_of_a_manifest_are_counted(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "m.jsonl").write_bytes(b'{"audio_filepath": "a.wav"}\n\n\n')
    [shard] = plan_shards(str(tmp_path / "m.jsonl"), format="manifest")
    result = ShardReader(text_field=None).read(shard)
    assert (result.table.num_rows, result.blank_lines) == (1, 2)


def test_an_unreadable_parquet_file_counts_the_rows_its_footer_declares(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " * 50 for i in range(100)]}), path)
    data = bytearray(path.read_bytes())
    data[4:600] = b"\xff" * 596  # the first data page, not the footer
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).metadata.num_rows == 100
    result = _read(path)
    assert result.table.num_rows == 0
    [q] = result.quarantine.to_pylist()
    assert q["rows"] == 100 and "unreadable Parquet" in q["reason"]
    assert quarantine_counts(result.quarantine) == (100, 1)


def test_a_parquet_file_without_its_footer_counts_one(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a"] * 100}), path)
    path.write_bytes(path.read_bytes()[:-20])
    [q] = _read(path).quarantine.to_pylist()
    assert q["rows"] == 1 and "unreadable Parquet file" in q["reason"]


def test_a_parquet_file_without_the_text_column_counts_all_its_rows(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["a"] * 7}), path)
    [q] = _read(path).quarantine.to_pylist()
    assert q["rows"] == 7 and q["reason"].endswith("missing column 'text'")


def test_a_parquet_file_damaged_after_its_first_row_group_keeps_what_came_before(tmp_path):
    path = tmp_path / "a.parquet"
    texts = [f"row {i} " * 50 for i in range(300)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=100)
    meta = pq.ParquetFile(path).metadata
    start = meta.row_group(2).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))
    result = _read(path)
    kept = result.table.num_rows
    assert kept == 200
    [q] = result.quarantine.to_pylist()
    assert q["rows"] == 100 and q["line"] == 201
