from __future__ import annotations

import pyarrow as pa
import pytest

from stages.text.language import LanguageFilter, LanguageIdentifier

SENTENCES = {
    "en": "The weather was lovely this morning, so we walked along the river to the old mill.",
    "de": "Das Wetter war heute Morgen herrlich, also sind wir am Fluss entlang zur alten "
    "Mühle gegangen.",
    "fr": "Il faisait très beau ce matin, alors nous avons marché le long de la rivière "
    "jusqu'au vieux moulin.",
    "es": "Hacía un tiempo precioso esta mañana, así que caminamos junto al río hasta el "
    "viejo molino.",
}
LANGUAGES = ["en", "de", "fr", "es", "it", "pt"]


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    stage = LanguageIdentifier(languages=LANGUAGES)
    stage.setup()
    return stage


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def test_english_german_french_spanish_are_identified(identifier):
    out = identifier(table(list(SENTENCES.values())))
    assert out.column("language").to_pylist() == list(SENTENCES)
    assert all(0.5 < s <= 1.0 for s in out.column("language_score").to_pylist())


def test_high_accuracy_mode_identifies_a_short_phrase():
    stage = LanguageIdentifier(languages=["en", "de", "fr", "es"], low_accuracy=False)
    out = stage(table(["Guten Morgen, wie geht es dir?"]))
    assert out.column("language").to_pylist() == ["de"]


def test_empty_null_and_letterless_text_is_unknown_with_zero_score(identifier):
    out = identifier(table(["", None, "12345 !!! ---"]))
    assert out.column("language").to_pylist() == ["unknown"] * 3
    assert out.column("language_score").to_pylist() == [0.0] * 3


def test_identifier_runs_as_a_stateful_stage_and_keeps_other_columns(identifier):
    batch = table([SENTENCES["en"]]).append_column("source", pa.array(["s"]))
    out = identifier(batch)
    assert identifier.is_stateful
    assert out.column_names == ["id", "text", "source", "language", "language_score"]


def test_existing_language_columns_are_replaced(identifier):
    batch = table([SENTENCES["fr"]]).append_column("language", pa.array(["xx"]))
    batch = batch.append_column("language_score", pa.array([0.1]))
    out = identifier(batch)
    assert out.column("language").to_pylist() == ["fr"]
    assert out.column_names.count("language") == 1


def test_unknown_language_code_is_rejected():
    with pytest.raises(ValueError, match="xq"):
        LanguageIdentifier(languages=["en", "xq"]).setup()


def test_filter_keeps_only_listed_languages(identifier):
    batch = identifier(table([SENTENCES["en"], SENTENCES["de"], "", SENTENCES["es"]]))
    out = LanguageFilter(languages=["en", "es"])(batch)
    assert out.column("id").to_pylist() == ["d0", "d3"]


def test_filter_drops_rows_below_min_score():
    batch = table(["a", "b"]).append_column("language", pa.array(["en", "en"]))
    batch = batch.append_column("language_score", pa.array([0.4, 0.9]))
    out = LanguageFilter(languages=["en"], min_score=0.5)(batch)
    assert out.column("id").to_pylist() == ["d1"]


def test_filter_identifies_language_itself_when_columns_are_missing(identifier):
    stage = LanguageFilter(languages=["de"], identifier=identifier)
    out = stage(table([SENTENCES["en"], SENTENCES["de"]]))
    assert out.column("id").to_pylist() == ["d1"]
    assert out.column("language").to_pylist() == ["de"]


def test_filter_score_marks_unlisted_languages_negative():
    batch = table(["a", "b"]).append_column("language", pa.array(["fr", "en"]))
    batch = batch.append_column("language_score", pa.array([0.8, 0.7]))
    out = LanguageFilter(languages=["en"], keep_score=True)(batch)
    assert out.column("score_LanguageFilter").to_pylist() == [0.7]
    assert LanguageFilter(languages=["en"]).score(batch).tolist() == [-1.0, 0.7]


CATALAN = (
    "El riu era ample i lent, i el vell pont cruixia sota el pes dels carros. Ella va obrir "
    "la finestra per deixar entrar l'aire del matí i va escoltar els ocells del jardí."
)


def test_supported_languages_are_lingua_s_iso_codes():
    from stages.text.language import DEFAULT_LANGUAGES, supported_languages

    codes = supported_languages()
    assert {"en", "ca", "eu"} <= codes and "xx" not in codes
    assert set(DEFAULT_LANGUAGES) <= codes


@pytest.mark.parametrize("code", ["ca", "eu"])
def test_filter_adds_its_languages_to_the_default_candidates(code):
    stage = LanguageFilter(languages=[code])
    stage(table([SENTENCES["en"]]))
    assert code in stage.identifier.languages and "en" in stage.identifier.languages


def test_filter_keeping_catalan_keeps_catalan_text():
    out = LanguageFilter(languages=["ca"])(table([CATALAN, SENTENCES["en"], SENTENCES["es"]]))
    assert out.column("id").to_pylist() == ["d0"]
    assert out.column("language").to_pylist() == ["ca"]


def test_filter_refuses_a_language_the_detector_cannot_produce():
    with pytest.raises(ValueError, match="'xx'.*'en'"):
        LanguageFilter(languages=["en", "xx"])
