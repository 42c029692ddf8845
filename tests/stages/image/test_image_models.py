"""The model stages on tiny random models saved in the published layouts: CLIP embeddings
(unit norm, the same whatever the batch size, null for an undecodable image), the caption
similarity filter, the aesthetic and NSFW heads (scores equal a computation written out
here, from .safetensors and .pth alike; a wrong layout or size is a clear error), and
nudenet's bundled detector for real."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from images import jpeg, photo, png
from tiny_models import DIM, aesthetic_state, nsfw_state, save_aesthetic, save_nsfw, tiny_clip

from stages.image.aesthetic import NEMO_AESTHETIC_THRESHOLD, ImageAestheticFilterStage
from stages.image.clip import ImageEmbeddingStage, ImageTextSimilarityFilter, vectors_column
from stages.image.nsfw import ImageNSFWFilterStage, NudeNetNSFWFilterStage


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def _images() -> pa.Table:
    return pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "image": [jpeg(photo(1)), png(photo(2)), b"not an image", jpeg(photo(3))],
            "caption": ["a red river", "a garden", "junk", None],
        }
    )


def _embedded(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    valid = np.ones(n, dtype=bool)
    valid[-1] = False  # a row without an embedding
    return pa.table(
        {"id": [str(i) for i in range(n)], "embedding": vectors_column(vectors, valid, DIM)}
    )


def test_clip_embeddings_are_unit_vectors_whatever_the_batch_size(clip_dir):
    torch.set_num_threads(1)
    one = ImageEmbeddingStage(clip_dir, model_inference_batch_size=1).process(_images())
    four = ImageEmbeddingStage(clip_dir, model_inference_batch_size=4).process(_images())
    assert one.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    vectors = one.column("embedding").to_pylist()
    assert vectors[2] is None  # undecodable: no embedding, no crash
    for a, b in zip(vectors, four.column("embedding").to_pylist(), strict=True):
        if a is not None:
            assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
            assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    dropped = ImageEmbeddingStage(clip_dir, remove_image_data=True).process(_images())
    assert "image" not in dropped.column_names


def test_a_missing_clip_folder_is_named(tmp_path):
    stage = ImageEmbeddingStage(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        stage.setup()


def test_the_caption_similarity_keeps_images_without_a_caption(clip_dir):
    table = ImageEmbeddingStage(clip_dir).process(_images())
    f = ImageTextSimilarityFilter(clip_dir, min_score=1.1)  # no cosine reaches 1.1
    f.keep_score = True
    kept, removed, scores = f.apply(table)
    assert np.isnan(scores[2]) and np.isnan(scores[3])  # no embedding; no caption
    assert np.all(np.abs(scores[:2]) <= 1.0)
    assert kept.column("id").to_pylist() == ["c", "d"]
    assert "clip_score" in kept.column_names
    # Computed from the images when no embedding column is there: the same scores.
    again = ImageTextSimilarityFilter(clip_dir, min_score=1.1).score(_images())
    assert np.allclose(again[:2], scores[:2], atol=1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_aesthetic_scores_equal_the_published_stack_of_linear_layers(tmp_path, suffix):
    path = save_aesthetic(tmp_path / f"aesthetic{suffix}")
    table = _embedded(6)
    stage = ImageAestheticFilterStage(path, score_threshold=5.0)
    scores = stage.score(table)

    state = aesthetic_state()
    x = torch.tensor(np.array(table.column("embedding").to_pylist()[:5]), dtype=torch.float32)
    for index in (0, 2, 4, 6, 7):  # no activations between the layers
        x = x @ state[f"layers.{index}.weight"].T + state[f"layers.{index}.bias"]
    assert np.allclose(scores[:5], x[:, 0].numpy(), atol=1e-5)
    assert np.isnan(scores[5])
    assert np.array_equal(stage.keep(scores), np.nan_to_num(scores, nan=-1) >= 5.0)
    assert stage.score_column == "aesthetic_score" and NEMO_AESTHETIC_THRESHOLD == 0.5
    folder = ImageAestheticFilterStage(str(tmp_path), score_threshold=5.0)  # a folder of one file
    assert np.allclose(folder.score(table)[:5], scores[:5])


def test_a_head_of_another_layout_or_size_is_a_clear_error(tmp_path):
    wrong = save_nsfw(tmp_path / "nsfw.safetensors")
    with pytest.raises(ValueError, match="improved-aesthetic-predictor layout"):
        ImageAestheticFilterStage(wrong).setup()
    other = save_aesthetic(tmp_path / "a" / "aesthetic.pth", dim=DIM * 2)
    with pytest.raises(ValueError, match="32-d embeddings"):
        ImageAestheticFilterStage(other).score(_embedded(3))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_nsfw_scores_follow_the_normalised_relu_stack_and_a_sigmoid(tmp_path, suffix):
    path = save_nsfw(tmp_path / f"nsfw{suffix}")
    table = _embedded(6, seed=3)
    stage = ImageNSFWFilterStage(path, score_threshold=0.5)
    scores = stage.score(table)

    state = nsfw_state()
    x = torch.tensor(np.array(table.column("embedding").to_pylist()[:5]), dtype=torch.float32)
    x = (x - state["norm.mean"]) / state["norm.variance"].sqrt()
    for i in (1, 2, 3):
        x = torch.relu(x @ state[f"linear_{i}.weight"].T + state[f"linear_{i}.bias"])
    expected = torch.sigmoid(x @ state["linear_4.weight"].T + state["linear_4.bias"])[:, 0]
    assert np.allclose(scores[:5], expected.numpy(), atol=1e-5)
    assert np.all((scores[:5] >= 0) & (scores[:5] <= 1))
    assert np.array_equal(stage.keep(scores), np.nan_to_num(scores, nan=1.0) < 0.5)
    assert stage.score_column == "nsfw_score"


def test_nudenet_runs_its_bundled_detector_on_the_image():
    table = pa.table({"id": ["p", "bad"], "image": [jpeg(photo(7, 320, 240)), b"junk"]})
    stage = NudeNetNSFWFilterStage(score_threshold=0.5)
    stage.keep_score = True
    kept, _, scores = stage.apply(table)
    assert 0.0 <= scores[0] < 0.5 and np.isnan(scores[1])
    assert kept.column("id").to_pylist() == ["p"]
    assert kept.column("nsfw_score").to_pylist() == [scores[0]]
