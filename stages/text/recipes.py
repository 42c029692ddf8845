"""Named chains of text filters, ready to hand to a pipeline.

`default_english_heuristics()` is NeMo Curator's shipped English heuristic recipe
(`nemo_curator/config/text/heuristic_filter_english_pipeline.yaml`, NeMo Curator 1.4):
the same filters, in the same order, with the same thresholds. A document is dropped by
the first filter that rejects it, so the order matters for the "removed by" counts (not
for which documents survive).

Recipes also ship as YAML files in `stages/text/recipes/`, for users to copy and edit:

- `english.yaml`: the English recipe above (`ENGLISH_HEURISTICS`, step for step);
- `non-english.yaml`: NeMo Curator's non-English heuristic recipe
  (`heuristic_filter_non_english_pipeline.yaml`): the filters that do not assume English
  words (no common-English-words or alphabetic-words rule), for languages that separate
  words with spaces;
- `code.yaml`: NeMo Curator's code recipe (`code_filter_pipeline.yaml`: Python comment
  ratio, lines of code, tokenizer fertility; set `path_to_tokenizer` to a local
  tokenizer before use);
- `fineweb.yaml`: the filters of datatrove's FineWeb pipeline (`examples/fineweb.py`):
  Gopher repetition, Gopher quality, C4 quality without the end-punctuation rule,
  FineWeb quality.

A recipe file is a YAML list of steps, each `{filter: ClassName, kwargs: {...}}` (kwargs
may be left out), ClassName a filter of `stages.text.filters`. `recipe_spec` takes a
recipe name or the path of such a file.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import yaml

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

RECIPE_DIR = Path(__file__).with_name("recipes")
# Recipes read from the YAML files shipped in RECIPE_DIR.
RECIPE_FILES: dict[str, Path] = {
    "non-english": RECIPE_DIR / "non-english.yaml",
    "code": RECIPE_DIR / "code.yaml",
    "fineweb": RECIPE_DIR / "fineweb.yaml",
}


def step_label(class_name: str, kwargs: dict[str, Any]) -> str:
    """A short unique label for one step of a recipe, e.g. `RepeatingTopNGramsFilter(n=3)`.

    The n-gram filters appear several times with different `n`, so `n` is part of the label.
    """
    return f"{class_name}(n={kwargs['n']})" if "n" in kwargs else class_name


def recipe_names() -> list[str]:
    """Every recipe `recipe_spec` knows by name."""
    return sorted([*RECIPES, *RECIPE_FILES])


def recipe_spec(name: str | os.PathLike) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The (class name, kwargs) steps of the recipe called `name` ("default", "english",
    "none", "non-english", "code", "fineweb"), or of the YAML recipe file at path `name`."""
    text = os.fspath(name)
    key = text.strip().lower().replace("_", "-")
    if key in RECIPES:
        return RECIPES[key]
    if key in RECIPE_FILES:
        return load_recipe(RECIPE_FILES[key])
    if text.endswith((".yaml", ".yml")) or os.path.sep in text or os.path.isfile(text):
        return load_recipe(text)
    raise ValueError(
        f"unknown filter recipe {text!r}; choose one of {recipe_names()} or give the path "
        "of a YAML recipe file"
    )


def filter_classes() -> dict[str, type[Filter]]:
    """The filters a recipe can name: every `Filter` class of `stages.text.filters`."""
    from stages.text import filters

    return {
        name: obj
        for name, obj in vars(filters).items()
        if inspect.isclass(obj) and issubclass(obj, Filter) and obj is not Filter
    }


def _keywords(cls: type) -> tuple[set[str], set[str]]:
    """(every keyword `cls` takes, the ones without a default)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return {p.name for p in named}, {p.name for p in named if p.default is p.empty}


def load_recipe(path: str | os.PathLike) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The (class name, kwargs) steps of the YAML recipe file at `path`, checked: every
    step names a filter of `stages.text.filters` and only keywords it takes (and all it
    requires). An error names the file, the step and what is known."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"filter recipe file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    if document is None:
        document = []
    if not isinstance(document, list):
        raise ValueError(
            f"{path}: a recipe is a list of steps {{filter: ClassName, kwargs: {{...}}}}, "
            f"got a {type(document).__name__}"
        )
    classes = filter_classes()
    steps = []
    for number, entry in enumerate(document, start=1):
        where = f"{path}: step {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("filter"), str):
            raise ValueError(
                f"{where}: expected {{filter: ClassName, kwargs: {{...}}}}, got {entry!r}"
            )
        extra = sorted(set(entry) - {"filter", "kwargs"})
        if extra:
            raise ValueError(
                f"{where} ({entry['filter']}): unknown keys {extra}; a step has filter and kwargs"
            )
        name = entry["filter"]
        if name not in classes:
            raise ValueError(f"{where}: unknown filter {name!r}; known filters: {sorted(classes)}")
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"{where} ({name}): kwargs must be a mapping, got {kwargs!r}")
        takes, required = _keywords(classes[name])
        unknown = sorted(set(kwargs) - takes)
        if unknown:
            raise ValueError(
                f"{where} ({name}): unknown keyword(s) {unknown}; {name} takes {sorted(takes)}"
            )
        missing = sorted(required - set(kwargs))
        if missing:
            raise ValueError(f"{where} ({name}): missing required keyword(s) {missing}")
        steps.append((name, dict(kwargs)))
    return tuple(steps)


def dump_recipe(spec: tuple[tuple[str, dict[str, Any]], ...]) -> str:
    """`spec` as the text of a YAML recipe file (what `load_recipe` reads back)."""
    steps = [{"filter": cls, "kwargs": dict(kwargs)} for cls, kwargs in spec]
    return yaml.safe_dump(steps, sort_keys=False)


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


def heuristic_recipe(name: str | os.PathLike) -> list[Filter]:
    """The filter chain for `--filters NAME`: "default" or "english" (NeMo Curator's
    English heuristics, see `default_english_heuristics`), "none" (no filters),
    "non-english", "code", "fineweb" (see the module docstring) or the path of a YAML
    recipe file."""
    return build_recipe(recipe_spec(name))
