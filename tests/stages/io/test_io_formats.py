"""The format registry: detection by extension, `plan_shards(format=...)`, `Shard.format`
checked against the registry, and a user's own format read through `ShardReader`."""

from __future__ import annotations

import inspect
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.io.formats import FORMATS, Format, register_format
from stages.io.read import QUARANTINE_SCHEMA, ReadResult, ShardReader, empty_quarantine
from stages.io.rows import assemble
from stages.io.shards import Shard, detect_format, plan_shards


def test_the_registry_holds_eight_formats_and_what_each_allows():
    flags = {name: (c.detected, c.splittable, c.groups_files) for name, c in FORMATS.items()}
    assert flags == {
        "jsonl": (True, True, False),
        "parquet": (True, False, False),
        "webdataset": (True, False, False),
        "files": (False, False, True),
        "manifest": (False, True, False),
        "warc": (True, False, False),
        "wikipedia": (False, False, False),
        "arxiv": (False, False, False),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("a.jsonl", ("jsonl", None)),
        ("s3://b/x/A.JSON.GZ", ("jsonl", "gzip")),
        ("a.ndjson.zst", ("jsonl", "zstd")),
        ("a.parquet", ("parquet", None)),
        ("00000.tar", ("webdataset", None)),
        ("00000.tar.gz", ("webdataset", "gzip")),
        ("CC-MAIN-0001.warc.gz", ("warc", "gzip")),
        ("cat.jpg", None),
        ("notes.txt", None),
    ],
)
def test_detect_format_by_extension(name, found):
    assert detect_format(name) == found


def test_plan_shards_defaults_to_32_mb_shards():
    assert inspect.signature(plan_shards).parameters["shard_size_mb"].default == 32


def test_shards_are_numbered_by_their_position_in_the_plan(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "aaaaaaaaaa"}\n' * 100)
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "b.parquet")
    shards = plan_shards(str(tmp_path), shard_size_mb=1000 / 2**20)
    assert [s.number for s in shards] == list(range(len(shards)))
    assert shards[-1].format == "parquet" and len(shards) > 2


def test_forced_format_reads_any_named_file_and_filters_folders(tmp_path):
    (tmp_path / "data.txt").write_bytes(b'{"text": "hello"}\n')
    [shard] = plan_shards(str(tmp_path / "data.txt"), format="jsonl")
    assert ShardReader().read(shard).table.column("text").to_pylist() == ["hello"]
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "x"}\n')
    (tmp_path / "c.parquet").write_bytes(b"")
    assert [s.uri for s in plan_shards(str(tmp_path), format="jsonl")] == [
        str(tmp_path / "b.jsonl")
    ]


def test_unknown_format_names_are_refused_with_the_known_ones(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unknown format 'csv' \(known: jsonl, parquet"):
        plan_shards(str(tmp_path), format="csv")
    with pytest.raises(ValueError, match=r"x\.csv: unknown format 'csv'"):
        Shard(uri="x.csv", file_index=0, format="csv")


def test_a_shard_round_trips_through_json_with_its_new_fields():
    shard = Shard(uri="s3://b/img", file_index=7, format="files", members=("a.jpg",), number=3)
    assert Shard.from_dict(json.loads(json.dumps(shard.to_dict()))) == shard
    assert shard.uris == ("s3://b/img/a.jpg",)
    assert Shard(uri="/x/a.jsonl", file_index=0).uris == ("/x/a.jsonl",)


def test_quarantine_raw_is_the_original_bytes(tmp_path):
    assert QUARANTINE_SCHEMA.field("raw").type == pa.binary()
    assert empty_quarantine().schema == QUARANTINE_SCHEMA
    line = b'{"text": "caf\xe9"}'
    (tmp_path / "a.jsonl").write_bytes(line + b"\n" + b"{" + b"x" * 9000 + b"\n")
    q = ShardReader().read(plan_shards(str(tmp_path / "a.jsonl"))[0]).quarantine
    assert q.column("raw").to_pylist() == [line, b"{" + b"x" * 9000]  # whole, up to 1 MB


def test_a_registered_format_is_read_through_shard_reader(tmp_path):
    @register_format
    class Lines(Format):
        """A toy format: one row per line of a `.lines` file."""

        name = "lines"
        extensions = (".lines",)

        def read(self, shard, reader):
            with open(shard.uri, "rb") as f:
                texts = f.read().decode().splitlines()
            numbers = list(range(1, len(texts) + 1))
            yield ReadResult(assemble(shard, texts, None, numbers, {}), empty_quarantine())

    try:
        (tmp_path / "a.lines").write_text("one\ntwo\n")
        [shard] = plan_shards(str(tmp_path))
        assert shard.format == "lines"
        assert ShardReader().read(shard).table.column("text").to_pylist() == ["one", "two"]
    finally:
        FORMATS.pop("lines")
