"""Gopher repetition filters: NeMo Curator's scores and keep rules, decided the same way in
any process, hash seed and batch split."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from stages.text.filters.repeated_lines import RepeatedLinesFilter
from stages.text.filters.repeated_lines_by_char import RepeatedLinesByCharFilter
from stages.text.filters.repeated_paragraphs import RepeatedParagraphsFilter
from stages.text.filters.repeated_paragraphs_by_char import RepeatedParagraphsByCharFilter
from stages.text.filters.repeating_duplicate_ngrams import RepeatingDuplicateNGramsFilter
from stages.text.filters.repeating_top_ngrams import RepeatingTopNGramsFilter

ROOT = Path(__file__).resolve().parents[3]
NEMO_PYTHON = ROOT / ".bench-venvs" / "nemo" / "bin" / "python"

# NeMo Curator's English recipe for these filters (class, kwargs), plus the defaults.
RECIPE = (
    ("RepeatedLinesFilter", {"max_repeated_line_fraction": 0.7}),
    ("RepeatedParagraphsFilter", {"max_repeated_paragraphs_ratio": 0.7}),
    ("RepeatedLinesByCharFilter", {"max_repeated_lines_char_ratio": 0.8}),
    ("RepeatedParagraphsByCharFilter", {"max_repeated_paragraphs_char_ratio": 0.8}),
    ("RepeatingTopNGramsFilter", {}),
    ("RepeatingTopNGramsFilter", {"n": 2, "max_repeating_ngram_ratio": 0.2}),
    ("RepeatingTopNGramsFilter", {"n": 3, "max_repeating_ngram_ratio": 0.18}),
    ("RepeatingTopNGramsFilter", {"n": 4, "max_repeating_ngram_ratio": 0.16}),
    ("RepeatingDuplicateNGramsFilter", {}),
    ("RepeatingDuplicateNGramsFilter", {"n": 5, "max_repeating_duplicate_ngram_ratio": 0.15}),
    ("RepeatingDuplicateNGramsFilter", {"n": 6, "max_repeating_duplicate_ngram_ratio": 0.14}),
    ("RepeatingDuplicateNGramsFilter", {"n": 7, "max_repeating_duplicate_ngram_ratio": 0.13}),
    ("RepeatingDuplicateNGramsFilter", {"n": 8, "max_repeating_duplicate_ngram_ratio": 0.12}),
    ("RepeatingDuplicateNGramsFilter", {"n": 9, "max_repeating_duplicate_ngram_ratio": 0.11}),
    ("RepeatingDuplicateNGramsFilter", {"n": 10, "max_repeating_duplicate_ngram_ratio": 0.10}),
)
OURS = {
    cls.__name__: cls
    for cls in (
        RepeatedLinesFilter,
        RepeatedParagraphsFilter,
        RepeatedLinesByCharFilter,
        RepeatedParagraphsByCharFilter,
        RepeatingTopNGramsFilter,
        RepeatingDuplicateNGramsFilter,
    )
}


def table(*texts: str | None) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": list(texts)})


def scores(f, *texts: str | None) -> list[float]:
    return [float(s) for s in f.score(table(*texts))]


# ---------------------------------------------------------------- documents for agreement

VOCAB = (
    "the of and to in is was for on that with as by at from his her an which are were "
    "river mountain city library engine signal garden winter letter market theory "
    "quickly slowly never always bright quiet heavy ancient modern simple "
    "builds carries measures follows returns opens writes reads moves holds"
).split()


def _sentence(rng: random.Random, vocab=VOCAB, lo: int = 4, hi: int = 14) -> str:
    words = [rng.choice(vocab) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", ""])


def _prose(rng: random.Random, lines: int) -> list[str]:
    return [_sentence(rng) for _ in range(lines)]


def make_documents(count: int = 200, seed: int = 7) -> list[str | None]:
    """Varied documents: prose, repeated lines and paragraphs, spammy n-grams, tiny
    vocabularies (many ties), odd whitespace, empty and whitespace-only."""
    rng = random.Random(seed)
    fixed: list[str | None] = [
        "",
        " ",
        "\n",
        "\n\n",
        "\n\n\n",
        " \t\n \n",
        "\x1c\n\x1d",
        "\xa0\u2003",
        None,
        "word",
        "two words",
        "a\r\nb\r\na\r\n",
        "x  y\tx\ny x y",
        "same line\nsame line\nsame line\nother",
        "para one\n\npara one\n\npara two",
    ]
    docs = list(fixed)
    kinds = ("prose", "lines", "paragraphs", "spam", "tiny", "mixed")
    while len(docs) < count:
        kind = kinds[len(docs) % len(kinds)]
        if kind == "prose":
            paras = ["\n".join(_prose(rng, rng.randint(1, 5))) for _ in range(rng.randint(1, 6))]
            docs.append("\n\n".join(paras))
        elif kind == "lines":
            lines = _prose(rng, rng.randint(3, 12))
            lines += [rng.choice(lines) for _ in range(rng.randint(0, 8))]
            rng.shuffle(lines)
            docs.append("\n".join(line + rng.choice(["", "", " "]) for line in lines))
        elif kind == "paragraphs":
            paras = ["\n".join(_prose(rng, rng.randint(1, 3))) for _ in range(rng.randint(2, 6))]
            paras += [rng.choice(paras) for _ in range(rng.randint(0, 4))]
            rng.shuffle(paras)
            docs.append(rng.choice(["\n\n", "\n\n\n"]).join(paras))
        elif kind == "spam":
            phrase = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 6)))
            parts = []
            for _ in range(rng.randint(5, 30)):
                parts.append(phrase if rng.random() < 0.4 else _sentence(rng, lo=2, hi=6))
            docs.append(rng.choice([" ", "\n", ". "]).join(parts))
        elif kind == "tiny":
            vocab = rng.sample(VOCAB, rng.randint(2, 5))
            docs.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 60))))
        else:
            body = _prose(rng, rng.randint(2, 8))
            body += [" ".join([rng.choice(VOCAB)] * rng.randint(2, 9))]
            docs.append(rng.choice(["\n", "\n\n", "  "]).join(body))
    return docs


NEMO_SCRIPT = r"""
import json, sys
from nemo_curator.stages.text.filters.heuristic import repetition
job = json.load(sys.stdin)
out = []
for name, kwargs in job["filters"]:
    f = getattr(repetition, name)(**kwargs)
    row = []
    for text in job["docs"]:
        try:
            s = f.score_document(text)
            row.append([s, bool(f.keep_document(s))])
        except ZeroDivisionError:
            row.append(None)
    out.append(row)
json.dump(out, sys.stdout)
"""


def run_nemo(docs: list[str], hash_seed: int) -> list[list]:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    job = json.dumps({"docs": docs, "filters": RECIPE})
    done = subprocess.run(
        [str(NEMO_PYTHON), "-c", NEMO_SCRIPT],
        input=job,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def top_ngram_decisions(text: str, n: int, cutoff: float) -> set[bool]:
    """Every decision NeMo Curator's top n-gram filter can reach on `text`, one per n-gram
    tied for the highest count (which one it scores depends on the hash seed)."""
    words = text.split()
    if len(words) < n:
        return {1.0 <= cutoff}
    grams = Counter(zip(*[words[i:] for i in range(n)], strict=False))
    top = max(grams.values())
    return {
        (len(text) - len(text.replace(" ".join(g), ""))) / len(text) <= cutoff
        for g, count in grams.items()
        if count == top
    }


def counter_top_ngram_score(text: str, n: int) -> float:
    """The score with ties broken as `Counter.most_common(1)` does: first seen wins."""
    words = text.split()
    if len(words) < n:
        return 1.0
    ((gram, _),) = Counter(zip(*[words[i:] for i in range(n)], strict=False)).most_common(1)
    return (len(text) - len(text.replace(" ".join(gram), ""))) / len(text)


# ------------------------------------------------------------------- the line filters


def test_repeated_lines_scores_distinct_fraction_of_nonblank_lines():
    f = RepeatedLinesFilter()
    assert scores(f, "a\na\n\n  \nb\nc") == [0.75]


def test_repeated_lines_keeps_at_threshold_and_drops_below():
    text = "a\na\nb\nc"  # 3 distinct of 4 lines
    assert RepeatedLinesFilter(max_repeated_line_fraction=0.75).process(table(text)).num_rows == 1
    assert RepeatedLinesFilter(max_repeated_line_fraction=0.76).process(table(text)).num_rows == 0


def test_repeated_lines_default_drops_mostly_repeated_document():
    kept = RepeatedLinesFilter().process(table("x\nx\nx\ny", "x\ny\nz"))
    assert kept["id"].to_pylist() == ["d1"]


def test_repeated_paragraphs_keeps_at_threshold_and_drops_below():
    text = "p\n\np\n\nq\n\nr"
    assert scores(RepeatedParagraphsFilter(), text) == [0.75]
    assert RepeatedParagraphsFilter(0.75).process(table(text)).num_rows == 1
    assert RepeatedParagraphsFilter(0.76).process(table(text)).num_rows == 0


def test_repeated_paragraphs_split_at_double_newline_left_to_right():
    # "\n\n\n" splits into "" and "\n...": the two "a" paragraphs differ ("a" vs "\na").
    assert scores(RepeatedParagraphsFilter(), "a\n\n\na\n\na") == [2 / 3]


def test_repeated_lines_by_char_keeps_at_threshold_and_drops_below():
    text = "aa\naa\nbb\ncc"  # 6 distinct characters of 8
    assert scores(RepeatedLinesByCharFilter(), text) == [0.75]
    assert RepeatedLinesByCharFilter(0.75).process(table(text)).num_rows == 1
    assert RepeatedLinesByCharFilter(0.76).process(table(text)).num_rows == 0


def test_repeated_lines_by_char_weighs_lines_by_length():
    # One short line repeated costs little; the long line is distinct.
    assert scores(RepeatedLinesByCharFilter(), "x\nx\n" + "y" * 18) == [19 / 20]


def test_repeated_paragraphs_by_char_keeps_at_threshold_and_drops_below():
    text = "aa\n\naa\n\nbb\n\ncc"
    assert scores(RepeatedParagraphsByCharFilter(), text) == [0.75]
    assert RepeatedParagraphsByCharFilter(0.75).process(table(text)).num_rows == 1
    assert RepeatedParagraphsByCharFilter(0.76).process(table(text)).num_rows == 0


@pytest.mark.parametrize(
    "cls",
    [
        RepeatedLinesFilter,
        RepeatedParagraphsFilter,
        RepeatedLinesByCharFilter,
        RepeatedParagraphsByCharFilter,
    ],
)
def test_line_and_paragraph_filters_keep_empty_and_null_text_with_score_one(cls):
    f = cls()
    batch = table("", None, "  \n\t")
    assert scores(f, *batch["text"].to_pylist()) == [1.0, 1.0, 1.0]
    assert f.process(batch).num_rows == 3


# ------------------------------------------------------------------ the n-gram filters


def test_top_ngrams_scores_characters_of_most_frequent_ngram():
    # "a b" twice: 2 x 3 characters of 16.
    assert scores(RepeatingTopNGramsFilter(n=2), "a b a b cc dd ee") == [0.375]


def test_top_ngrams_keeps_at_threshold_and_drops_above():
    text = "a b a b cc dd ee"
    assert RepeatingTopNGramsFilter(2, 0.375).process(table(text)).num_rows == 1
    assert RepeatingTopNGramsFilter(2, 0.37).process(table(text)).num_rows == 0


def test_top_ngrams_counts_joined_ngram_as_substring_of_text():
    # Words split across a newline do not match "one two" there; "one two" inside
    # "gone two" does (NeMo Curator counts substring occurrences of the joined n-gram).
    assert scores(RepeatingTopNGramsFilter(n=2), "one\ntwo one\ntwo gone two") == [7 / 24]


def test_top_ngrams_tie_goes_to_ngram_seen_first():
    # "one two" and "two three" both occur twice as word pairs; "one two" comes first and
    # occurs twice in the text, "two three" only once (the other is across a newline).
    assert scores(RepeatingTopNGramsFilter(n=2), "one two\nthree one two three") == [14 / 27]


def test_top_ngrams_drops_documents_with_fewer_than_n_words_and_empty_text():
    f = RepeatingTopNGramsFilter(n=3)
    assert scores(f, "two words", "", None, " \n ") == [1.0, 1.0, 1.0, 1.0]
    assert f.process(table("two words", "", None)).num_rows == 0


def test_duplicate_ngrams_matches_nemo_scores_on_overlapping_repeats():
    # Reference values from NeMo Curator 1.4 on the same text.
    text = "x y z x y z q x y"
    assert scores(RepeatingDuplicateNGramsFilter(n=2), text) == [8 / 17]
    assert scores(RepeatingDuplicateNGramsFilter(n=3), text) == [5 / 17]


def test_duplicate_ngrams_keeps_at_threshold_and_drops_above():
    text = "a b a b"  # the second "a b": 3 characters of 7
    assert scores(RepeatingDuplicateNGramsFilter(n=2), text) == [3 / 7]
    assert RepeatingDuplicateNGramsFilter(2, 3 / 7).process(table(text)).num_rows == 1
    assert RepeatingDuplicateNGramsFilter(2, 0.42).process(table(text)).num_rows == 0


def test_duplicate_ngrams_without_repeats_scores_zero():
    assert scores(RepeatingDuplicateNGramsFilter(n=5), "one two three four five six") == [0.0]


def test_duplicate_ngrams_drops_empty_null_and_short_documents():
    f = RepeatingDuplicateNGramsFilter(n=5)
    assert scores(f, "", None, "\t", "a b c d") == [1.0, 1.0, 1.0, 1.0]
    assert f.process(table("", None, "a b c d")).num_rows == 0


def test_constructor_defaults_are_nemo_curators():
    assert RepeatedLinesFilter().max_repeated_line_fraction == 0.7
    assert RepeatedParagraphsFilter().max_repeated_paragraphs_ratio == 0.7
    assert RepeatedLinesByCharFilter().max_repeated_lines_char_ratio == 0.8
    assert RepeatedParagraphsByCharFilter().max_repeated_paragraphs_char_ratio == 0.8
    top = RepeatingTopNGramsFilter()
    assert (top.n, top.max_repeating_ngram_ratio) == (2, 0.2)
    dup = RepeatingDuplicateNGramsFilter()
    assert (dup.n, dup.max_repeating_duplicate_ngram_ratio) == (2, 0.2)


def test_filter_runs_standalone_and_keeps_its_score_column():
    f = RepeatingTopNGramsFilter(n=2, keep_score=True)
    f.setup()
    kept = f.process(table("spam spam spam spam spam spam", "a b c d e f g h i j"))
    assert kept["id"].to_pylist() == ["d1"]
    assert kept[f.score_column].to_pylist() == [3 / 19]


def test_filters_read_the_configured_text_field():
    batch = pa.table({"id": ["a"], "body": ["x\nx\nx"]})
    assert RepeatedLinesFilter(text_field="body").process(batch).num_rows == 0
    with pytest.raises(KeyError, match="text"):
        RepeatedLinesFilter().process(batch)


# ------------------------------------------------------------------------ determinism


def test_top_ngram_ties_follow_first_occurrence_on_every_document():
    docs = [d for d in make_documents() if d is not None]
    for n in (2, 3, 4):
        ours = scores(RepeatingTopNGramsFilter(n=n), *docs)
        assert ours == [counter_top_ngram_score(d, n) for d in docs]


@pytest.mark.parametrize("cls", list(OURS.values()))
def test_scores_do_not_depend_on_batch_split(cls):
    docs = make_documents(120)
    f = cls(n=3) if "NGrams" in cls.__name__ else cls()
    whole = f.score(table(*docs))
    one_by_one = np.concatenate([f.score(table(d)) for d in docs])
    chunked = pa.concat_tables([table(*docs[:50]), table(*docs[50:51]), table(*docs[51:])])
    assert np.array_equal(whole, one_by_one)
    assert np.array_equal(whole, f.score(chunked))


DETERMINISM_SCRIPT = """
import json

from test_text_filters_repetition import OURS, RECIPE, make_documents, table
docs = make_documents()
print(json.dumps([OURS[name](**kw).mask(table(*docs))[1].tolist() for name, kw in RECIPE]))
"""


def test_decisions_do_not_depend_on_python_hash_seed():
    outputs = []
    for seed in ("1", "2"):
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": f"{ROOT}:{Path(__file__).parent}:{ROOT / 'tests'}",
        }
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert any(not all(row) for row in outputs[0])  # the documents do exercise drops


# --------------------------------------------------------------- agreement with NeMo


@pytest.mark.skipif(
    not NEMO_PYTHON.exists(),
    reason="NeMo Curator's venv (.bench-venvs/nemo) is absent: agreement is checked where "
    "it is installed",
)
def test_decisions_match_nemo_curator_except_hash_seed_ties():
    docs = make_documents()
    nemo = run_nemo([d or "" for d in docs], hash_seed=0)
    batch = table(*docs)
    compared = seed_ties = 0
    for (name, kwargs), nemo_row in zip(RECIPE, nemo, strict=True):
        ours = OURS[name](**kwargs)
        our_scores, our_keep = ours.mask(batch)
        for i, (doc, result) in enumerate(zip(docs, nemo_row, strict=True)):
            if result is None:  # NeMo divides by zero: no non-blank line / paragraph char
                assert our_scores[i] == 1.0 and our_keep[i], (name, doc)
                continue
            nemo_score, nemo_keep = result
            if name == "RepeatingTopNGramsFilter":
                possible = top_ngram_decisions(doc or "", ours.n, ours.max_repeating_ngram_ratio)
                assert nemo_keep in possible, (name, kwargs, doc)
                assert our_keep[i] in possible, (name, kwargs, doc)
                if len(possible) > 1:
                    seed_ties += 1
                    continue
            else:
                assert our_scores[i] == nemo_score, (name, kwargs, doc)
            assert our_keep[i] == nemo_keep, (name, kwargs, doc)
            compared += 1
    assert compared > 0.9 * len(RECIPE) * len(docs) - seed_ties - 100


@pytest.mark.parametrize("cls", [RepeatingTopNGramsFilter, RepeatingDuplicateNGramsFilter])
def test_ngram_filters_refuse_languages_written_without_spaces(cls):
    with pytest.raises(NotImplementedError, match="zh"):
        cls(lang="zh")
