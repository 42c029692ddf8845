"""Recipes shipped as YAML (english, non-english, code, fineweb) and recipes users write:
what they hold, that they build, and the errors a bad file gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages.base import Filter
from stages.text import filters as F
from stages.text.recipes import (
    ENGLISH_HEURISTICS,
    RECIPE_DIR,
    build_recipe,
    dump_recipe,
    heuristic_recipe,
    load_recipe,
    recipe_names,
    recipe_spec,
)

NEMO_CONFIGS = next(
    (Path(__file__).resolve().parents[3] / ".bench-venvs" / "nemo").glob(
        "lib/python*/site-packages/nemo_curator/config/text"
    ),
    None,
)
needs_nemo_configs = pytest.mark.skipif(
    NEMO_CONFIGS is None, reason="NeMo Curator peer venv not installed"
)


def nemo_steps(file_name: str) -> list[tuple[str, dict]]:
    stages = yaml.safe_load((NEMO_CONFIGS / file_name).read_text())["stages"]
    steps = []
    for stage in stages:
        obj = stage.get("filter_obj")
        if obj:
            kwargs = {k: v for k, v in obj.items() if k != "_target_"}
            steps.append((obj["_target_"].rsplit(".", 1)[1], kwargs))
    return steps


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the shipped recipes -------------------------------------------------------------


def test_english_yaml_is_the_python_english_recipe_step_for_step():
    assert load_recipe(RECIPE_DIR / "english.yaml") == ENGLISH_HEURISTICS


def test_every_shipped_yaml_has_a_name_and_parses():
    shipped = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
    assert shipped == ["code", "english", "fineweb", "non-english"]
    assert set(shipped) <= set(recipe_names())
    for name in shipped:
        assert recipe_spec(name), name


def test_non_english_recipe_leaves_out_the_english_word_rules():
    names = [cls for cls, _ in recipe_spec("non-english")]
    assert len(names) == 25
    assert (names[0], names[-1]) == ("SymbolsToWordsFilter", "BulletsFilter")
    english_only = {"NonAlphaNumericFilter", "CommonEnglishWordsFilter"}
    english_only.add("WordsWithoutAlphabetsFilter")
    assert english_only.isdisjoint(names)
    rest = [step for step in ENGLISH_HEURISTICS if step[0] not in english_only]
    assert list(recipe_spec("non-english")) == rest
    assert all(isinstance(f, Filter) for f in heuristic_recipe("non_english"))


@needs_nemo_configs
def test_non_english_and_code_recipes_match_nemo_curators_yaml():
    assert list(recipe_spec("non-english")) == nemo_steps(
        "heuristic_filter_non_english_pipeline.yaml"
    )
    theirs = nemo_steps("code_filter_pipeline.yaml")
    ours = list(recipe_spec("code"))
    # NeMo leaves the tokenizer path to a ${path_to_tokenizer} variable; ours is null.
    assert theirs[2][1].pop("path_to_tokenizer") == "${path_to_tokenizer}"
    assert ours[2][1].pop("path_to_tokenizer") is None
    assert ours == theirs


def test_code_recipe_needs_a_tokenizer_path_and_builds_with_one(tmp_path):
    with pytest.raises(ValueError, match="path_to_tokenizer is required"):
        build_recipe(recipe_spec("code"))
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "x": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    text = (RECIPE_DIR / "code.yaml").read_text()
    text = text.replace("path_to_tokenizer: null", f"path_to_tokenizer: {tmp_path}")
    chain = heuristic_recipe(write(tmp_path, text, "my-code.yaml"))
    assert [type(f).__name__ for f in chain] == [
        "PythonCommentToCodeFilter",
        "NumberOfLinesOfCodeFilter",
        "TokenizerFertilityFilter",
    ]
    assert chain[1].min_lines == 5 and chain[2].min_char_to_token_ratio == 2


def test_fineweb_recipe_is_datatroves_pipeline_with_its_defaults():
    chain = heuristic_recipe("fineweb")
    assert [type(f) for f in chain] == [
        F.GopherRepetitionFilter,
        F.GopherQualityFilter,
        F.C4QualityFilter,
        F.FineWebQualityFilter,
    ]
    expected = [
        F.GopherRepetitionFilter(),
        F.GopherQualityFilter(),
        F.C4QualityFilter(filter_no_terminal_punct=False),
        F.FineWebQualityFilter(),
    ]
    assert [vars(f) for f in chain] == [vars(f) for f in expected]


# --- names and user files ------------------------------------------------------------


def test_old_names_still_work():
    assert recipe_spec("default") is ENGLISH_HEURISTICS
    assert recipe_spec(" English ") is ENGLISH_HEURISTICS
    assert recipe_spec("none") == ()


def test_a_users_yaml_file_is_a_recipe_by_path(tmp_path):
    path = write(
        tmp_path,
        "- filter: WordCountFilter\n  kwargs: {min_words: 3}\n"
        "- filter: GopherQualityFilter\n"
        "- filter: SubstringFilter\n  kwargs: {substring: '#', position: any}\n",
    )
    spec = recipe_spec(str(path))
    assert spec == (
        ("WordCountFilter", {"min_words": 3}),
        ("GopherQualityFilter", {}),
        ("SubstringFilter", {"substring": "#", "position": "any"}),
    )
    assert recipe_spec(path) == spec
    assert [f.stage_name for f in build_recipe(spec)] == [
        "WordCountFilter",
        "GopherQualityFilter",
        "SubstringFilter",
    ]


def test_a_dumped_recipe_reads_back_the_same(tmp_path):
    path = write(tmp_path, dump_recipe(ENGLISH_HEURISTICS))
    assert load_recipe(path) == ENGLISH_HEURISTICS
    assert load_recipe(write(tmp_path, "", "empty.yaml")) == ()


def test_unknown_names_list_the_known_recipes():
    with pytest.raises(ValueError, match="unknown filter recipe 'gopher'.*fineweb"):
        recipe_spec("gopher")


# --- errors in a user's file ---------------------------------------------------------


def test_an_unknown_filter_names_the_file_the_step_and_the_known_filters(tmp_path):
    path = write(tmp_path, "- filter: WordCountFilter\n- filter: WordCuontFilter\n")
    with pytest.raises(ValueError) as error:
        recipe_spec(str(path))
    message = str(error.value)
    assert str(path) in message and "step 2" in message and "'WordCuontFilter'" in message
    assert "WordCountFilter" in message.split("known filters:")[1]


def test_a_stage_that_is_not_a_filter_is_not_a_recipe_step(tmp_path):
    path = write(tmp_path, "- filter: C4LineRemover\n")
    with pytest.raises(ValueError, match="step 1: unknown filter 'C4LineRemover'"):
        load_recipe(path)


def test_an_unknown_keyword_names_the_step_and_the_keywords_the_filter_takes(tmp_path):
    path = write(tmp_path, "- filter: WordCountFilter\n  kwargs: {min_word: 3}\n")
    with pytest.raises(ValueError) as error:
        load_recipe(path)
    message = str(error.value)
    assert f"{path}: step 1 (WordCountFilter): unknown keyword(s) ['min_word']" in message
    assert "'min_words'" in message and "'max_words'" in message


def test_a_missing_required_keyword_is_named(tmp_path):
    path = write(tmp_path, "- filter: SubstringFilter\n  kwargs: {substring: x}\n")
    with pytest.raises(ValueError, match=r"step 1 \(SubstringFilter\): missing .*'position'"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filter: WordCountFilter\n", "a recipe is a list of steps"),
        ("- WordCountFilter\n", "step 1: expected {filter: ClassName"),
        ("- filter: WordCountFilter\n  kwargs: [1, 2]\n", "kwargs must be a mapping"),
        ("- filter: WordCountFilter\n  args: {}\n", r"unknown keys \['args'\]"),
        ("- filter: [unclosed\n", "not valid YAML"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as error:
        load_recipe(path)
    assert str(path) in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        recipe_spec(str(tmp_path / "nope.yaml"))
