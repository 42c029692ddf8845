from __future__ import annotations

import math

import pyarrow as pa
import pytest

from stages.audio.wer import GetPairwiseWerStage, error_rates, is_english, normalize_transcript


def pairs(refs: list[str | None], hyps: list[str | None]) -> pa.Table:
    return pa.table({"text": pa.array(refs, pa.string()), "pred_text": pa.array(hyps, pa.string())})


def wer(ref: str | None, hyp: str | None, **kwargs) -> float | None:
    return GetPairwiseWerStage(**kwargs)(pairs([ref], [hyp])).column("wer_pct")[0].as_py()


def test_one_inserted_word_in_three_is_33_percent():
    assert wer("the cat sat", "the cat sat on") == 33.3333


def test_substitutions_and_deletions_count_against_reference_words():
    assert wer("the cat sat on the mat", "the dog sat on the mat") == pytest.approx(
        100 / 6, abs=1e-4
    )
    assert wer("the cat sat on the mat", "the cat sat") == 50.0
    assert wer("the cat sat on the mat", "the dog sat on mat") == pytest.approx(200 / 6, abs=1e-4)


def test_wer_can_exceed_100_with_insertions():
    assert wer("yes", "yes yes yes") == 200.0


def test_cer_counts_characters_spaces_included():
    out = GetPairwiseWerStage()(pairs(["the cat sat"], ["the cat sit"]))
    assert out.column("cer_pct").to_pylist() == [round(100 / 11, 4)]
    assert out.column("wer_pct").to_pylist() == [round(100 / 3, 4)]


def test_case_and_punctuation_do_not_count_after_normalisation():
    assert wer("Hello, World!", "hello world") == 0.0
    assert wer("Hello, World!", "hello world", normalize=False) == 100.0


def test_english_numbers_match_spelled_out_numbers():
    assert wer("I have twenty five apples", "I have 25 apples") == 0.0
    assert wer("I have twenty five apples", "I have 25 apples", english_rules=False) == 40.0
    assert wer("I have twenty five apples", "I have 25 apples", language="fr") == 40.0


def test_null_or_empty_reference_has_no_wer_and_null_hypothesis_is_100():
    out = GetPairwiseWerStage()(pairs([None, "", "[music]", "a b c"], ["x", "x", "x", None]))
    assert out.column("wer_pct").to_pylist() == [None, None, None, 100.0]
    assert out.column("cer_pct").to_pylist() == [None, None, None, 100.0]


def test_batch_scores_equal_row_by_row_scores_and_keys_are_configurable():
    refs = ["the cat sat", "a b c d", "one two three", "x"]
    hyps = ["the cat", "a b x d e", "", "x"]
    stage = GetPairwiseWerStage(text_key="ref", pred_text_key="hyp", wer_key="w", cer_key=None)
    out = stage(pa.table({"ref": refs, "hyp": hyps, "wer_pct": [1.0] * 4}))
    assert out.column_names == ["ref", "hyp", "wer_pct", "w"]
    assert out.column("w").to_pylist() == [
        stage(pa.table({"ref": [r], "hyp": [h]})).column("w")[0].as_py()
        for r, h in zip(refs, hyps, strict=True)
    ]
    assert out.column("w").to_pylist() == [33.3333, 50.0, 100.0, 0.0]


def test_existing_score_columns_are_replaced():
    batch = pairs(["a b"], ["a b"]).append_column("wer_pct", pa.array([99.0]))
    out = GetPairwiseWerStage()(batch)
    assert out.column("wer_pct").to_pylist() == [0.0]
    assert out.column_names.count("wer_pct") == 1


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="'pred_text'"):
        GetPairwiseWerStage()(pa.table({"text": ["a"]}))


def test_empty_batch_gets_empty_columns():
    out = GetPairwiseWerStage()(pairs([], []))
    assert out.num_rows == 0 and {"wer_pct", "cer_pct"} <= set(out.column_names)


def test_error_rates_of_words_and_characters():
    assert error_rates(["a b c"], ["a c"]).tolist() == pytest.approx([100 / 3])
    assert error_rates(["abcd"], ["abd"], chars=True).tolist() == [25.0]
    assert math.isclose(error_rates(["a b", "c"], ["a b", "d"])[1], 100.0)


def test_normalize_transcript_rules():
    assert normalize_transcript("Hello,   World!") == "hello world"
    assert normalize_transcript("twenty five") == "25"
    assert (
        normalize_transcript("I've got the colour [laughs] uh right")
        == "i have got the color right"
    )
    assert normalize_transcript("ＡＢＣ  déjà-vu (rires) !", language="fr") == "abc déjà vu"
    assert normalize_transcript(None) == "" and normalize_transcript("  ") == ""


def test_combining_marks_stay_in_their_words():
    # Whisper's BasicTextNormalizer would split these words at their vowel signs.
    assert normalize_transcript("नमस्ते, दुनिया!", language="hi") == "नमस्ते दुनिया"


def test_english_is_recognised_by_code_region_or_name():
    assert all(is_english(code) for code in ["en", "EN", "en-US", "en_GB", "english", "eng"])
    assert not any(is_english(code) for code in [None, "", "fr", "de-DE", "ben"])
