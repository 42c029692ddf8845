"""Ids are never changed, but ids held by several rows are found and reported
(`stages.io.ids`), and a removed row is located by its `_order` (`stages.io.rows.locate`)."""

from __future__ import annotations

import pyarrow as pa

from stages.io.ids import duplicate_ids
from stages.io.read import ShardReader
from stages.io.rows import locate
from stages.io.shards import Shard, plan_shards
from stages.io.write import write_jsonl, write_parquet


def test_7_and_string_7_and_7_point_0_are_one_id_reported_not_changed(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(
        b'{"id": 7, "text": "x"}\n{"id": "7", "text": "y"}\n{"id": 7.0, "text": "z"}\n'
        b'{"id": 8, "text": "w"}\n'
    )
    table = ShardReader().read(plan_shards(str(tmp_path / "a.jsonl"))[0]).table
    assert table.column("id").to_pylist() == ["7", "7", "7", "8"]
    write_parquet(table, str(tmp_path / "part-0.parquet"))
    found = duplicate_ids([str(tmp_path / "part-0.parquet")])
    assert found == {
        "ids": 1,
        "rows": 3,
        "sample": [{"id": "7", "rows": 3, "sources": [str(tmp_path / "a.jsonl")]}],
    }


def test_ids_shared_across_files_are_found(tmp_path):
    write_parquet(pa.table({"id": ["a", "b", "c"]}), str(tmp_path / "p0.parquet"))
    write_parquet(pa.table({"id": ["c", "d", "a", "a"]}), str(tmp_path / "p1.parquet"))
    write_jsonl(pa.table({"id": ["d", "e"]}), str(tmp_path / "p2.jsonl"))
    found = duplicate_ids([str(tmp_path / n) for n in ("p0.parquet", "p1.parquet", "p2.jsonl")])
    assert (found["ids"], found["rows"]) == (3, 7)
    assert [(s["id"], s["rows"]) for s in found["sample"]] == [("a", 3), ("c", 2), ("d", 2)]


def test_unique_ids_report_nothing(tmp_path):
    write_parquet(pa.table({"id": [str(i) for i in range(1000)]}), str(tmp_path / "p.parquet"))
    assert duplicate_ids([str(tmp_path / "p.parquet")]) == {"ids": 0, "rows": 0, "sample": []}


def test_locate_turns_orders_into_source_and_line():
    shards = [
        Shard(uri="/in/a.jsonl", file_index=0, part=0, end=10),
        Shard(uri="/in/a.jsonl", file_index=0, part=1, start=10, first_line=4),
        Shard(uri="/in/b.parquet", file_index=1, format="parquet"),
        Shard(uri="/img", file_index=2, format="files", members=("x.png", "y.png")),
    ]
    orders = pa.array([5, (1 << 32) + 2, (2 << 32) + 2, (9 << 32) + 1], pa.int64())
    sources, lines = locate(shards, orders)
    assert sources.to_pylist() == ["/in/a.jsonl", "/in/b.parquet", "/img/y.png", None]
    assert lines.to_pylist() == [5, 2, 0, 1]
