"""The LAION improved-aesthetic-predictor head, on tiny random state dicts saved in the
published layout (.safetensors and .pth) and loaded by path through the stage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from tiny_models import DIM, aesthetic_state, save_aesthetic, save_nsfw, save_state

from stages.image.aesthetic import (
    AESTHETIC_THRESHOLD,
    NEMO_AESTHETIC_PATH,
    NEMO_AESTHETIC_THRESHOLD,
    ImageAestheticFilterStage,
)
from stages.image.clip import vectors_column

torch.set_num_threads(1)


def _embedded(n: int, dim: int = DIM, seed: int = 0) -> pa.Table:
    """n unit vectors; the last row has no embedding."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    valid = np.ones(n, dtype=bool)
    valid[-1] = False
    ids = [str(i) for i in range(n)]
    return pa.table({"id": ids, "embedding": vectors_column(vectors, valid, dim)})


def _reference(table: pa.Table, state: dict) -> np.ndarray:
    """The published head written out: linear layers 0, 2, 4, 6, 7, no activations
    (dropout does nothing at inference)."""
    rows = [v for v in table.column("embedding").to_pylist() if v is not None]
    x = torch.tensor(rows, dtype=torch.float32)
    for index in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{index}.weight"].T + state[f"layers.{index}.bias"]
    return x[:, 0].numpy()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt"])
def test_scores_equal_the_published_stack_of_linear_layers(tmp_path, suffix):
    path = save_aesthetic(tmp_path / f"aesthetic{suffix}")
    table = _embedded(6)

    scores = ImageAestheticFilterStage(path).score(table)

    assert np.allclose(scores[:5], _reference(table, aesthetic_state()), atol=1e-5)
    assert np.isnan(scores[5])  # no embedding, no score


def test_scores_do_not_depend_on_the_inference_batch_size(tmp_path):
    path = save_aesthetic(tmp_path / "aesthetic.safetensors")
    table = _embedded(7)
    one = ImageAestheticFilterStage(path, model_inference_batch_size=2).score(table)
    many = ImageAestheticFilterStage(path).score(table)
    assert np.allclose(one, many, atol=1e-6, equal_nan=True)


def test_a_row_is_kept_at_the_threshold_and_the_score_is_a_column(tmp_path):
    path = save_aesthetic(tmp_path / "aesthetic.safetensors")
    table = _embedded(6)
    scores = ImageAestheticFilterStage(path).score(table)
    middle = float(np.sort(scores[:5])[2])

    stage = ImageAestheticFilterStage(path, score_threshold=middle)
    stage.keep_score = True
    kept, removed, _ = stage.apply(table)

    assert kept.column("id").to_pylist() == [str(i) for i in range(5) if scores[i] >= middle]
    assert kept.num_rows == 3 and removed.num_rows == 3  # the row without an embedding goes
    assert stage.score_column == "aesthetic_score"
    assert kept.column("aesthetic_score").to_pylist() == [s for s in scores if s >= middle]


def test_defaults_are_ours_and_nemos_threshold_is_kept_apart(tmp_path):
    stage = ImageAestheticFilterStage(str(tmp_path))
    assert stage.score_threshold == AESTHETIC_THRESHOLD == 5.0
    assert NEMO_AESTHETIC_THRESHOLD == 0.5
    assert stage.model_inference_batch_size >= 1


def test_the_model_is_a_file_a_folder_of_one_file_or_nemos_folder(tmp_path):
    table = _embedded(4)
    expected = ImageAestheticFilterStage(save_aesthetic(tmp_path / "a.pth")).score(table)
    one = tmp_path / "one"
    save_aesthetic(one / "sac+logos+ava1-l14-linearMSE.pth")
    assert np.allclose(ImageAestheticFilterStage(str(one)).score(table), expected, equal_nan=True)
    nemo = tmp_path / "nemo"
    save_aesthetic(nemo / NEMO_AESTHETIC_PATH)
    assert np.allclose(ImageAestheticFilterStage(str(nemo)).score(table), expected, equal_nan=True)


def test_a_missing_or_ambiguous_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageAestheticFilterStage(str(tmp_path / "nowhere")).setup()
    save_aesthetic(tmp_path / "two" / "a.pth")
    save_aesthetic(tmp_path / "two" / "b.safetensors")
    with pytest.raises(FileNotFoundError, match=r"one weights file.*a\.pth"):
        ImageAestheticFilterStage(str(tmp_path / "two")).setup()


def test_a_head_of_another_layout_is_a_clear_error(tmp_path):
    nsfw = save_nsfw(tmp_path / "nsfw.safetensors")
    with pytest.raises(ValueError, match="improved-aesthetic-predictor layout.*layers.0.weight"):
        ImageAestheticFilterStage(nsfw).setup()
    state = aesthetic_state()
    state["layers.4.weight"] = torch.zeros(8, 7)  # takes 7 values, gets 16
    broken = save_state(state, tmp_path / "broken.safetensors")
    with pytest.raises(ValueError, match="do not chain"):
        ImageAestheticFilterStage(broken).setup()
    pickled = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(DIM, 1), pickled)  # a whole module, not a state dict
    with pytest.raises(ValueError, match="not a plain state dict"):
        ImageAestheticFilterStage(str(pickled)).setup()


def test_embeddings_of_another_size_are_a_clear_error(tmp_path):
    head = save_aesthetic(tmp_path / "aesthetic.pth", dim=DIM * 2)
    with pytest.raises(ValueError, match=f"takes {DIM * 2}-d embeddings.*holds {DIM}-d"):
        ImageAestheticFilterStage(head).score(_embedded(3))
    with pytest.raises(KeyError, match="ImageEmbeddingStage"):
        ImageAestheticFilterStage(head).score(pa.table({"id": ["x"]}))
