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


def test_ngram_filters_score_alike_in_any_order_on_a_shared_batch():
    import random

    from stages.text.filters import RepeatingDuplicateNGramsFilter, RepeatingTopNGramsFilter

    rng = random.Random(5)
    vocabulary = ["a", "b", "c", "the", "cat", "sat"]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 60))) for _ in range(200)]
    batch = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})

    def scores(order):
        out = {}
        for n in order:
            top = RepeatingTopNGramsFilter(n=n) if n <= 4 else None
            dup = RepeatingDuplicateNGramsFilter(n=n)
            if top:
                out[("top", n)] = top.mask(batch)[0].tolist()
            out[("dup", n)] = dup.mask(batch)[0].tolist()
        return out

    # Each order runs on a fresh table (no shared cache) and on the same one (shared).
    reference = {}
    for n in range(1, 11):
        fresh = pa.table({"id": batch["id"], "text": pa.array(texts)})
        dup = RepeatingDuplicateNGramsFilter(n=n).mask(fresh)[0].tolist()
        reference[("dup", n)] = dup
        if n <= 4:
            fresh = pa.table({"id": batch["id"], "text": pa.array(texts)})
            reference[("top", n)] = RepeatingTopNGramsFilter(n=n).mask(fresh)[0].tolist()
    for order in ([*range(1, 11)], [*range(10, 0, -1)], [5, 2, 9, 1, 4, 10, 3, 7, 6, 8]):
        assert scores(order) == reference
