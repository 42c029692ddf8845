"""`TaskDecontamination`: documents sharing word n-grams with test sets are removed
(datatrove's rule) or cut around the match (NeMo Curator's rule)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.runtime.engine import StageMetrics, run_stage
from stages.text.decontaminate import TaskDecontamination

QUESTION = "Which gas do green plants absorb from the air to make their food in sunlight"
QUESTION_WORDS = QUESTION.split()  # 15 words
OTHER = "Name the longest river that flows through the northern part of the ancient continent"


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def docs(*texts: str | None, orders: list[int] | None = None) -> pa.Table:
    columns = {"id": [f"d{i}" for i in range(len(texts))], "text": list(texts)}
    if orders is not None:
        columns["_order"] = orders
    return pa.table(columns)


@pytest.fixture
def science(tmp_path) -> Path:
    return jsonl(tmp_path / "science.jsonl", [{"text": QUESTION}, {"text": None}, {"id": 3}])


def texts(table: pa.Table) -> list:
    return table.column("text").to_pylist()


# ------------------------------------------------------------------ matching


def test_a_planted_13_gram_with_case_and_punctuation_changes_removes_the_document(science):
    # Punctuation is deleted, not a separator (NeMo's normalisation): "green-plants" would be
    # one word, "greenplants".
    planted = "Quiz time! WHICH gas, do green... plants absorb from the “air” to make their: food"
    stage = TaskDecontamination([science])
    out, counts = stage.split(docs("An unrelated page about cooking.", planted, "Plain text"))
    assert texts(out) == ["An unrelated page about cooking.", "Plain text"]
    assert counts.tolist() == [1, 0, 1]


def test_twelve_shared_words_are_not_enough(science):
    twelve = " ".join(QUESTION_WORDS[:12]) + " then something else entirely"
    shifted = " ".join(QUESTION_WORDS[3:15])  # the last twelve words
    stage = TaskDecontamination([science])
    out, counts = stage.split(docs(twelve, shifted))
    assert counts.tolist() == [1, 1]
    assert stage.take_counts() == {}


def test_an_n_gram_does_not_run_across_two_documents(science):
    first, second = " ".join(QUESTION_WORDS[:7]), " ".join(QUESTION_WORDS[7:14])
    out, _ = TaskDecontamination([science]).split(docs(first, second))
    assert out.num_rows == 2


def test_unicode_spaces_and_line_breaks_separate_words(science):
    spaced = "\u00a0".join(QUESTION_WORDS[:5]) + "\n" + "\u3000".join(QUESTION_WORDS[5:13])
    out, _ = TaskDecontamination([science]).split(docs(spaced))
    assert out.num_rows == 0


def test_null_and_empty_texts_are_kept(science):
    out, counts = TaskDecontamination([science]).split(docs(None, "", "   "))
    assert texts(out) == [None, "", "   "]
    assert counts.tolist() == [1, 1, 1]


def test_a_column_of_nulls_only_is_kept(science):
    batch = pa.table({"id": ["a"], "text": pa.array([None], pa.null())})
    out, _ = TaskDecontamination([science]).split(batch)
    assert out.num_rows == 1


def test_a_short_test_text_counts_as_one_n_gram_and_a_very_short_one_not_at_all(tmp_path):
    short = "Who wrote the famous play about a Danish prince"  # 9 words
    tiny = "Capital of France"  # 3 words: under min_ngram_size
    path = jsonl(tmp_path / "lit.jsonl", [{"text": short}, {"text": tiny}])
    stage = TaskDecontamination([path])
    out, counts = stage.split(
        docs(
            "Quiz: who wrote the famous play about a Danish prince? Shakespeare.",
            "who wrote the famous play about a Danish",  # eight of the nine words
            "The capital of France is Paris.",
        )
    )
    assert counts.tolist() == [0, 1, 1]


def test_min_ngram_size_sets_the_shortest_test_text_used(tmp_path):
    path = jsonl(tmp_path / "geo.jsonl", [{"text": "Capital of France"}])
    out, _ = TaskDecontamination([path], min_ngram_size=3).split(docs("the capital of france"))
    assert out.num_rows == 0


def test_several_fields_and_lists_of_strings_are_read(tmp_path):
    row = {"question": OTHER, "choices": ["a", QUESTION, None], "answer": None}
    path = jsonl(tmp_path / "mc.jsonl", [row])
    stage = TaskDecontamination([path], fields=["question", "choices", "answer"])
    out, _ = stage.split(docs(OTHER, QUESTION, "neither of them"))
    assert texts(out) == ["neither of them"]


def test_a_parquet_test_set_is_read(tmp_path):
    path = tmp_path / "squad.parquet"
    pq.write_table(pa.table({"question": [OTHER, None]}), path)
    stage = TaskDecontamination({"squad": path}, fields=["question"])
    out, _ = stage.split(docs(OTHER.upper() + "!", "clean"))
    assert texts(out) == ["clean"]
    assert stage.take_counts() == {"removed:squad": 1}


def test_a_gzipped_jsonl_test_set_is_read(tmp_path):
    path = tmp_path / "bio.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"text": QUESTION}) + "\n")
    stage = TaskDecontamination([path])
    stage.split(docs(QUESTION))
    assert stage.take_counts() == {"removed:bio": 1}


# ------------------------------------------------------------------ counts and reports


def test_counts_per_test_set_then_reset(tmp_path, science):
    history = jsonl(tmp_path / "history.jsonl", [{"text": OTHER}])
    stage = TaskDecontamination([science, history])
    stage.split(docs(QUESTION, OTHER, OTHER + " again", "clean"))
    assert stage.take_counts() == {"removed:science": 1, "removed:history": 2}
    assert stage.take_counts() == {}
    stage.split(docs(QUESTION))
    assert stage.take_counts() == {"removed:science": 1}


def test_a_document_is_counted_for_the_test_set_of_its_first_match(tmp_path, science):
    history = jsonl(tmp_path / "history.jsonl", [{"text": OTHER}])
    stage = TaskDecontamination({"h": history, "s": science})
    stage.split(docs(f"{QUESTION}. {OTHER}", f"{OTHER}. {QUESTION}"))
    assert stage.take_counts() == {"removed:s": 1, "removed:h": 1}


def test_the_removed_sample_names_the_test_set_and_the_n_gram(science):
    stage = TaskDecontamination([science])
    out, [record] = run_stage(stage, docs("kept", "Intro. " + QUESTION.upper()))
    assert texts(out) == ["kept"]
    [sample] = record["removed_sample"]
    assert sample["id"] == "d1" and sample["test_set"] == "science"
    assert sample["ngram"] == " ".join(QUESTION_WORDS[:13]).lower()
    assert record["counts"] == {"removed:science": 1}
    metrics = StageMetrics(record["stage"])
    metrics.add(record)
    assert metrics.removed == 1


def test_batch_boundaries_do_not_change_what_is_removed(science):
    rows = [QUESTION if i % 3 == 0 else f"document {i} is clean" for i in range(12)]
    stage = TaskDecontamination([science])
    whole, _ = stage.split(docs(*rows))
    table = docs(*rows)
    parts = [stage.split(table.slice(i, 5))[0] for i in range(0, 12, 5)]
    assert pa.concat_tables(parts).equals(whole)


# ------------------------------------------------------------------ cut mode

ALPHA = "Alpha sentence one is here. Alpha sentence two is here."
BETA = "Beta sentence one is here. Beta sentence two is here."


def cut(science, **kwargs) -> TaskDecontamination:
    options = {"min_document_length": 1, "remove_char_each_side": 0} | kwargs
    return TaskDecontamination([science], mode="cut", **options)


def test_cut_mode_removes_the_sentence_holding_the_match(science):
    text = f"{ALPHA} Now: {QUESTION} it says. {BETA}"
    out, counts = cut(science).split(docs(text, "clean"))
    assert texts(out) == [ALPHA, f" {BETA}", "clean"]
    assert out.column("id").to_pylist() == ["d0-0", "d0-1", "d1"]
    assert counts.tolist() == [2, 1]


def test_cut_mode_removes_remove_char_each_side_more_up_to_sentence_ends(science):
    text = f"{ALPHA} Now: {QUESTION} it says. {BETA}"
    # " in sunlight it says" is 20 characters: 20 more after the match end at its full
    # stop, 21 reach into Beta's first sentence; before the match, 20 or 21 reach into
    # Alpha's second sentence.
    out, _ = cut(science, remove_char_each_side=20).split(docs(text))
    assert texts(out) == ["Alpha sentence one is here.", f" {BETA}"]
    out, _ = cut(science, remove_char_each_side=21).split(docs(text))
    assert texts(out) == ["Alpha sentence one is here.", " Beta sentence two is here."]


def test_cut_mode_drops_pieces_shorter_than_min_document_length(science):
    text = f"Short. {QUESTION}. {BETA}"
    stage = cut(science, min_document_length=len(BETA) + 1)  # " " + BETA is long enough
    out, _ = stage.split(docs(text))
    assert texts(out) == [f" {BETA}"]
    out, _ = cut(science, min_document_length=len(BETA) + 2).split(docs(text))
    assert out.num_rows == 0
    assert texts(cut(science, min_document_length=len(BETA) + 2).split(docs("Short."))[0]) == [
        "Short."
    ]  # a document without a match is kept whatever its length


def test_cut_mode_drops_a_document_split_into_more_than_max_splits_pieces(science):
    text = f"{ALPHA} {QUESTION}. {BETA} {QUESTION}. {ALPHA} {QUESTION}. {BETA}"
    out, counts = cut(science, max_splits=4).split(docs(text))
    assert counts.tolist() == [4]
    assert texts(out) == [ALPHA, f" {BETA}", f" {ALPHA}", f" {BETA}"]
    stage = cut(science, max_splits=3)
    out, counts = stage.split(docs(text))
    assert counts.tolist() == [0] and out.num_rows == 0
    assert stage.take_counts() == {"removed:science": 1}
    [sample] = stage.describe_removed(docs(text), 3)
    assert sample["reason"] == "cut into 4 pieces, more than max_splits=3"


def test_cut_mode_ignores_an_n_gram_found_in_more_than_max_matches_documents(science):
    rows = [f"{ALPHA} {QUESTION}. {BETA}"] * 3
    out, counts = cut(science, max_matches=2).split(docs(*rows))
    assert counts.tolist() == [1, 1, 1] and texts(out) == rows
    out, counts = cut(science, max_matches=3).split(docs(*rows))
    assert counts.tolist() == [2, 2, 2]


def test_cut_pieces_get_unique_ids_and_orders(science):
    text = f"{ALPHA} {QUESTION}. {BETA} {QUESTION}. {ALPHA}"
    orders = [(3 << 32) | 70000, (3 << 32) | 70001]  # a line number past 16 bits
    stage = cut(science)
    out, [record] = run_stage(stage, docs(text, "clean", orders=orders))
    order = out.column("_order").to_pylist()
    assert out.column("id").to_pylist() == ["d0-0", "d0-1", "d0-2", "d1"]
    assert order[0] == orders[0] and order[3] == orders[1]
    assert len(set(order)) == 4
    assert record["rows_added"] == 2
    assert record["counts"] == {"cut:science": 1}


def test_cut_mode_counts_cut_and_removed_documents(science):
    stage = cut(science, min_document_length=30)
    stage.split(docs(f"{ALPHA} {QUESTION}. {BETA}", f"Hi. {QUESTION}. Bye.", "clean"))
    assert stage.take_counts() == {"cut:science": 1, "removed:science": 1}
    [sample] = stage.describe_removed(docs(f"Hi. {QUESTION}. Bye."), 3)
    assert sample["reason"] == "no piece of 30 characters or more left"
    assert sample["test_set"] == "science"


# ------------------------------------------------------------------ bad input


def test_a_missing_test_set_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="'mmlu'.*nowhere.jsonl"):
        TaskDecontamination({"mmlu": tmp_path / "nowhere.jsonl"})


def test_a_field_no_row_has_is_an_error_naming_file_and_field(science, tmp_path):
    stage = TaskDecontamination([science], fields=["question"])
    with pytest.raises(KeyError, match="science.jsonl.*'question'"):
        stage.setup()
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"text": [QUESTION]}), path)
    with pytest.raises(KeyError, match="q.parquet.*'question'"):
        TaskDecontamination([path], fields=["question"]).setup()


def test_an_empty_test_set_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="'empty'.*no row has text"):
        TaskDecontamination([empty]).setup()
    short = jsonl(tmp_path / "short.jsonl", [{"text": "too short"}])
    with pytest.raises(ValueError, match="'short'.*gives no n-gram"):
        TaskDecontamination([short]).setup()


def test_bad_rows_in_a_test_set_are_errors_naming_the_line(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"text": QUESTION}) + "\n{not json\n")
    with pytest.raises(ValueError, match="broken.jsonl: line 2: not valid JSON"):
        TaskDecontamination([broken]).setup()
    number = jsonl(tmp_path / "number.jsonl", [{"text": QUESTION}, {"text": 5}])
    with pytest.raises(ValueError, match="line 2: field 'text' is int"):
        TaskDecontamination([number]).setup()


def test_two_test_sets_of_the_same_name_are_an_error(tmp_path, science):
    (tmp_path / "other").mkdir()
    twin = jsonl(tmp_path / "other" / "science.jsonl", [{"text": OTHER}])
    with pytest.raises(ValueError, match="same name 'science'"):
        TaskDecontamination([science, twin])


def test_a_test_set_of_another_format_is_an_error(tmp_path):
    csv = tmp_path / "sciq.csv"
    csv.write_text("text\n" + QUESTION + "\n")
    with pytest.raises(ValueError, match="sciq.csv is neither JSONL"):
        TaskDecontamination([csv])


def test_bad_arguments_are_errors(science):
    with pytest.raises(ValueError, match="mode"):
        TaskDecontamination([science], mode="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_ngram_size"):
        TaskDecontamination([science], max_ngram_size=5, min_ngram_size=6)
    with pytest.raises(ValueError, match="max_splits"):
        TaskDecontamination([science], max_splits=0)


def test_a_missing_text_column_is_an_error_naming_it(science):
    with pytest.raises(KeyError, match="'content'"):
        TaskDecontamination([science], text_field="content").split(docs("x"))


def test_the_index_holds_one_hash_per_distinct_n_gram(tmp_path):
    path = jsonl(tmp_path / "dup.jsonl", [{"text": QUESTION}, {"text": QUESTION.upper()}])
    stage = TaskDecontamination([path])
    stage.setup()
    assert {n: keys.size for n, (keys, _) in stage._index.items()} == {13: 3}
    keys = stage._index[13][0]
    assert np.all(keys[1:] > keys[:-1])
