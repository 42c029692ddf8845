"""The language backends side by side: py3langid (the default), lingua (today's detector,
kept as an option) and a fastText model given by path."""

from __future__ import annotations

import sys

import pyarrow as pa
import pytest

from stages.text.language import (
    LanguageFilter,
    LanguageIdentifier,
    _fasttext_file_labels,
    check_languages,
    supported_languages,
)
from tests.fasttext_models import train_supervised

SENTENCES = {
    "en": "The weather was lovely this morning, so we walked along the river to the old mill.",
    "de": "Das Wetter war heute Morgen herrlich, also sind wir am Fluss entlang zur alten "
    "Mühle gegangen.",
    "fr": "Il faisait très beau ce matin, alors nous avons marché le long de la rivière "
    "jusqu'au vieux moulin.",
}
ICELANDIC = "Við fórum í sund í gær og borðuðum síðan ís í bænum."


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def test_default_backend_is_py3langid_and_low_accuracy_alone_keeps_lingua():
    assert LanguageIdentifier().backend == "py3langid"
    assert LanguageIdentifier(low_accuracy=False).backend == "lingua"
    assert LanguageIdentifier(low_accuracy=True).backend == "lingua"


@pytest.mark.parametrize("backend", ["py3langid", "lingua"])
def test_each_bundled_backend_identifies_english_german_french(backend):
    stage = LanguageIdentifier(languages=["en", "de", "fr", "es"], backend=backend)
    out = stage(table([*SENTENCES.values(), "", None]))
    assert out.column("language").to_pylist() == [*SENTENCES, "unknown", "unknown"]
    assert all(0.5 < s <= 1.0 for s in out.column("language_score").to_pylist()[:3])


def test_languages_none_means_every_language_the_backend_knows():
    codes, _ = LanguageIdentifier(languages=None).identify([ICELANDIC, SENTENCES["en"]])
    assert codes == ["is", "en"]


def test_py3langid_reads_a_model_file_given_by_path():
    import py3langid.langid

    path = py3langid.langid.MODEL_DIR / py3langid.langid.MODEL_FILE
    texts = list(SENTENCES.values())
    codes, scores = LanguageIdentifier(model=path).identify(texts)
    default_codes, default_scores = LanguageIdentifier().identify(texts)
    assert codes == default_codes == list(SENTENCES)
    assert scores.tolist() == default_scores.tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "cld9"}, "'cld9'"),
        ({"backend": "py3langid", "low_accuracy": True}, "low_accuracy"),
        ({"backend": "lingua", "model": "lid.bin"}, "no model file"),
    ],
)
def test_inconsistent_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LanguageIdentifier(**kwargs)


def test_languages_are_checked_against_the_backend_that_identifies_them():
    assert "gl" in supported_languages() and "gl" not in supported_languages("lingua")
    assert "mi" in supported_languages("lingua") and "mi" not in supported_languages()
    assert "zxx" not in supported_languages()  # py3langid's "not a language" class
    assert check_languages(["mi"], backend="lingua") == ("mi",)
    with pytest.raises(ValueError, match="'mi'"):
        check_languages(["mi"])
    with pytest.raises(ValueError, match="'gl'"):
        LanguageFilter(languages=["gl"], identifier=LanguageIdentifier(backend="lingua"))


def test_filter_builds_its_identifier_with_the_backend_asked_for():
    stage = LanguageFilter(languages=["de"], backend="lingua")
    out = stage(table([SENTENCES["en"], SENTENCES["de"]]))
    assert out.column("id").to_pylist() == ["d1"]
    assert stage.identifier.backend == "lingua"


# --- fastText: a model file given by the user (tests train a tiny one) ---------------------


def test_fasttext_backend_needs_a_model_path():
    with pytest.raises(ValueError, match="model=PATH"):
        LanguageIdentifier(backend="fasttext").setup()


def test_fasttext_backend_without_the_module_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fasttext", None)  # an install without it
    with pytest.raises(ImportError, match="fasttext-numpy2"):
        LanguageIdentifier(backend="fasttext", model=tmp_path / "lid.bin").setup()


TRAINING = {
    "en": ["the river runs past the old mill", "we walked to the market this morning",
           "the children are playing in the garden", "she opened the window and listened"],
    "de": ["der Fluss fließt an der alten Mühle vorbei", "wir sind heute Morgen zum Markt gegangen",
           "die Kinder spielen im Garten", "sie öffnete das Fenster und hörte zu"],
    "fr": ["la rivière passe devant le vieux moulin", "nous sommes allés au marché ce matin",
           "les enfants jouent dans le jardin", "elle ouvrit la fenêtre et écouta"],
}  # fmt: skip


def test_fasttext_backend_reads_a_local_model(tmp_path):
    fasttext = pytest.importorskip("fasttext", reason="fasttext is an optional backend")
    if not hasattr(fasttext, "train_supervised"):
        pytest.skip("this fasttext build only predicts (fasttext-predict): cannot train a model")
    lines = [f"__label__{lang} {t}" for lang, ts in TRAINING.items() for t in ts] * 20
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    train_supervised(
        tmp_path / "train.txt", tmp_path / "lid.bin", epoch=50, lr=0.5, dim=16, minn=2, maxn=4,
        thread=1,
    )  # fmt: skip

    stage = LanguageIdentifier(languages=["en", "de", "fr"], backend="fasttext",
                               model=tmp_path / "lid.bin")  # fmt: skip
    out = stage(table([*SENTENCES.values(), "12345"]))
    assert out.column("language").to_pylist() == [*SENTENCES, "unknown"]
    scores = out.column("language_score").to_pylist()
    assert all(0.0 < s <= 1.0 for s in scores[:3]) and scores[3] == 0.0
    assert supported_languages("fasttext", str(tmp_path / "lid.bin")) == {"en", "de", "fr"}
    # fasttext-predict has no get_labels: the labels are then read from the file
    labels = fasttext.load_model(str(tmp_path / "lid.bin")).get_labels()
    assert _fasttext_file_labels(str(tmp_path / "lid.bin")) == labels
    with pytest.raises(ValueError, match="'es'"):
        LanguageIdentifier(languages=["en", "es"], backend="fasttext",
                           model=tmp_path / "lid.bin").setup()  # fmt: skip
