"""The string heuristic filters: NeMo Curator's rules and scores, vectorised over a batch."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from stages.base import Filter
from stages.text import filters as F
from stages.text.filters.words import TextBytes, split_words

NEMO_PYTHON = Path(__file__).resolve().parents[3] / ".bench-venvs" / "nemo" / "bin" / "python"

STRING_FILTERS = (
    "NonAlphaNumericFilter",
    "SymbolsToWordsFilter",
    "NumbersFilter",
    "UrlsFilter",
    "WhiteSpaceFilter",
    "ParenthesesFilter",
    "BoilerPlateStringFilter",
    "WordCountFilter",
    "PunctuationFilter",
    "WordsWithoutAlphabetsFilter",
    "CommonEnglishWordsFilter",
    "MeanWordLengthFilter",
    "LongWordFilter",
    "EllipsisFilter",
    "BulletsFilter",
)


def table(*texts: str | None) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": list(texts)})


def scores(f: Filter, *texts: str | None) -> list:
    return f.mask(table(*texts))[0].tolist()


def kept(f: Filter, *texts: str | None) -> list[str]:
    return f.process(table(*texts)).column("text").to_pylist()


# --- words ---------------------------------------------------------------------------


def test_split_words_splits_on_python_whitespace_only():
    texts = pa.array(["  a\u00a0b\tc\x1cd\u3000e\u200bf  ", "", None, " \n "])
    assert split_words(texts).to_list() == [["a", "b", "c", "d", "e\u200bf"], [], [], []]


def test_word_spans_do_not_cross_rows():
    text = TextBytes.from_column(pa.chunked_array([["ab", "cd"], ["", "e f"]]))
    assert text.words.count.tolist() == [1, 1, 0, 2]


# --- one filter at a time --------------------------------------------------------------


def test_word_count_keeps_counts_inside_the_inclusive_range():
    f = F.WordCountFilter(min_words=2, max_words=3)
    assert scores(f, "one", "one two", "a b c", "a b c d", "") == [1, 2, 3, 4, 0]
    assert kept(f, "one", "one two", "a b c", "a b c d") == ["one two", "a b c"]


def test_mean_word_length_keeps_the_inclusive_range():
    f = F.MeanWordLengthFilter(min_mean_word_length=3, max_mean_word_length=4)
    assert scores(f, "ab ab", "abc abc", "abcd ab abcdef", "abcde", "  ") == [
        2.0,
        3.0,
        4.0,
        5.0,
        0.0,
    ]
    assert kept(f, "ab ab", "abc abc", "abcd ab abcdef", "abcde") == ["abc abc", "abcd ab abcdef"]


def test_non_alpha_numeric_counts_newline_and_sentence_marks_as_alphanumeric():
    f = F.NonAlphaNumericFilter(max_non_alpha_numeric_to_text_ratio=0.25)
    assert scores(f, "ab,\n", "abc#", "ab##", "é", "") == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kept(f, "ab,\n", "abc#", "ab##") == ["ab,\n", "abc#"]


def test_symbols_to_words_counts_hash_words_and_ellipsis_words():
    f = F.SymbolsToWordsFilter(max_symbol_to_word_ratio=0.5)
    # '#' and '#a#' are symbol words, '##' (one run in two characters) is not.
    assert scores(f, "# x", "#a# … x y", "## x", "... [...] -» x", "") == [0.5, 0.5, 0.0, 0.75, 0.0]
    assert kept(f, "# x", "## x", "# #") == ["# x", "## x"]


def test_numbers_keeps_the_ratio_at_the_cutoff():
    f = F.NumbersFilter(max_number_to_text_ratio=0.25)
    assert scores(f, "1abc", "12ab", "\u0663abc", "") == [0.25, 0.5, 0.0, 1.0]
    assert kept(f, "1abc", "12ab") == ["1abc"]


def test_urls_measures_url_characters():
    f = F.UrlsFilter(max_url_to_text_ratio=0.5)
    url = "http://a.io/x"  # 13 characters
    at_cutoff, above = url + " " + "y" * 12, url + " " + "y" * 11
    assert scores(f, at_cutoff, above, "no urls", "") == [0.5, 13 / 25, 0.0, 1.0]
    assert kept(f, at_cutoff, above) == [at_cutoff]


def test_urls_accepts_a_custom_pattern():
    f = F.UrlsFilter(url_regex=r"www\.\S+")
    assert scores(f, "www.a.io abcdefgh") == [8 / 17]


def test_white_space_counts_tab_newline_return_backspace_and_space():
    f = F.WhiteSpaceFilter(max_white_space_ratio=0.5)
    assert scores(f, "a\t\n\r\bbcd", "ab \u00a0", "a b ", "") == [0.5, 0.25, 0.5, 1.0]
    assert kept(f, "a  b", "a   b") == ["a  b"]


def test_parentheses_counts_all_bracket_kinds():
    f = F.ParenthesesFilter(max_parentheses_ratio=0.5)
    assert scores(f, "(a)b", "⟨a⟩[]{}", "") == [0.5, 6 / 7, 1.0]
    assert kept(f, "(a)b", "((a)") == ["(a)b"]


def test_boilerplate_scores_policy_paragraphs_and_lorem_ipsum():
    f = F.BoilerPlateStringFilter(max_boilerplate_string_ratio=0.5)
    two = "Read our Privacy Policy.\n\nA real paragraph."
    three = "Terms of Use\n\nText.\n\nMore text."
    assert scores(f, two, three, "LOREM IPSUM dolor", "", "nothing") == [0.5, 1 / 3, 1.0, 0.0, 0.0]
    assert kept(f, two, "Cookie policy\n\nuses cookies") == [two]


def test_punctuation_scores_lines_without_end_marks():
    f = F.PunctuationFilter(max_num_sentences_without_endmark_ratio=0.5)
    doc = "Ends well.  \n\n   \nno end\nquoted'\r\n"
    assert scores(f, doc, "a\nb", "", " \n ") == [1 / 3, 1.0, 0.0, 0.0]
    assert kept(f, "a.\nb", "a\nb") == ["a.\nb"]


def test_words_without_alphabets_counts_words_with_any_letter():
    f = F.WordsWithoutAlphabetsFilter(min_words_with_alphabets=0.5)
    assert scores(f, "a1 22", "12 34", "日本 55", "é3 - 4 x", "") == [0.5, 0.0, 0.5, 0.5, 0.0]
    assert kept(f, "a1 22", "12 34") == ["a1 22"]


def test_common_english_words_are_case_sensitive_whole_words():
    f = F.CommonEnglishWordsFilter(min_num_common_words=2, stop_at_false=False)
    assert scores(f, "the cat and the dog", "The AND the,", "of with", "") == [3, 0, 2, 0]
    assert kept(f, "of with", "the theory") == ["of with"]


def test_common_english_words_stops_counting_at_the_cutoff():
    f = F.CommonEnglishWordsFilter(min_num_common_words=2, stop_at_false=True)
    assert scores(f, "the cat and the dog", "the end") == [2, 1]


def test_long_word_keeps_the_maximum_length():
    f = F.LongWordFilter(max_word_length=5)
    assert scores(f, "abcde a", "abcdef", "ééééé b", "") == [5, 6, 5, 0]
    assert kept(f, "abcde a", "abcdef") == ["abcde a"]


def test_ellipsis_scores_lines_ending_with_an_ellipsis():
    f = F.EllipsisFilter(max_num_lines_ending_with_ellipsis_ratio=0.5)
    doc = "Wait...\nREAD MORE  \n\nfine.\nhe said…\n[...]\nx -»"
    assert scores(f, doc, "a\nb..", "", "more") == [5 / 6, 0.0, 0.0, 0.0]
    assert kept(f, "so...\nyes", "so...\nyes…") == ["so...\nyes"]


def test_bullets_scores_lines_starting_with_a_bullet():
    f = F.BulletsFilter(max_bullet_lines_ratio=0.5)
    doc = "• one\n   ◦ two\n\nplain\n-not a bullet"
    assert scores(f, doc, "", "x") == [0.5, 0.0, 0.0]
    assert kept(f, "• a\nb", "• a\n● b") == ["• a\nb"]


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_null_and_empty_texts_score_alike_and_never_crash(name):
    f = getattr(F, name)(keep_score=True)
    out = f.mask(table(None, "", "   ", "\n\n"))[0]
    assert out[0] == out[1]
    assert len(out) == 4


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_keep_score_adds_the_score_column_and_reads_text_field(name):
    f = getattr(F, name)(text_field="body", keep_score=True)
    batch = pa.table({"id": ["a", "b"], "body": ["Some text here.", "x"]})
    out = f.process(batch)
    assert f.score_column in out.column_names
    assert set(out.column("id").to_pylist()) <= {"a", "b"}


def test_scores_do_not_depend_on_batch_boundaries():
    docs = _varied_documents(60, seed=7)
    for name in STRING_FILTERS:
        f = getattr(F, name)()
        whole = f.mask(table(*docs))[0]
        halves = np.concatenate([f.mask(table(*docs[:25]))[0], f.mask(table(*docs[25:]))[0]])
        assert whole.tolist() == halves.tolist(), name


# --- agreement with NeMo Curator ---------------------------------------------------------

_WORDS = (
    "the of and to in a is that for it as with was on be by at this have from or one had "
    "not but what all were when we there can an your which their said if do will each about "
    "how up out them then she many some so these would other into has more her two like him "
    "see time could no make than first been its who now people my made over did down only way "
    "find use may water long little very after words called just where most know The And THE "
    "café naïve résumé Straße данные 数据 データ ☃ 🙂 don't it's e.g. i.e. co-op 3.14 42 1,000"
).split()
_FRAGMENTS = (
    "https://example.com/a/b?c=d&e=f#frag",
    "http://x.io/%41%zz",
    "see www.example.org now",
    "• first point",
    "  ◦ nested point",
    "●",
    "Read more",
    "READ MORE..",
    "and then…",
    "[...]",
    "(...)",
    "-»",
    "# Heading",
    "#a#b#",
    "##",
    "#",
    "def f(x):\n    return {'a': [1, 2, (3, 4)]}",
    "if (a && b) { c[i] = d; }",
    "⟨bra|ket⟩",
    "Privacy Policy",
    "This website uses cookies.",
    "Terms of Use apply",
    "Lorem Ipsum dolor sit amet",
    "2023-01-01 12:34:56 1234567890",
    "\u00a0\u2003\u3000",
    "\x1c\x1d\x1e\x1f",
    "\x85",
    "\u200bzero\u200bwidth",
    "\b\b",
    "Kelvin \u212a and \u0130stanbul",
    "\u0663\u0664 Arabic-Indic digits",
    "x" * 1001,
    "é" * 999,
)
_SEPARATORS = (" ", " ", " ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "", "  \n  ", ". ", "... ")


def _varied_documents(n: int, seed: int) -> list[str]:
    """Deterministic mixed documents: prose, code, URLs, bullets, ellipses, numbers, odd
    whitespace and scripts, plus the edge cases (empty, whitespace-only)."""
    rng = random.Random(seed)
    docs = ["", " ", "\n\n", "\t \r\n", "a", "the the", "..." * 40, "Hello, world!"]
    while len(docs) < n:
        kind = rng.random()
        parts = []
        for _ in range(rng.randint(1, 120)):
            if kind < 0.5 or rng.random() < 0.6:
                sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 14)))
                parts.append(sentence[:1].upper() + sentence[1:] + rng.choice(".?!,;'\" "))
            else:
                parts.append(rng.choice(_FRAGMENTS))
            parts.append(rng.choice(_SEPARATORS))
        docs.append("".join(parts))
    return docs[:n]


_NEMO_SCRIPT = r"""
import json, sys
from nemo_curator.stages.text.filters.heuristic import string as S
request = json.load(sys.stdin)
out = {}
for name in request["filters"]:
    f = getattr(S, name)()
    rows = []
    for text in request["docs"]:
        try:
            score = f.score_document(text)
            rows.append([score, bool(f.keep_document(score))])
        except Exception as error:
            rows.append([None, type(error).__name__])
    out[name] = rows
json.dump(out, sys.stdout)
"""


def nemo_scores(docs: list[str], names: tuple[str, ...]) -> dict[str, list]:
    request = json.dumps({"filters": list(names), "docs": docs})
    done = subprocess.run(
        [str(NEMO_PYTHON), "-c", _NEMO_SCRIPT],
        input=request,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(
    not NEMO_PYTHON.exists(), reason="NeMo Curator reference venv (.bench-venvs/nemo) not installed"
)
def test_scores_and_decisions_match_nemo_curator_on_varied_documents():
    docs = _varied_documents(200, seed=2024)
    theirs = nemo_scores(docs, STRING_FILTERS)
    batch = table(*docs)
    mismatches = []
    for name in STRING_FILTERS:
        f = getattr(F, name)()
        ours, keep = f.mask(batch)
        for i, (score, decision) in enumerate(theirs[name]):
            if score is None:
                # NeMo raises here (no words or no lines): ours is the empty-text score.
                expected = f.mask(table(""))[0][0]
                if ours[i] != expected:
                    mismatches.append((name, i, "raised", ours[i]))
            elif ours[i] != score or bool(keep[i]) != decision:
                mismatches.append((name, i, score, ours[i]))
    assert mismatches == []


@pytest.mark.parametrize("name", STRING_FILTERS)
def test_scores_are_the_same_for_sliced_chunked_and_large_string_columns(name):
    docs = _varied_documents(40, seed=3)
    f = getattr(F, name)()
    expected = f.mask(table(*docs))[0].tolist()[10:30]
    chunked = pa.chunked_array([pa.array(docs[:17]), pa.array(docs[17:])])
    sliced = pa.table({"id": [str(i) for i in range(40)], "text": chunked}).slice(10, 20)
    large = table(*docs[10:30]).cast(pa.schema([("id", pa.string()), ("text", pa.large_string())]))
    assert f.mask(sliced)[0].tolist() == expected
    assert f.mask(large)[0].tolist() == expected
