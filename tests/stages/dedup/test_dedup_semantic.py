from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from stages.dedup.embed import TextEmbedder, embedding_array, embedding_matrix
from stages.dedup.semantic import (
    assign_clusters,
    eps_table,
    keep_order,
    kmeans_fit,
    max_similarity_to_earlier,
    semantic_duplicates,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDS = "the a cat dog sat on mat was sitting stock markets fell today".split()
TEXTS = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat.",
    "Stock markets fell today.",
    "the dog",
    "",
    "zebras quietly graze beside the river while the sun sets over the hills " * 3,
    "a",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT (hidden size 32) saved as a sentence-transformers
    model: exercises the real loading and inference code in milliseconds."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-model")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz.,"]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(root / "hf")
    BertTokenizer(vocab_file=str(root / "vocab.txt")).save_pretrained(root / "hf")
    transformer = Transformer(str(root / "hf"), max_seq_length=64)
    pooling = Pooling(32, "mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(root / "st"))
    return str(root / "st")


def docs(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


# --- TextEmbedder -------------------------------------------------------------------------


def test_embedder_adds_a_fixed_size_float32_embedding_of_unit_norm(tiny_model):
    embedder = TextEmbedder(model=tiny_model)
    out = embedder.process(docs(TEXTS))
    assert out.column_names == ["id", "text", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    vectors = embedding_matrix(out.column("embedding"))
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedder_output_does_not_depend_on_batch_boundaries(tiny_model):
    whole = embedding_matrix(
        TextEmbedder(model=tiny_model, batch_size=64).process(docs(TEXTS))["embedding"]
    )
    small = TextEmbedder(model=tiny_model, batch_size=2)
    pieces = [
        embedding_matrix(small.process(docs(TEXTS).slice(start, 3))["embedding"])
        for start in range(0, len(TEXTS), 3)
    ]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


def test_embedder_treats_null_text_as_empty_and_identical_texts_alike(tiny_model):
    out = TextEmbedder(model=tiny_model).process(docs([None, "", "the cat", "the cat"]))
    vectors = embedding_matrix(out["embedding"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[2], vectors[3], atol=1e-6)
    assert not np.allclose(vectors[1], vectors[2], atol=1e-3)


def test_embedder_truncates_to_max_length(tiny_model):
    long_a = "the cat sat on the mat " + "dog " * 50
    long_b = "the cat sat on the mat " + "stock " * 50
    out = TextEmbedder(model=tiny_model, max_length=8).process(docs([long_a, long_b]))
    vectors = embedding_matrix(out["embedding"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_embedder_without_normalize_keeps_raw_pooled_norms(tiny_model):
    out = TextEmbedder(model=tiny_model, normalize=False).process(docs(["the cat sat", "dog"]))
    norms = np.linalg.norm(embedding_matrix(out["embedding"]), axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)


def test_embedder_asks_for_a_gpu_fraction_only_when_told():
    assert TextEmbedder().resources.gpus == 0.0
    assert TextEmbedder(gpus=0.25).resources.gpus == 0.25
    assert TextEmbedder.resources.gpus == 0.0
    assert TextEmbedder().is_stateful


def test_embedder_reports_a_missing_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        TextEmbedder(model=str(tmp_path / "absent")).setup()


def test_embedder_reports_a_missing_text_column(tiny_model):
    with pytest.raises(KeyError, match="content"):
        TextEmbedder(model=tiny_model, text_field="content").process(docs(["x"]))


def test_bundled_minilm_finds_paraphrases_closer_than_unrelated_sentences():
    embedder = TextEmbedder()
    out = embedder.process(
        docs(
            [
                "The cat sat on the mat.",
                "A cat was sitting on the mat.",
                "Quarterly revenue grew by twelve percent.",
            ]
        )
    )
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    v = embedding_matrix(out["embedding"])
    paraphrase, unrelated = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert paraphrase > 0.8
    assert paraphrase > unrelated + 0.5


# --- k-means ------------------------------------------------------------------------------


def blobs(seed: int = 0, per: int = 50, k: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(k, dim)))
    labels = np.repeat(np.arange(k), per)
    points = unit(centers[labels] + 0.05 * rng.normal(size=(k * per, dim)))
    return points, labels


def test_kmeans_is_deterministic_for_a_seed():
    points, _ = blobs()
    first = kmeans_fit(points, 4, seed=7)
    again = kmeans_fit(points, 4, seed=7)
    assert first.shape == (4, 16) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)


def test_kmeans_on_a_sample_is_deterministic_and_assigns_each_row_its_nearest_centroid():
    points, _ = blobs(per=200)
    first = kmeans_fit(points, 4, seed=3, sample=100)
    np.testing.assert_array_equal(first, kmeans_fit(points, 4, seed=3, sample=100))
    assert not np.array_equal(first, kmeans_fit(points, 4, seed=3, sample=None))
    cluster, distance = assign_clusters(points, first)
    assert cluster.dtype == np.int32 and distance.dtype == np.float32
    squared = ((points[:, None, :] - first[None, :, :]) ** 2).sum(axis=2)
    assert cluster.tolist() == squared.argmin(axis=1).tolist()
    centers = unit(first)[cluster]
    np.testing.assert_allclose(distance, 1 - (points * centers).sum(axis=1), atol=1e-6)


def test_kmeans_refuses_more_clusters_than_rows():
    with pytest.raises(ValueError, match="3 embeddings cannot make 5 clusters"):
        kmeans_fit(np.eye(3, dtype=np.float32), 5)


def test_assign_clusters_gives_cosine_distance_to_the_nearest_centroid():
    centroids = np.eye(3, dtype=np.float32)
    points = unit(np.array([[1, 0.1, 0], [0, 0, 2], [0, 1, 1.01]], dtype=np.float32))
    cluster, distance = assign_clusters(points, centroids)
    assert cluster.tolist() == [0, 2, 2]
    expected = 1 - np.array([points[0, 0], points[1, 2], points[2, 2]])
    np.testing.assert_allclose(distance, expected, atol=1e-6)


# --- per-cluster duplicates ---------------------------------------------------------------


def planted_cluster() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Three copies of one vector (near, mid, far from the centroid by the given distances)
    plus a slightly perturbed copy, and two unrelated vectors."""
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=16))
    near_copy = unit(base + 0.001 * rng.normal(size=16))
    others = unit(rng.normal(size=(2, 16)))
    embeddings = np.stack([base, base, base, near_copy, *others]).astype(np.float32)
    ids = ["near", "mid", "far", "perturbed", "other1", "other2"]
    distances = np.array([0.1, 0.2, 0.3, 0.25, 0.5, 0.6], dtype=np.float32)
    return ids, embeddings, distances


def test_hard_keeps_the_copy_farthest_from_the_centroid():
    ids, embeddings, distances = planted_cluster()
    out = semantic_duplicates(ids, embeddings, distances, eps=0.01, keep="hard")
    assert out.schema.names == ["id", "duplicate_of", "similarity"]
    assert out.schema.field("similarity").type == pa.float32()
    assert sorted(out["id"].to_pylist()) == ["mid", "near", "perturbed"]
    assert set(out["duplicate_of"].to_pylist()) == {"far"}
    assert min(out["similarity"].to_pylist()) >= 0.99


def test_easy_keeps_the_copy_nearest_the_centroid():
    ids, embeddings, distances = planted_cluster()
    out = semantic_duplicates(ids, embeddings, distances, eps=0.01, keep="easy")
    assert sorted(out["id"].to_pylist()) == ["far", "mid", "perturbed"]
    assert set(out["duplicate_of"].to_pylist()) == {"near"}


def test_random_keeps_one_copy_whatever_the_input_order():
    ids, embeddings, distances = planted_cluster()
    out = semantic_duplicates(ids, embeddings, distances, eps=0.01, keep="random", seed=5)
    assert len(out) == 3
    kept = {"near", "mid", "far", "perturbed"} - set(out["id"].to_pylist())
    assert len(kept) == 1 and set(out["duplicate_of"].to_pylist()) == kept
    flipped = semantic_duplicates(
        ids[::-1], embeddings[::-1], distances[::-1], eps=0.01, keep="random", seed=5
    )
    assert flipped.equals(out)


def test_identical_vectors_are_duplicates_even_at_tiny_eps_but_a_perturbed_one_is_not():
    ids, embeddings, distances = planted_cluster()
    out = semantic_duplicates(ids, embeddings, distances, eps=1e-7, keep="hard")
    assert sorted(out["id"].to_pylist()) == ["mid", "near"]


def test_result_does_not_depend_on_input_order_or_block_size():
    rng = np.random.default_rng(2)
    base = unit(rng.normal(size=(40, 8)))
    embeddings = unit(np.concatenate([base, base + 0.05 * rng.normal(size=(40, 8))]))
    ids = [f"x{i:03d}" for i in range(80)]
    distances = rng.random(80).astype(np.float32)
    reference = semantic_duplicates(ids, embeddings, distances, eps=0.05, block_size=1024)
    assert len(reference) > 0
    perm = rng.permutation(80)
    for block in (1, 7, 16):
        out = semantic_duplicates(
            [ids[i] for i in perm], embeddings[perm], distances[perm], eps=0.05, block_size=block
        )
        assert out.equals(reference)


def test_ties_in_distance_are_broken_by_id():
    order = keep_order(["b", "a", "c"], np.array([0.5, 0.5, 0.1]), "hard")
    assert order.tolist() == [1, 0, 2]
    order = keep_order(["b", "a", "c"], np.array([0.5, 0.5, 0.1]), "easy")
    assert order.tolist() == [2, 1, 0]


def test_orthogonal_vectors_have_no_duplicates():
    embeddings = np.eye(12, dtype=np.float32)
    ids = [f"o{i}" for i in range(12)]
    out = semantic_duplicates(ids, embeddings, np.zeros(12, np.float32), eps=0.5)
    assert len(out) == 0
    assert out.schema.names == ["id", "duplicate_of", "similarity"]


def test_max_similarity_compares_only_with_earlier_items():
    embeddings = unit(np.array([[1, 0], [0, 1], [1, 0.01], [0.6, 0.8]], dtype=np.float32))
    best, best_at = max_similarity_to_earlier(embeddings, block_size=2)
    assert best_at.tolist() == [-1, 0, 0, 1]
    assert best[0] == -np.inf
    np.testing.assert_allclose(best[1:], [0.0, embeddings[2] @ embeddings[0], 0.8], atol=1e-5)


def test_all_items_lists_every_item_with_its_max_similarity_and_rank():
    ids, embeddings, distances = planted_cluster()
    table = semantic_duplicates(ids, embeddings, distances, eps=None, keep="hard", all_items=True)
    assert table.num_rows == 6
    assert table["rank"].to_pylist() == list(range(6))
    assert table["id"].to_pylist()[0] == "other2"  # farthest from the centroid
    assert table["similarity"][0].as_py() is None and table["duplicate_of"][0].as_py() is None
    duplicates = semantic_duplicates(ids, embeddings, distances, eps=0.01, keep="hard")
    at_eps = table.filter(pa.compute.greater_equal(table["similarity"], np.float32(0.99)))
    assert sorted(at_eps["id"].to_pylist()) == sorted(duplicates["id"].to_pylist())


def test_larger_eps_removes_at_least_as_many_and_eps_table_agrees():
    rng = np.random.default_rng(4)
    base = unit(rng.normal(size=(30, 8)))
    noisy = unit(
        np.concatenate([base, base + rng.uniform(0, 0.3, size=(30, 1)) * rng.normal(size=(30, 8))])
    )
    ids = [f"n{i}" for i in range(60)]
    distances = rng.random(60).astype(np.float32)
    eps_values = (0.001, 0.01, 0.05, 0.1, 0.3)
    counts = [len(semantic_duplicates(ids, noisy, distances, eps=e)) for e in eps_values]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    table = semantic_duplicates(ids, noisy, distances, eps=None, all_items=True)
    records = eps_table(table["similarity"], eps_values)
    assert [r["removed"] for r in records] == counts
    assert all(r["kept"] + r["removed"] == 60 for r in records)
    assert records[0]["eps"] == 0.001 and records[0]["threshold"] == pytest.approx(0.999)


def test_semantic_duplicates_rejects_repeated_ids():
    with pytest.raises(ValueError, match="unique"):
        semantic_duplicates(["a", "a"], np.eye(2, dtype=np.float32), np.zeros(2), eps=0.1)


def test_embedding_array_round_trips():
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    array = embedding_array(vectors)
    assert array.type == pa.list_(pa.float32(), 2)
    np.testing.assert_array_equal(embedding_matrix(array), vectors)


def test_empty_and_single_item_clusters_have_no_duplicates():
    empty = semantic_duplicates([], np.zeros((0, 4), np.float32), np.zeros(0), eps=0.1)
    assert empty.num_rows == 0 and empty.schema.names == ["id", "duplicate_of", "similarity"]
    single = semantic_duplicates(
        np.array([7]), np.ones((1, 4), np.float32), np.zeros(1), eps=None, all_items=True
    )
    assert single["id"].to_pylist() == ["7"] and single["similarity"].to_pylist() == [None]
    assert eps_table(single["similarity"], (0.1,))[0]["removed"] == 0
