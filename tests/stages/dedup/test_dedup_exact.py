from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stages.dedup.exact import ExactDedupHash, select_exact_duplicates

ROOT = str(Path(__file__).resolve().parents[3])


def docs(texts: list[str | None], start: int = 0) -> pa.Table:
    return pa.table({"id": [f"d{start + i}" for i in range(len(texts))], "text": texts})


def with_order(table: pa.Table, start: int = 0) -> pa.Table:
    return table.append_column("_order", pa.array(range(start, start + table.num_rows), pa.int64()))


def test_hash_is_the_md5_hex_of_the_raw_text():
    out = ExactDedupHash()(docs(["Hello  World", None]))
    assert out.column("_hash").to_pylist() == [
        hashlib.md5(b"Hello  World").hexdigest(),
        hashlib.md5(b"").hexdigest(),
    ]


def test_raw_hash_distinguishes_whitespace_and_case_but_normalized_hash_does_not():
    texts = ["Hello World", "  hello\n\tworld \n", "Hello World!"]
    raw = ExactDedupHash()(docs(texts)).column("_hash").to_pylist()
    norm = ExactDedupHash(normalize=True)(docs(texts)).column("_hash").to_pylist()
    assert len(set(raw)) == 3
    assert norm[0] == norm[1] != norm[2]


def test_partition_is_in_range_and_equal_for_equal_hashes():
    texts = [f"document {i % 50}" for i in range(500)]
    out = ExactDedupHash(num_partitions=7)(docs(texts))
    partitions = out.column("_partition").to_pylist()
    assert out.schema.field("_partition").type == pa.int32()
    assert set(partitions) == set(range(7))
    by_hash = {}
    for h, p in zip(out.column("_hash").to_pylist(), partitions, strict=True):
        assert by_hash.setdefault(h, p) == p


def test_hash_and_partition_are_stable_across_processes_and_hash_seeds():
    code = (
        "import pyarrow as pa; from stages.dedup.exact import ExactDedupHash; "
        "t = ExactDedupHash(num_partitions=13)(pa.table({'id': ['a', 'b'], "
        "'text': ['alpha', 'Beta gamma']})); "
        "print(t.column('_hash').to_pylist(), t.column('_partition').to_pylist())"
    )
    outputs = set()
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    local = ExactDedupHash(num_partitions=13)(docs(["alpha", "Beta gamma"]))
    assert outputs == {
        f"{local.column('_hash').to_pylist()} {local.column('_partition').to_pylist()}\n"
    }


def test_duplicates_across_batches_keep_the_earliest_row():
    stage = ExactDedupHash(num_partitions=4)
    first = with_order(stage(docs(["a", "b", "c"], start=0)), start=0)
    second = with_order(stage(docs(["b", "d", "a", "a"], start=3)), start=3)
    rows = pa.concat_tables([first, second])
    removed = []
    for partition in range(4):
        part = rows.filter(pc.equal(rows.column("_partition"), partition))
        removed.extend(select_exact_duplicates(part).to_pylist())
    removed.sort(key=lambda r: r["_order"])
    assert [(r["id"], r["duplicate_of"]) for r in removed] == [
        ("d3", "d1"),
        ("d5", "d0"),
        ("d6", "d0"),
    ]


def test_no_duplicates_gives_an_empty_table_with_the_schema():
    rows = with_order(ExactDedupHash()(docs(["a", "b", "c"])))
    out = select_exact_duplicates(rows)
    assert out.num_rows == 0
    assert out.column_names == ["id", "duplicate_of", "_hash", "_order"]
    assert select_exact_duplicates(rows.slice(0, 0)).num_rows == 0


def test_result_is_the_same_when_rows_are_shuffled():
    texts = [f"text {i % 17}" for i in range(200)]
    rows = with_order(ExactDedupHash()(docs(texts)))
    expected = select_exact_duplicates(rows)
    assert expected.num_rows == 200 - 17
    indices = list(range(rows.num_rows))
    random.Random(7).shuffle(indices)
    assert select_exact_duplicates(rows.take(indices)).equals(expected)


def test_survivor_is_smallest_order_not_first_row_seen():
    rows = pa.table(
        {"id": ["late", "early", "middle"], "_hash": ["h", "h", "h"], "_order": [9, 1, 5]}
    )
    out = select_exact_duplicates(rows)
    assert out.column("id").to_pylist() == ["middle", "late"]
    assert out.column("duplicate_of").to_pylist() == ["early", "early"]


def test_missing_order_column_is_reported():
    with pytest.raises(KeyError, match="_order"):
        select_exact_duplicates(pa.table({"id": ["a"], "_hash": ["h"]}))


def test_existing_hash_columns_are_replaced_and_other_columns_kept():
    batch = docs(["x"]).append_column("_hash", pa.array(["old"]))
    out = ExactDedupHash()(batch.append_column("source", pa.array(["s"])))
    assert out.column_names == ["id", "text", "source", "_hash", "_partition"]
    assert out.column("_hash").to_pylist() == [hashlib.md5(b"x").hexdigest()]
