"""Text classifiers: fastText quality and language-ID filters, and Hugging Face sequence
classifiers (NeMo Curator's quality, domain and FineWeb-Edu classifiers). Every model is
built here, tiny and on the fly: fastText models trained on a few hundred generated lines,
transformers models randomly initialised with a word-level tokenizer over the test words."""

from __future__ import annotations

import copy
import dataclasses
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from stages.base import FilterChain
from stages.text.classifiers import (
    DomainClassifier,
    FastTextLangId,
    FastTextQualityFilter,
    FineWebEduClassifier,
    QualityClassifier,
    SequenceClassifier,
    pareto_draws,
)
from tests.fasttext_models import train_supervised

fasttext = pytest.importorskip("fasttext")

GOOD = "science research theory evidence analysis method study result data experiment".split()
BAD = "click buy free cheap win offer deal now casino sale".split()
LANGS = {
    "eng_Latn": "the river runs past old mill we walked to market this morning".split(),
    "deu_Latn": "der fluss fließt an alten mühle wir sind heute morgen zum markt".split(),
    "fra_Latn": "la rivière passe devant le vieux moulin nous sommes allés au marché".split(),
}


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def sentences(words: list[str], n: int, seed: int, length: int = 8) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=length)) for _ in range(n)]


def train_fasttext(path, labelled: dict[str, list[str]]) -> str:
    lines = [f"__label__{label} {text}" for label, texts in labelled.items() for text in texts]
    random.Random(0).shuffle(lines)
    (path / "train.txt").write_text("\n".join(lines) + "\n")
    return train_supervised(
        path / "train.txt", path / "model.bin", dim=8, epoch=10, lr=0.5, minn=2, maxn=4,
        bucket=100000, thread=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("fasttext_quality")
    return train_fasttext(path, {"hq": sentences(GOOD, 200, 1), "lq": sentences(BAD, 200, 2)})


@pytest.fixture(scope="module")
def langid_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("fasttext_langid")
    return train_fasttext(path, {k: sentences(w, 150, i) for i, (k, w) in enumerate(LANGS.items())})


# --- FastTextQualityFilter -----------------------------------------------------------------


def test_pareto_draws_follow_numpy_pareto_law_and_depend_on_text_and_seed_only():
    texts = [f"document {i}" for i in range(20000)]
    draws = pareto_draws(texts, alpha=3, seed=42)
    for x in (0.0, 0.5, 1.0):  # P(draw > x) = (1 + x)^-alpha
        assert abs((draws > x).mean() - (1 + x) ** -3) < 0.015
    assert np.array_equal(pareto_draws(texts[::-1], 3, 42), draws[::-1])
    assert not np.array_equal(pareto_draws(texts[:100], 3, 7), draws[:100])
    assert pareto_draws([None], 3, 42)[0] == pareto_draws([""], 3, 42)[0]


def test_quality_score_is_the_label_probability_as_nemo_computes_it(quality_model):
    texts = sentences(GOOD, 5, 10) + sentences(BAD, 5, 11) + ["line one\nline two __label__lq"]
    scores = FastTextQualityFilter(quality_model).score(table(texts))
    model = fasttext.load_model(quality_model)
    for text, score in zip(texts, scores, strict=True):
        (label,), (p,) = model.predict(text.replace("\n", " ").replace("__label__", " "))
        nemo = p if label == "__label__hq" else 1 - p  # NeMo's score for a two-label model
        assert score == pytest.approx(nemo, abs=3e-5)  # fastText adds 1e-5 to each p
    assert scores[:5].min() > 0.9 and scores[5:10].max() < 0.1


def test_quality_filter_keeps_by_the_pareto_rule_deterministically(quality_model):
    good, bad = sentences(GOOD, 300, 20, 9), sentences(BAD, 300, 21, 9)
    stage = FastTextQualityFilter(quality_model, keep_score=True)
    batch = table(good + bad)
    scores, mask = stage.mask(batch)
    assert np.array_equal(mask, pareto_draws(good + bad, 3, 42) > 1 - scores)
    # p near 1 is kept with probability (2 - p)^-3 near 1; p near 0 with about 1 in 8
    assert mask[:300].mean() > 0.9 and 0.03 < mask[300:].mean() < 0.3
    out = stage(batch)
    assert out.num_rows == mask.sum()
    assert out.column("score_FastTextQualityFilter").to_pylist() == scores[mask].tolist()
    halves = [stage(batch.slice(0, 250)), stage(batch.slice(250))]
    assert pa.concat_tables(halves).column("id").to_pylist() == out.column("id").to_pylist()
    other_seed = FastTextQualityFilter(quality_model, seed=1).mask(batch)[1]
    assert not np.array_equal(other_seed, mask)


def test_quality_filter_handles_null_and_empty_text(quality_model):
    scores, mask = FastTextQualityFilter(quality_model).mask(table([None, "", "science data"]))
    assert scores[0] == scores[1] and 0.0 <= scores[0] <= 1.0 and mask.shape == (3,)


def test_quality_filter_refuses_a_label_the_model_lacks(quality_model):
    with pytest.raises(ValueError, match=r"__label__good.*__label__hq"):
        FastTextQualityFilter(quality_model, label="__label__good").setup()


def test_fasttext_stages_name_a_missing_model_file(tmp_path):
    missing = tmp_path / "nope.bin"
    for stage in (FastTextQualityFilter(missing), FastTextLangId(missing)):
        with pytest.raises(FileNotFoundError, match="nope.bin"):
            stage(table(["some text"]))


# --- FastTextLangId ----------------------------------------------------------------------------


def test_langid_writes_language_and_score_and_drops_low_scores(langid_model):
    texts = [sentences(w, 1, 30 + i, 10)[0] for i, w in enumerate(LANGS.values())]
    stage = FastTextLangId(langid_model, min_langid_score=0.0)
    out = stage(table([*texts, "", None]))
    assert out.column("language").to_pylist()[:3] == list(LANGS)
    scores = out.column("language_score").to_pylist()
    assert all(s > 0.8 for s in scores[:3])
    assert out.column("language").to_pylist()[3] == out.column("language").to_pylist()[4]
    assert out.schema.field("language_score").type == pa.float64()
    assert max(scores[3:]) < min(scores[:3])  # empty text scores low: a cutoff removes it
    cutoff = (max(scores[3:]) + min(scores[:3])) / 2
    kept = FastTextLangId(langid_model, min_langid_score=cutoff)(table([*texts, "", None]))
    assert kept.column("id").to_pylist() == ["d0", "d1", "d2"]


@pytest.mark.parametrize("lang", ["eng", "ENG", "eng_latn", "eng_Latn"])
def test_langid_lang_matches_a_language_alone_or_with_its_script(langid_model, lang):
    texts = [sentences(w, 1, 40 + i, 10)[0] for i, w in enumerate(LANGS.values())]
    out = FastTextLangId(langid_model, lang=lang)(table(texts))
    assert out.column("language").to_pylist() == ["eng_Latn"]
    assert FastTextLangId(langid_model, lang="eng_Cyrl")(table(texts)).num_rows == 0


def test_langid_in_the_engine_path_reports_removed_rows(langid_model):
    texts = [sentences(w, 1, 50 + i, 10)[0] for i, w in enumerate(LANGS.values())]
    kept, removed, scores = FastTextLangId(langid_model, lang="deu").apply(table(texts))
    assert kept.column("id").to_pylist() == ["d1"]
    assert removed.column("language").to_pylist() == ["eng_Latn", "fra_Latn"]
    assert scores.tolist()[0] == -1.0 and scores[1] > 0.3


# --- Hugging Face sequence classifiers -----------------------------------------------------

WORDS = sorted(set(GOOD + BAD + "the a of and to is in it was for on".split()))
LABELS = ["High", "Medium", "Low"]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """Tiny models: `bert` (standard, three labels), `regression(bias)` (standard DeBERTa-v2
    regression head answering `bias` for every text), and a NeMo custom-head DeBERTa-v2
    checkpoint in a hub cache layout (`hub`, id acme/quality-deberta)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    root = tmp_path_factory.mktemp("hf")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
    )  # fmt: skip
    size = {
        "vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
        "pad_token_id": 0, "initializer_range": 0.2,
    }  # fmt: skip
    labels = {"id2label": dict(enumerate(LABELS)), "label2id": {k: i for i, k in enumerate(LABELS)}}

    def save(model, folder):
        model.eval().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return str(folder)

    torch.manual_seed(0)
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(**size, **labels))
    with torch.no_grad():
        bert.classifier.weight.mul_(10)  # labels that differ between texts
    paths = {"bert": save(bert, root / "bert"), "root": root}

    def regression(bias: float) -> str:
        torch.manual_seed(1)
        config = transformers.DebertaV2Config(**size, num_labels=1)
        model = transformers.DebertaV2ForSequenceClassification(config)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(bias)
        return save(model, root / f"edu{bias}")

    paths["regression"] = regression

    # NeMo's custom head: config.json of the hub mixin, weights model.* (backbone) + fc.*
    hub = root / "hub"
    base = hub / "models--acme--tiny-deberta" / "snapshots" / "b1"
    transformers.DebertaV2Config(**size).save_pretrained(base)
    (hub / "models--acme--tiny-deberta" / "refs").mkdir()
    (hub / "models--acme--tiny-deberta" / "refs" / "main").write_text("b1")
    torch.manual_seed(2)
    backbone = transformers.DebertaV2Model(transformers.DebertaV2Config(**size)).eval()
    fc = torch.nn.Linear(32, 3)
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"fc.{k}": v for k, v in fc.state_dict().items()}
    repo = hub / "models--acme--quality-deberta"
    for snapshot in ("old", "c3"):  # refs/main picks among several snapshots
        folder = repo / "snapshots" / snapshot
        folder.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
        config = {"base_model": "acme/tiny-deberta", "fc_dropout": 0.2}
        config |= {"id2label": {str(i): k for i, k in enumerate(LABELS)}}
        config |= {"label2id": labels["label2id"]}
        (folder / "config.json").write_text(json.dumps(config))
        tokenizer.save_pretrained(folder)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c3")
    paths["hub"] = hub
    paths["custom"] = (backbone, fc)
    return paths


def reference(folder: str, texts: list[str | None], max_length: int, max_chars=None):
    """Probabilities of a plain forward pass: all texts at once, unsorted, padded together."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    texts = [(t or "")[:max_chars] if max_chars else (t or "") for t in texts]
    encoded = tokenizer(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt",
        return_token_type_ids=False,
    )  # fmt: skip
    with torch.no_grad():
        return torch.softmax(model(**encoded).logits, dim=1).numpy()


def mixed_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS + ["unseen"], k=rng.randint(1, 40))) for _ in range(n)]


def test_quality_classifier_writes_labels_and_probabilities(hf):
    texts = mixed_texts(12, 0)
    stage = QualityClassifier(hf["bert"], max_seq_length=64, device="cpu")
    out = stage(table(texts))
    assert out.column_names == ["id", "text", "quality_pred", "quality_prob"]
    assert out.schema.field("quality_pred").type == pa.string()
    assert out.schema.field("quality_prob").type == pa.list_(pa.float32())
    probs = np.array(out.column("quality_prob").to_pylist())
    assert probs.shape == (12, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out.column("quality_pred").to_pylist() == [LABELS[i] for i in probs.argmax(axis=1)]
    assert stage.labels == LABELS


def test_domain_classifier_writes_only_predictions_by_default(hf):
    out = DomainClassifier(hf["bert"], max_seq_length=64)(table(mixed_texts(3, 1)))
    assert out.column_names == ["id", "text", "domain_pred"]


def test_sorted_token_batches_equal_an_unsorted_forward_pass_in_input_order(hf):
    texts = mixed_texts(40, 2)
    stage = SequenceClassifier(hf["bert"], max_seq_length=16, batch_size=2, prob_column="p")
    got = np.array(stage(table(texts)).column("p").to_pylist())
    want = reference(hf["bert"], texts, 16)
    assert np.allclose(got, want, atol=1e-5)


def test_long_texts_cut_before_tokenising_give_the_tokenizers_truncation(hf):
    from transformers import AutoTokenizer

    rng = random.Random(3)
    texts = [" ".join(rng.choices(WORDS, k=300)) for _ in range(5)]
    texts += ["science " * 10 + "x" * 500, "a " * 3 + "unseenword" * 60, "data " * 30]
    stage = SequenceClassifier(hf["bert"], max_seq_length=8)
    stage.setup()
    assert stage._cut == 16 * 8 and all(len(t) > stage._cut for t in texts)
    tokenizer = AutoTokenizer.from_pretrained(hf["bert"])
    assert stage._encode(texts) == tokenizer(texts, truncation=True, max_length=8)["input_ids"]


def test_filter_by_keeps_only_rows_with_a_listed_label(hf):
    texts = mixed_texts(30, 4)
    stage = QualityClassifier(hf["bert"], max_seq_length=64)
    labels = stage(table(texts)).column("quality_pred").to_pylist()
    wanted = labels[0]
    kept, removed, _ = QualityClassifier(hf["bert"], max_seq_length=64, filter_by=[wanted]).apply(
        table(texts)
    )
    assert kept.column("id").to_pylist() == [f"d{i}" for i, x in enumerate(labels) if x == wanted]
    assert 0 < kept.num_rows < len(texts)
    assert set(removed.column("quality_pred").to_pylist()) == set(labels) - {wanted}
    chain = FilterChain([QualityClassifier(hf["bert"], max_seq_length=64, filter_by=[wanted])])
    assert chain(table(texts)).num_rows == kept.num_rows
    with pytest.raises(ValueError, match=r"\['Excellent'\] not among the model's labels"):
        QualityClassifier(hf["bert"], filter_by=["Excellent"]).setup()


@pytest.mark.parametrize(
    ("bias", "score", "rounded", "label"),
    [(-1.3, 0.0, 0, "low_quality"), (1.5, 1.5, 2, "low_quality"), (2.5, 2.5, 2, "high_quality"),
     (3.7, 3.7, 4, "high_quality"), (7.2, 5.0, 5, "high_quality")],
)  # fmt: skip
def test_fineweb_edu_scores_are_clipped_rounded_and_labelled(hf, bias, score, rounded, label):
    stage = FineWebEduClassifier(hf["regression"](bias))
    out = stage(table(["science data", None]))
    assert out.column_names == [
        "id", "text", "fineweb-edu-score-float", "fineweb-edu-score-int", "fineweb-edu-score-label"
    ]  # fmt: skip
    assert out.schema.field("fineweb-edu-score-float").type == pa.float32()
    assert out.schema.field("fineweb-edu-score-int").type == pa.int64()
    assert out.column("fineweb-edu-score-float").to_pylist() == pytest.approx([score] * 2)
    assert out.column("fineweb-edu-score-int").to_pylist() == [rounded] * 2
    assert out.column("fineweb-edu-score-label").to_pylist() == [label] * 2
    high = FineWebEduClassifier(hf["regression"](bias), filter_by=["high_quality"])
    assert high(table(["science data"])).num_rows == (label == "high_quality")


def test_nemo_custom_head_checkpoint_loads_from_a_hub_cache(hf):
    import torch
    from transformers import AutoTokenizer

    texts = mixed_texts(10, 5)
    stage = QualityClassifier("acme/quality-deberta", cache_dir=hf["hub"], max_seq_length=32)
    got = np.array(stage(table(texts)).column("quality_prob").to_pylist())
    backbone, fc = hf["custom"]
    folder = hf["hub"] / "models--acme--quality-deberta" / "snapshots" / "c3"
    encoded = AutoTokenizer.from_pretrained(folder)(
        texts, truncation=True, max_length=32, padding=True, return_tensors="pt",
        return_token_type_ids=False,
    )  # fmt: skip
    with torch.no_grad():
        hidden = backbone(**encoded).last_hidden_state[:, 0, :]
        want = torch.softmax(fc(hidden), dim=1).numpy()
    assert np.allclose(got, want, atol=1e-5) and want.max() < 0.99  # not saturated
    repo = QualityClassifier(hf["hub"] / "models--acme--quality-deberta", max_seq_length=32)
    assert np.allclose(np.array(repo(table(texts)).column("quality_prob").to_pylist()), got)


def test_max_chars_cuts_the_model_input_not_the_output_text(hf):
    texts = ["science data theory " * 5, "click buy free " * 5]
    stage = SequenceClassifier(hf["bert"], max_chars=12, max_seq_length=64, prob_column="p")
    out = stage(table(texts))
    assert out.column("text").to_pylist() == texts
    want = reference(hf["bert"], texts, 64, max_chars=12)
    assert np.allclose(np.array(out.column("p").to_pylist()), want, atol=1e-5)


def test_null_text_is_classified_as_empty_text(hf):
    stage = SequenceClassifier(hf["bert"], max_seq_length=64, prob_column="p")
    probs = stage(table([None, "", "science"])).column("p").to_pylist()
    assert probs[0] == probs[1] and probs[1] != probs[2]
    empty = stage(table([]).cast(pa.schema([("id", pa.string()), ("text", pa.string())])))
    assert empty.num_rows == 0 and empty.column_names == ["id", "text", "preds", "p"]


def test_bad_input_and_missing_models_are_clear_errors(hf, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        QualityClassifier(tmp_path / "no-such-model").setup()
    with pytest.raises(FileNotFoundError, match="models--acme--absent"):
        QualityClassifier("acme/absent", cache_dir=hf["hub"]).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        QualityClassifier(tmp_path / "empty").setup()
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "config.json").write_text('{"base_model": "acme/missing"}')
    with pytest.raises(FileNotFoundError, match="backbone is 'acme/missing'"):
        QualityClassifier(tmp_path / "custom", cache_dir=hf["hub"]).setup()
    stage = QualityClassifier(hf["bert"], max_seq_length=64)
    with pytest.raises(KeyError, match="'content'"):
        stage(pa.table({"content": ["x"]}))
    with pytest.raises(TypeError, match="'text' is int64"):
        stage(pa.table({"text": [1]}))


def test_a_head_of_the_wrong_kind_is_refused(hf):
    with pytest.raises(ValueError, match="regression head"):
        QualityClassifier(hf["regression"](1.0)).setup()
    with pytest.raises(ValueError, match="3 outputs"):
        FineWebEduClassifier(hf["bert"]).setup()


def test_resources_ask_for_a_gpu_only_when_one_is_there():
    import torch

    auto = QualityClassifier("unused")
    assert auto.resources.gpus == (1.0 if torch.cuda.is_available() else 0.0)
    assert QualityClassifier("unused", device="cpu").resources.gpus == 0.0
    shared = QualityClassifier("unused", gpus=0.5, cpus=2)
    assert (shared.resources.cpus, shared.resources.gpus) == (2.0, 0.5)
    assert shared.is_stateful and shared.batch_size == 4096
    granted = copy.copy(shared)  # what the engine does to grant a one-worker run every core
    granted.resources = dataclasses.replace(shared.resources, cpus=8.0)
    assert (granted.resources.cpus, shared.resources.cpus) == (8.0, 2.0)
    with pytest.raises(ValueError, match="device"):
        QualityClassifier("unused", device="tpu")
