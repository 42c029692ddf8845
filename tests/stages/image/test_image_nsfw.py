"""NSFW filters: LAION's CLIP NSFW head on tiny random state dicts saved in the layout
NeMo Curator loads (.pth and .safetensors), and nudenet's bundled detector, for real."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from images import gradient, jpeg, photo, png
from tiny_models import DIM, nsfw_state, save_aesthetic, save_nsfw, save_state

from stages.image.clip import vectors_column
from stages.image.decode import load_rgb
from stages.image.nsfw import (
    NEMO_NSFW_PATH,
    ImageNSFWFilterStage,
    NudeNetNSFWFilterStage,
    nudenet_input,
)

torch.set_num_threads(1)


def _embedded(n: int, dim: int = DIM, seed: int = 3) -> pa.Table:
    """n unit vectors; the last row has no embedding."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    valid = np.ones(n, dtype=bool)
    valid[-1] = False
    ids = [str(i) for i in range(n)]
    return pa.table({"id": ids, "embedding": vectors_column(vectors, valid, dim)})


def _reference(table: pa.Table, state: dict) -> np.ndarray:
    """NeMo's NSFWModel written out: standardise by norm.mean and sqrt(norm.variance),
    linear_1..3 each with a ReLU, linear_4, sigmoid."""
    rows = [v for v in table.column("embedding").to_pylist() if v is not None]
    x = torch.tensor(rows, dtype=torch.float32)
    x = (x - state["norm.mean"]) / torch.sqrt(state["norm.variance"])
    for i in (1, 2, 3):
        x = torch.clamp(x @ state[f"linear_{i}.weight"].T + state[f"linear_{i}.bias"], min=0)
    x = x @ state["linear_4.weight"].T + state["linear_4.bias"]
    return (1 / (1 + torch.exp(-x)))[:, 0].numpy()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_clip_scores_follow_the_standardised_relu_stack_and_a_sigmoid(tmp_path, suffix):
    path = save_nsfw(tmp_path / f"nsfw{suffix}")
    table = _embedded(6)

    scores = ImageNSFWFilterStage(path).score(table)

    assert np.allclose(scores[:5], _reference(table, nsfw_state()), atol=1e-5)
    assert np.all((scores[:5] > 0) & (scores[:5] < 1))
    assert np.isnan(scores[5])


def test_a_row_at_the_threshold_is_removed_and_the_score_is_a_column(tmp_path):
    path = save_nsfw(tmp_path / "nsfw.pth")
    table = _embedded(6)
    scores = ImageNSFWFilterStage(path).score(table)
    middle = float(np.sort(scores[:5])[2])

    stage = ImageNSFWFilterStage(path, score_threshold=middle)
    stage.keep_score = True
    kept, removed, _ = stage.apply(table)

    assert kept.column("id").to_pylist() == [str(i) for i in range(5) if scores[i] < middle]
    assert kept.num_rows == 2 and removed.num_rows == 4  # no embedding: not kept either
    assert stage.score_column == "nsfw_score"
    assert kept.column("nsfw_score").to_pylist() == [s for s in scores if s < middle]
    assert ImageNSFWFilterStage(path).score_threshold == 0.5


def test_nemos_model_folder_and_a_folder_of_one_file_are_read(tmp_path):
    table = _embedded(4)
    expected = ImageNSFWFilterStage(save_nsfw(tmp_path / "file.pth")).score(table)
    save_nsfw(tmp_path / "nemo" / NEMO_NSFW_PATH)
    nemo = ImageNSFWFilterStage(str(tmp_path / "nemo")).score(table)
    save_nsfw(tmp_path / "one" / "clip_autokeras_binary_nsfw.pth")
    one = ImageNSFWFilterStage(str(tmp_path / "one")).score(table)
    assert np.allclose(nemo, expected, equal_nan=True)
    assert np.allclose(one, expected, equal_nan=True)


def test_a_head_of_another_layout_or_size_is_a_clear_error(tmp_path):
    aesthetic = save_aesthetic(tmp_path / "aesthetic.pth")
    with pytest.raises(ValueError, match="CLIP NSFW detector layout.*norm.mean"):
        ImageNSFWFilterStage(aesthetic).setup()
    state = nsfw_state()
    state["norm.variance"] = torch.ones(DIM + 1)
    broken = save_state(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="sizes do not fit"):
        ImageNSFWFilterStage(broken).setup()
    wide = save_nsfw(tmp_path / "wide.safetensors", dim=DIM * 2)
    with pytest.raises(ValueError, match=f"takes {DIM * 2}-d embeddings.*holds {DIM}-d"):
        ImageNSFWFilterStage(wide).score(_embedded(3))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageNSFWFilterStage(str(tmp_path / "nowhere")).setup()


@pytest.fixture(scope="module")
def nudenet():
    stage = NudeNetNSFWFilterStage()
    stage.setup()
    return stage


def test_nudenet_scores_a_gradient_low_and_keeps_it(nudenet):
    table = pa.table(
        {"id": ["g", "p", "bad"], "image": [png(gradient(320, 240)), jpeg(photo(7)), b"junk"]}
    )
    nudenet.keep_score = True
    kept, removed, scores = nudenet.apply(table)
    nudenet.keep_score = False

    assert 0.0 <= scores[0] < 0.5 and 0.0 <= scores[1] < 0.5
    assert np.isnan(scores[2])  # undecodable: no score, not kept
    assert kept.column("id").to_pylist() == ["g", "p"]
    assert removed.column("id").to_pylist() == ["bad"]
    assert kept.column("nsfw_score").to_pylist() == scores[:2].tolist()
    assert nudenet.score_column == "nsfw_score" and nudenet.score_threshold == 0.5


def test_nudenet_sees_the_image_as_it_sees_an_encoded_file():
    from nudenet.nudenet import _read_image

    data = png(photo(11, 200, 150))  # lossless: cv2 and Pillow decode the same pixels
    from_file = _read_image(data)[0]
    from_array = _read_image(nudenet_input(load_rgb(data)))[0]
    assert np.array_equal(from_array, from_file)


def test_nudenet_runs_one_onnxruntime_thread_per_worker_unless_told(nudenet):
    options = nudenet._detector.onnx_session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert nudenet._detector.onnx_session.get_providers() == ["CPUExecutionProvider"]
    two = NudeNetNSFWFilterStage(threads=2)
    two.setup()
    assert two._detector.onnx_session.get_session_options().intra_op_num_threads == 2
