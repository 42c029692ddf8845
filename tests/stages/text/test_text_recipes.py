"""The default English recipe is NeMo Curator's: same filters, same order, same thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.base import Filter
from stages.text import recipes
from stages.text.recipes import (
    ENGLISH_HEURISTICS,
    default_english_heuristics,
    heuristic_recipe,
    recipe_spec,
    step_label,
)

NEMO_CONFIGS = "lib/python*/site-packages/nemo_curator/config/text"
NEMO_YAML = next(
    (Path(__file__).resolve().parents[3] / ".bench-venvs" / "nemo").glob(
        f"{NEMO_CONFIGS}/heuristic_filter_english_pipeline.yaml"
    ),
    None,
)


def test_english_recipe_has_nemo_order_from_non_alpha_numeric_to_bullets():
    names = [cls for cls, _ in ENGLISH_HEURISTICS]
    assert len(names) == 28
    assert names[0] == "NonAlphaNumericFilter"
    assert names[-1] == "BulletsFilter"
    assert names.index("WordCountFilter") == 11
    assert names[18:21] == ["RepeatingTopNGramsFilter"] * 3
    assert names[21:27] == ["RepeatingDuplicateNGramsFilter"] * 6


def test_english_recipe_uses_nemo_thresholds():
    spec = dict((step_label(cls, kw), kw) for cls, kw in ENGLISH_HEURISTICS)
    assert spec["NonAlphaNumericFilter"] == {"max_non_alpha_numeric_to_text_ratio": 0.25}
    assert spec["WordCountFilter"] == {"min_words": 50, "max_words": 100000}
    assert spec["BoilerPlateStringFilter"] == {
        "remove_if_at_top_or_bottom": True,
        "max_boilerplate_string_ratio": 0.4,
    }
    assert spec["MeanWordLengthFilter"] == {"max_mean_word_length": 10, "min_mean_word_length": 3}
    top = [spec[f"RepeatingTopNGramsFilter(n={n})"]["max_repeating_ngram_ratio"] for n in (2, 3, 4)]
    assert top == [0.2, 0.18, 0.16]
    dup = [
        spec[f"RepeatingDuplicateNGramsFilter(n={n})"]["max_repeating_duplicate_ngram_ratio"]
        for n in range(5, 11)
    ]
    assert dup == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]


def test_step_labels_are_unique():
    labels = [step_label(cls, kw) for cls, kw in ENGLISH_HEURISTICS]
    assert len(set(labels)) == len(labels)


@pytest.mark.skipif(NEMO_YAML is None, reason="NeMo Curator peer venv not installed")
def test_english_recipe_matches_the_nemo_yaml_step_for_step():
    import yaml

    stages = yaml.safe_load(NEMO_YAML.read_text())["stages"]
    theirs = []
    for stage in stages:
        obj = stage.get("filter_obj")
        if obj:
            kwargs = {k: v for k, v in obj.items() if k != "_target_"}
            theirs.append((obj["_target_"].rsplit(".", 1)[1], kwargs))
    assert [(cls, dict(kw)) for cls, kw in ENGLISH_HEURISTICS] == theirs


def test_default_english_heuristics_builds_filters_in_recipe_order():
    chain = default_english_heuristics()
    assert [type(f).__name__ for f in chain] == [cls for cls, _ in ENGLISH_HEURISTICS]
    assert all(isinstance(f, Filter) for f in chain)


def test_default_english_heuristics_passes_the_thresholds_to_the_filters():
    from stages.text import filters

    chain = default_english_heuristics()
    first = chain[0]
    assert type(first) is filters.NonAlphaNumericFilter
    # Rebuilding with the same kwargs gives the same configuration; a different threshold
    # gives a different one: so the recipe's kwargs reach the filter.
    same = filters.NonAlphaNumericFilter(max_non_alpha_numeric_to_text_ratio=0.25)
    other = filters.NonAlphaNumericFilter(max_non_alpha_numeric_to_text_ratio=0.5)
    assert vars(first) == vars(same)
    assert vars(first) != vars(other)
    word_count = chain[11]
    assert vars(word_count) == vars(filters.WordCountFilter(min_words=50, max_words=100000))


def test_heuristic_recipe_accepts_default_english_and_none():
    assert [type(f) for f in heuristic_recipe("default")] == [
        type(f) for f in heuristic_recipe("english")
    ]
    assert heuristic_recipe("none") == []
    assert recipe_spec("Default") is recipes.ENGLISH_HEURISTICS


def test_heuristic_recipe_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown filter recipe 'gopher'"):
        heuristic_recipe("gopher")
