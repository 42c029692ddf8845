"""Re-thresholding a scored dataset equals filtering with the new thresholds from the
start, and says how many rows each change moved."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stages.base import FilterChain
from stages.text.recipes import ENGLISH_HEURISTICS, build_recipe
from stages.text.thresholds import ApplyThresholds, parse_changes
from tests.documents import english_documents


def _docs() -> pa.Table:
    texts = english_documents(60, seed=3)
    # good prose cut short, around the word-count cutoff (50), and repetitive documents
    lengths = (12, 25, 35, 48, 52, 70)
    texts += [" ".join(t.split()[:k]) + "." for t, k in zip(texts[:6], lengths, strict=True)]
    texts += ["the same line again\n" * 30, "", "Numbers 1 2 3 4 5 6 7 8 9 10 11 12 13 " * 5]
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})


def _scored(recipe) -> pa.Table:
    filters = build_recipe(recipe)
    for f in filters:
        f.score_only = True
    return FilterChain(filters).process(_docs())


def _filtered(recipe) -> list[str]:
    return FilterChain(build_recipe(recipe)).process(_docs()).column("id").to_pylist()


def _with(recipe, label, **changes):
    return tuple(
        (cls, {**kw, **changes})
        if (cls if "n" not in kw else f"{cls}(n={kw['n']})") == label
        else (cls, kw)
        for cls, kw in recipe
    )


def test_score_only_keeps_every_row_with_every_score():
    scored = _scored(ENGLISH_HEURISTICS)
    assert scored.num_rows == _docs().num_rows
    assert sum(c.startswith("score_") for c in scored.column_names) == len(ENGLISH_HEURISTICS)


@pytest.mark.parametrize(
    "setting, label, change",
    [
        ("WordCountFilter.min_words=80", "WordCountFilter", {"min_words": 80}),
        ("WordCountFilter.min_words=20", "WordCountFilter", {"min_words": 20}),
        (
            "RepeatingTopNGramsFilter(n=2).max_repeating_ngram_ratio=0.04",
            "RepeatingTopNGramsFilter(n=2)",
            {"max_repeating_ngram_ratio": 0.04},
        ),
    ],
)
def test_new_thresholds_on_scores_equal_filtering_with_them(setting, label, change):
    stage = ApplyThresholds(ENGLISH_HEURISTICS, parse_changes([setting]))
    kept = stage.process(_scored(ENGLISH_HEURISTICS)).column("id").to_pylist()
    assert kept == _filtered(_with(ENGLISH_HEURISTICS, label, **change))
    assert kept != _filtered(ENGLISH_HEURISTICS)  # the change mattered on these documents


def test_each_change_counts_the_rows_it_moves():
    stage = ApplyThresholds(ENGLISH_HEURISTICS, parse_changes(["WordCountFilter.min_words=20"]))
    stage.process(_scored(ENGLISH_HEURISTICS))
    counts = stage.take_counts()
    docs = _docs().column("text").to_pylist()
    between = sum(20 <= len(t.split()) < 50 for t in docs)
    assert between >= 2
    assert counts == {
        "WordCountFilter.min_words=20: newly removed": 0,
        "WordCountFilter.min_words=20: newly kept": between,
    }
    assert stage.take_counts() == {}


def test_unchanged_settings_reproduce_the_run():
    stage = ApplyThresholds(ENGLISH_HEURISTICS)
    kept = stage.process(_scored(ENGLISH_HEURISTICS)).column("id").to_pylist()
    assert kept == _filtered(ENGLISH_HEURISTICS)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("WordCountFilter.min_word=80", "has no keyword 'min_word'"),
        ("NoSuchFilter.x=1", "no such filter in the recipe"),
        ("RepeatingTopNGramsFilter.n=5", "the recipe has it 3 times"),
        ("WordCountFilter=80", "expected FILTER.KEYWORD=VALUE"),
    ],
)
def test_bad_settings_name_what_is_wrong(setting, message):
    with pytest.raises(ValueError, match=message):
        ApplyThresholds(ENGLISH_HEURISTICS, parse_changes([setting]))


def test_an_input_without_scores_is_a_clear_error():
    with pytest.raises(KeyError, match="--score-only"):
        ApplyThresholds(ENGLISH_HEURISTICS).process(_docs())
