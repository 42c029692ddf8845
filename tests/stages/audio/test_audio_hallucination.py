from __future__ import annotations

import pyarrow as pa
import pytest

from stages.audio.hallucination import WhisperHallucinationStage, hallucination_reasons

NORMAL = "The committee will meet again on Thursday to review the budget proposal."


def rows(texts: list[str | None], durations: list[float | None] | None = None, **extra):
    durations = durations if durations is not None else [10.0] * len(texts)
    return pa.table(
        {
            "id": [f"r{i}" for i in range(len(texts))],
            "pred_text": pa.array(texts, pa.string()),
            "duration": pa.array(durations, pa.float64()),
            **extra,
        }
    )


def reasons(texts, durations=None, stage=None, **extra) -> list[list[str]]:
    stage = stage or WhisperHallucinationStage(score_only=True)
    return stage(rows(texts, durations, **extra)).column("hallucination").to_pylist()


def test_a_normal_sentence_is_kept():
    out = WhisperHallucinationStage()(rows([NORMAL]))
    assert out.column("pred_text").to_pylist() == [NORMAL]
    assert out.column("hallucination").to_pylist() == [[]]


def test_a_repetition_loop_is_flagged_and_removed():
    loop = "thank you " * 10
    assert reasons([loop]) == [["repeated_ngrams"]]
    assert WhisperHallucinationStage()(rows([loop, NORMAL])).column("id").to_pylist() == ["r1"]


def test_unique_word_ratio_at_the_threshold_is_flagged():
    # 2 distinct words of 5 = 0.4: at the threshold, as NeMo Curator flags it.
    assert reasons(["a b a b a", "a b c a b"]) == [["repeated_ngrams"], []]


def test_500_characters_in_2_seconds_is_flagged_by_character_rate():
    text = " ".join(f"word{i:03d}x" for i in range(50))  # 50 distinct words, 500 letters
    assert reasons([text, text], [2.0, 20.0]) == [["high_char_rate"], []]


def test_rows_without_a_positive_duration_are_not_rate_checked():
    text = "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    assert reasons([text] * 3, [0.0, None, 0.1]) == [[], [], ["high_char_rate"]]


def test_long_words_absolute_and_relative():
    assert reasons(["this is " + "x" * 25]) == [["long_word"]]
    assert reasons(["ab cd abcdefgh"]) == [["long_word"]]  # 8 letters vs 2: 3 times longer
    assert reasons(["ab cd abcdefg"]) == [[]]


def test_compounding_languages_get_a_higher_bar_and_no_relative_rule():
    word = "Donaudampfschifffahrtsgesellschaft"  # 34 letters
    lang = pa.array(["de", "en"])
    assert reasons([f"die {word}", f"the {word}"], language=lang) == [[], ["long_word"]]


def test_listed_phrases_match_exactly_or_as_a_long_prefix_ignoring_case(tmp_path):
    path = tmp_path / "phrases.txt"
    path.write_text("Thank you for watching\n\nyou\nBye\n")
    stage = WhisperHallucinationStage(common_hall_file=str(path), score_only=True)
    texts = ["thank you for watching!", "Thank you for watching, see you soon", "You.",
             "Bye bye then", "so-called", NORMAL]  # fmt: skip
    assert reasons(texts, stage=stage) == [["phrase_match"]] * 3 + [[], [], []]
    listed = WhisperHallucinationStage(phrases=["so called"], score_only=True)
    assert reasons(["so-called"], stage=listed) == [["phrase_match"]]


def test_null_and_blank_transcripts_are_kept_unchecked():
    out = WhisperHallucinationStage(keep_score=True)(rows([None, "   ", ""]))
    assert out.num_rows == 3
    assert out.column("score_WhisperHallucination").to_pylist() == [0.0, 0.0, 0.0]


def test_score_is_a_bitmask_of_the_checks():
    text = "loop " * 100
    stage = WhisperHallucinationStage(keep_score=True, score_only=True)
    out = stage(rows([text], [1.0]))
    assert out.column("score_WhisperHallucination").to_pylist() == [1 + 8]
    assert hallucination_reasons(9) == ["repeated_ngrams", "high_char_rate"]


def test_removed_rows_carry_their_reasons():
    kept, removed, _ = WhisperHallucinationStage().apply(rows(["no no no no", NORMAL]))
    assert removed.column("hallucination").to_pylist() == [["repeated_ngrams"]]
    sample = WhisperHallucinationStage().describe_removed(removed, 3)
    assert sample[0]["reason"] == "hallucination: repeated_ngrams"
    assert sample[0]["text"] == "no no no no"


def test_missing_duration_column_is_named_unless_the_rate_check_is_off():
    table = pa.table({"pred_text": [NORMAL]})
    with pytest.raises(KeyError, match="'duration'.*max_char_rate=None"):
        WhisperHallucinationStage()(table)
    assert WhisperHallucinationStage(max_char_rate=None)(table).num_rows == 1
