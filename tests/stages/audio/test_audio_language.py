from __future__ import annotations

import pyarrow as pa
import pytest

from stages.audio.language import TranscriptLanguageStage

SENTENCES = {
    "en": "I think we should leave before the traffic gets any worse tonight.",
    "fr": "Je pense qu'on devrait partir avant que la circulation empire ce soir.",
    "de": "Ich glaube, wir sollten losfahren, bevor der Verkehr heute Abend noch schlimmer wird.",
}
CANDIDATES = ["en", "fr", "de", "es"]


def transcripts(texts: list[str | None]) -> pa.Table:
    return pa.table(
        {"id": [f"u{i}" for i in range(len(texts))], "pred_text": pa.array(texts, pa.string())}
    )


@pytest.fixture(scope="module")
def tagger() -> TranscriptLanguageStage:
    stage = TranscriptLanguageStage(candidates=CANDIDATES)
    stage.setup()
    return stage


def test_english_french_german_transcripts_are_identified(tagger):
    out = tagger(transcripts(list(SENTENCES.values())))
    assert out.column("transcript_language").to_pylist() == ["en", "fr", "de"]
    assert all(0.5 < s <= 1.0 for s in out.column("transcript_language_score").to_pylist())


def test_without_languages_every_row_is_kept_even_unknown(tagger):
    out = tagger(transcripts([SENTENCES["en"], None, ""]))
    assert out.num_rows == 3
    assert out.column("transcript_language").to_pylist() == ["en", "unknown", "unknown"]


def test_languages_keeps_only_those():
    stage = TranscriptLanguageStage(languages=["fr", "de"], candidates=CANDIDATES)
    out = stage(transcripts([*SENTENCES.values(), None]))
    assert out.column("transcript_language").to_pylist() == ["fr", "de"]


def test_reference_text_and_column_name_are_configurable(tagger):
    stage = TranscriptLanguageStage(text_key="text", language_key="lang", candidates=CANDIDATES)
    out = stage(pa.table({"text": [SENTENCES["de"]]}))
    assert out.column_names == ["text", "lang", "lang_score"]
    assert out.column("lang").to_pylist() == ["de"]


def test_unknown_language_code_is_refused():
    with pytest.raises(ValueError, match="'xx'"):
        TranscriptLanguageStage(languages=["xx"])
