"""TextEmbedder against sentence-transformers' own `encode` on the bundled MiniLM-L6-v2
(max_seq_length 256): same embeddings, whatever the texts, their order and the batching."""

from __future__ import annotations

import os
import random

import numpy as np
import pyarrow as pa
import pytest

from stages.dedup.embed import CHARS_PER_TOKEN, TextEmbedder, default_model_path, embedding_matrix

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CUT = CHARS_PER_TOKEN * 256  # characters a long text is tokenised from, when that is safe

ENGLISH = "The quick brown fox jumps over the lazy dog while the farmer watches. "
# 36 words of 101 characters ([UNK] each: over WordPiece's 100) and 162 one-letter words
# fill 3,996 characters with 198 tokens; then a 160-character word ([UNK] in the whole
# text) of which the cut keeps 100 characters (100 tokens): cut there, the text's kept
# tokens would change from the 199th on, though the cut still has more than 256 tokens.
CUT_INSIDE_A_KEPT_WORD = ("w" * 101 + " ") * 36 + "a " * 162 + "q" * 160 + " tail" * 500
TEXTS: list[str | None] = [
    "A cat was sitting on the mat.",
    ENGLISH * 80,  # ~1,100 tokens, 5,680 characters: cut
    "",
    None,
    "x" * 20_000,  # one word of 20,000 characters, no space
    "The cat sat on the mat.",
    "abc,def." * 2_000,  # no space, but punctuation makes many words
    "漢字仮名交じり文と日本語のテキスト" * 400,  # CJK: one word per character
    "I ❤️ pizza 🍕 and 👍🏽 emoji " * 400,
    "😀" * 5_000,
    CUT_INSIDE_A_KEPT_WORD,
    # the 255th content token (the 256th with [CLS]) inside a word of several tokens
    "hello " * 250 + "antidisestablishmentarianism " + ENGLISH * 80,
    "a" + " " * 6_000 + "lonely words after a long gap",  # the cut holds one token only
    "Stock markets fell today.",
    "e\u0301" * 3_000 + " accents " * 100,  # combining accents, stripped by the tokenizer
    "a",
]


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    embedder = TextEmbedder()
    embedder.setup()
    return embedder


@pytest.fixture(scope="module")
def sentence_transformer():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(default_model_path(), device="cpu", local_files_only=True)
    assert model.max_seq_length == 256
    return model


@pytest.fixture(scope="module")
def reference(sentence_transformer) -> np.ndarray:
    """sentence-transformers' `encode` of TEXTS (null as empty text)."""
    texts = [t if t is not None else "" for t in TEXTS]
    return sentence_transformer.encode(texts, batch_size=64, normalize_embeddings=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embeddings_are_those_of_sentence_transformers_encode(embedder, reference):
    assert [len(t or "") for t in TEXTS] != sorted(len(t or "") for t in TEXTS)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert cosines(vectors, reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_process_keeps_row_order_and_reads_a_chunked_column_with_nulls(embedder, reference):
    order = random.Random(0).sample(range(len(TEXTS)), len(TEXTS))
    texts = [TEXTS[i] for i in order]
    column = pa.chunked_array([texts[:5], texts[5:]], pa.string())
    out = embedder.process(pa.table({"id": order, "text": column}))
    assert out["id"].to_pylist() == order
    vectors = embedding_matrix(out["embedding"])
    assert cosines(vectors, reference[order]).min() >= 0.9999


def test_embeddings_do_not_depend_on_rows_per_call_or_tokens_per_batch(embedder):
    whole = embedder.embed(TEXTS)
    for options in ({"rows_per_call": 3}, {"max_tokens_per_batch": 1}, {"batch_size": 2}):
        other = TextEmbedder(**options).embed(TEXTS)
        np.testing.assert_allclose(other, whole, atol=1e-5, err_msg=str(options))


def test_a_long_text_is_tokenised_from_a_prefix_only_when_it_holds_the_kept_tokens(embedder):
    texts, lengths = embedder._measure(pa.array([t or "" for t in TEXTS], pa.large_string()))
    cut = {TEXTS[i] for i, text in enumerate(texts) if len(text) < len(TEXTS[i] or "")}
    assert ENGLISH * 80 in cut and "abc,def." * 2_000 in cut
    assert CUT_INSIDE_A_KEPT_WORD not in cut and "x" * 20_000 not in cut
    assert all(len(text) == CUT for text in texts if text not in TEXTS)
    assert lengths.max() == 256 and lengths[TEXTS.index("")] == 2


def test_a_smaller_max_length_cuts_texts_shorter_and_still_matches_encode(sentence_transformer):
    # max_length 8 keeps 6 content tokens; texts over 128 characters are cut when safe
    texts = [
        "w" * 101 + " " + "q" * 150 + " tail" * 40,  # [UNK], then a word the cut splits
        ENGLISH * 3,
        "hello " * 5 + "antidisestablishmentarianism " + ENGLISH * 3,
        "x" * 500,
        "",
    ]
    ours = TextEmbedder(max_length=8).embed(texts)
    sentence_transformer.max_seq_length = 8
    try:
        expected = sentence_transformer.encode(texts, normalize_embeddings=True)
    finally:
        sentence_transformer.max_seq_length = 256
    assert cosines(ours, expected).min() >= 0.9999


def test_the_engine_hands_the_embedder_rows_per_call_rows():
    assert TextEmbedder().batch_size == 4096
    assert TextEmbedder(rows_per_call=500, batch_size=8).batch_size == 500


@pytest.mark.parametrize(
    "name", ["batch_size", "max_length", "max_tokens_per_batch", "rows_per_call"]
)
def test_a_count_below_one_is_refused_by_name(name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1, got 0"):
        TextEmbedder(**{name: 0})
