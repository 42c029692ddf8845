"""Named chains of text filters, ready to hand to a pipeline.

`default_english_heuristics()` is NeMo Curator's shipped English heuristic recipe
(`nemo_curator/config/text/heuristic_filter_english_pipeline.yaml`, NeMo Curator 1.4):
the same filters, in the same order, with the same thresholds. A document is dropped by
the first filter that rejects it, so the order matters for the "removed by" counts (not
for which documents survive).
"""

from __future__ import annotations

from typing import Any

from stages.base import Filter

# (class name in stages.text.filters, constructor kwargs), in the yaml's order. The class
# names and kwargs are NeMo Curator's, so the same spec builds either side's filters.
ENGLISH_HEURISTICS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("NonAlphaNumericFilter", {"max_non_alpha_numeric_to_text_ratio": 0.25}),
    ("SymbolsToWordsFilter", {"max_symbol_to_word_ratio": 0.1}),
    ("NumbersFilter", {"max_number_to_text_ratio": 0.15}),
    ("UrlsFilter", {"max_url_to_text_ratio": 0.2}),
    ("WhiteSpaceFilter", {"max_white_space_ratio": 0.25}),
    ("ParenthesesFilter", {"max_parentheses_ratio": 0.1}),
    (
        "BoilerPlateStringFilter",
        {"remove_if_at_top_or_bottom": True, "max_boilerplate_string_ratio": 0.4},
    ),
    ("RepeatedLinesFilter", {"max_repeated_line_fraction": 0.7}),
    ("RepeatedParagraphsFilter", {"max_repeated_paragraphs_ratio": 0.7}),
    ("RepeatedLinesByCharFilter", {"max_repeated_lines_char_ratio": 0.8}),
    ("RepeatedParagraphsByCharFilter", {"max_repeated_paragraphs_char_ratio": 0.8}),
    ("WordCountFilter", {"min_words": 50, "max_words": 100000}),
    ("PunctuationFilter", {"max_num_sentences_without_endmark_ratio": 0.85}),
    ("WordsWithoutAlphabetsFilter", {"min_words_with_alphabets": 0.8}),
    ("CommonEnglishWordsFilter", {"min_num_common_words": 2, "stop_at_false": True}),
    ("MeanWordLengthFilter", {"max_mean_word_length": 10, "min_mean_word_length": 3}),
    ("LongWordFilter", {"max_word_length": 1000}),
    ("EllipsisFilter", {"max_num_lines_ending_with_ellipsis_ratio": 0.3}),
    ("RepeatingTopNGramsFilter", {"n": 2, "max_repeating_ngram_ratio": 0.2}),
    ("RepeatingTopNGramsFilter", {"n": 3, "max_repeating_ngram_ratio": 0.18}),
    ("RepeatingTopNGramsFilter", {"n": 4, "max_repeating_ngram_ratio": 0.16}),
    ("RepeatingDuplicateNGramsFilter", {"n": 5, "max_repeating_duplicate_ngram_ratio": 0.15}),
    ("RepeatingDuplicateNGramsFilter", {"n": 6, "max_repeating_duplicate_ngram_ratio": 0.14}),
    ("RepeatingDuplicateNGramsFilter", {"n": 7, "max_repeating_duplicate_ngram_ratio": 0.13}),
    ("RepeatingDuplicateNGramsFilter", {"n": 8, "max_repeating_duplicate_ngram_ratio": 0.12}),
    ("RepeatingDuplicateNGramsFilter", {"n": 9, "max_repeating_duplicate_ngram_ratio": 0.11}),
    ("RepeatingDuplicateNGramsFilter", {"n": 10, "max_repeating_duplicate_ngram_ratio": 0.10}),
    ("BulletsFilter", {"max_bullet_lines_ratio": 0.9}),
)

RECIPES: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "default": ENGLISH_HEURISTICS,
    "english": ENGLISH_HEURISTICS,
    "none": (),
}


def step_label(class_name: str, kwargs: dict[str, Any]) -> str:
    """A short unique label for one step of a recipe, e.g. `RepeatingTopNGramsFilter(n=3)`.

    The n-gram filters appear several times with different `n`, so `n` is part of the label.
    """
    return f"{class_name}(n={kwargs['n']})" if "n" in kwargs else class_name


def recipe_spec(name: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The (class name, kwargs) steps of the recipe called `name`."""
    key = name.strip().lower()
    if key not in RECIPES:
        raise ValueError(f"unknown filter recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[key]


def build_recipe(spec: tuple[tuple[str, dict[str, Any]], ...]) -> list[Filter]:
    """Instantiate each step of `spec` from `stages.text.filters`, in order."""
    from stages.text import filters

    missing = [cls for cls, _ in spec if not hasattr(filters, cls)]
    if missing:
        raise ImportError(f"stages.text.filters lacks {sorted(set(missing))}")
    return [getattr(filters, cls)(**dict(kwargs)) for cls, kwargs in spec]


def default_english_heuristics() -> list[Filter]:
    """NeMo Curator's English heuristic filter chain, in its order and with its thresholds.

    Source: `nemo_curator/config/text/heuristic_filter_english_pipeline.yaml` (NeMo
    Curator 1.4): 28 filters, from `NonAlphaNumericFilter(0.25)` to `BulletsFilter(0.9)`,
    including `WordCountFilter(min_words=50, max_words=100000)`, the top n-gram filters for
    n = 2..4 and the duplicate n-gram filters for n = 5..10.
    """
    return build_recipe(ENGLISH_HEURISTICS)


def heuristic_recipe(name: str) -> list[Filter]:
    """The filter chain for `--filters NAME`: "default" or "english" (NeMo Curator's
    English heuristics, see `default_english_heuristics`) or "none" (no filters)."""
    return build_recipe(recipe_spec(name))
