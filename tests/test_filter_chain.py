"""A FilterChain decides exactly as the same filters applied one after the other."""

from __future__ import annotations

import pyarrow as pa
import pytest
from documents import english_documents

from stages.base import FilterChain
from stages.text.recipes import default_english_heuristics


def _batch() -> pa.Table:
    texts = english_documents(40, seed=3)
    texts += ["too short", "", "#### $$$ ### " * 30, "buy now " * 40, "line\n" * 80]
    texts += ["word " * 30 + "http://example.com/" * 20, None]
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def _sequential(batch: pa.Table) -> tuple[pa.Table, list[tuple[str, int, int]]]:
    counts = []
    for f in default_english_heuristics():
        f.setup()
        before = batch.num_rows
        batch = f.process(batch)
        counts.append((f.stage_name, before, batch.num_rows))
    return batch, counts


@pytest.mark.parametrize("compact_below", [0.0, 0.6, 1.0])
def test_chain_keeps_the_same_rows_and_counts_as_sequential_filters(compact_below):
    batch = _batch()
    expected, expected_counts = _sequential(batch)
    chain = FilterChain(default_english_heuristics(), compact_below=compact_below)
    chain.setup()
    kept, records = chain.run(batch)
    assert kept.column("id").to_pylist() == expected.column("id").to_pylist()
    assert [(r["stage"], r["rows_in"], r["rows_out"]) for r in records] == expected_counts
    assert kept.num_rows < batch.num_rows  # the junk went


def test_chain_samples_what_each_filter_removed():
    chain = FilterChain(default_english_heuristics(), sample_size=2)
    chain.setup()
    _, records = chain.run(_batch())
    removed = {r["stage"]: r for r in records if r["rows_in"] > r["rows_out"]}
    assert removed
    for record in removed.values():
        assert 1 <= len(record["removed_sample"]) <= 2
        assert all(s["id"].startswith("d") for s in record["removed_sample"])


def test_chain_keeps_score_columns_aligned_with_kept_rows():
    filters = default_english_heuristics()
    for f in filters:
        f.keep_score = True
    chain = FilterChain(filters)
    kept, _ = chain.run(_batch())
    word_count = [c for c in kept.column_names if c.startswith("score_WordCount")]
    assert word_count, kept.column_names
    texts = kept.column("text").to_pylist()
    assert kept.column(word_count[0]).to_pylist() == [len(t.split()) for t in texts]
