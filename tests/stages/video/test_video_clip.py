"""CLIP over clips' frames: the clip embedding and the clip aesthetic filter, on short
generated clips, a tiny random CLIP folder and a tiny aesthetic head saved in tmp_path."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from videos import Span, write_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "image"))
from tiny_models import DIM, aesthetic_state, save_aesthetic, tiny_clip  # noqa: E402

from stages.image.aesthetic import NEMO_AESTHETIC_PATH  # noqa: E402
from stages.image.clip import NEMO_CLIP_SUBDIR, _Clip, embeddings_of  # noqa: E402
from stages.video.clip import (  # noqa: E402
    FRAME_EMBEDDINGS,
    ClipAestheticFilterStage,
    VideoEmbeddingStage,
    frame_embeddings_of,
)
from stages.video.frames import sample  # noqa: E402

torch.set_num_threads(1)
SECONDS = {"a": 3.0, "b": 2.0, "c": 1.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A NeMo-style model folder holding the tiny CLIP and the tiny aesthetic head."""
    root = tmp_path_factory.mktemp("models")
    tiny_clip(root / NEMO_CLIP_SUBDIR)
    save_aesthetic(root / NEMO_AESTHETIC_PATH)
    return {
        "nemo": str(root),
        "clip": str(root / NEMO_CLIP_SUBDIR),
        "head": str(root / NEMO_AESTHETIC_PATH),
    }


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> pa.Table:
    """Clips a (3 s), b (2 s), c (1 s) at 24 fps, 160x120, then undecodable bytes."""
    folder = tmp_path_factory.mktemp("clips")
    data = []
    for scene, (key, seconds) in enumerate(SECONDS.items()):
        path = write_video(folder / f"{key}.mp4", [Span(seconds, scene)], 24, (160, 120))
        data.append(path.read_bytes())
    rows = len(data) + 1
    return pa.table(
        {
            "id": [*SECONDS, "junk"],
            "clip": [*data, b"not a video at all"],
            "fps": [24.0] * rows,
            "width": [160] * rows,
            "height": [120] * rows,
            "duration": [*SECONDS.values(), 1.0],
        }
    )


@pytest.fixture(scope="module")
def embedded(models, clips) -> pa.Table:
    return VideoEmbeddingStage(models["clip"], model_inference_batch_size=4).process(clips)


def _direct_frame_embeddings(folder: str, data: bytes) -> np.ndarray:
    """The image stage's CLIP wrapper on the clip's frames sampled at 1 fps."""
    from PIL import Image

    return _Clip(folder).embed_images([Image.fromarray(f) for f in sample(data, fps=1.0)])


def _head_scores(vectors: np.ndarray) -> np.ndarray:
    """The tiny head's scores with plain matrix products (its dropout is idle)."""
    state = aesthetic_state()
    x = torch.from_numpy(vectors)
    for i in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
    return x[:, 0].numpy().astype(np.float64)


def test_clip_embedding_is_the_renormalised_mean_of_its_unit_frame_embeddings(
    models, clips, embedded
):
    assert embedded.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    vectors, valid = embeddings_of(embedded)
    assert valid.tolist() == [True, True, True, False]
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    frames = frame_embeddings_of(embedded)
    for row, data in enumerate(clips.column("clip").to_pylist()[:3]):
        direct = _direct_frame_embeddings(models["clip"], data)
        mean = direct.mean(axis=0)
        assert np.allclose(frames[row], direct, atol=1e-5)
        assert np.allclose(vectors[row], mean / np.linalg.norm(mean), atol=1e-5)


def test_frames_are_sampled_once_a_second(embedded):
    counts = [None if f is None else len(f) for f in frame_embeddings_of(embedded)]
    assert counts == [3, 2, 1, None]  # 3 s, 2 s, 1 s, undecodable


def test_embeddings_do_not_depend_on_the_inference_batch_size(models, clips, embedded):
    one = VideoEmbeddingStage(models["clip"], model_inference_batch_size=1).process(clips)
    assert np.allclose(embeddings_of(one)[0], embeddings_of(embedded)[0], atol=1e-5)


def test_an_undecodable_or_null_clip_gets_a_null_embedding_and_a_nan_score(models, clips):
    junk = pa.table({"id": ["x", "y"], "clip": pa.array([b"\x00" * 64, None], pa.binary())})
    table = VideoEmbeddingStage(models["clip"]).process(junk)
    assert table.column("embedding").null_count == 2
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    assert table.column(FRAME_EMBEDDINGS).null_count == 2
    scores = ClipAestheticFilterStage(models["nemo"]).score(junk)
    assert np.isnan(scores).all()


@pytest.mark.parametrize("reduction", ["min", "mean"])
def test_a_clip_scores_the_min_or_mean_of_its_frames_head_scores(models, embedded, reduction):
    stage = ClipAestheticFilterStage(models["head"], reduction=reduction)
    scores = stage.score(embedded)
    reduce = np.min if reduction == "min" else np.mean
    for row, frames in enumerate(frame_embeddings_of(embedded)[:3]):
        assert scores[row] == pytest.approx(reduce(_head_scores(frames)), abs=1e-4)
    assert np.isnan(scores[3])


def test_without_frame_embeddings_the_filter_embeds_the_frames_itself(models, clips, embedded):
    from_column = ClipAestheticFilterStage(models["head"]).score(embedded)
    nemo_folder = ClipAestheticFilterStage(models["nemo"]).score(clips)  # CLIP + head in one
    own_clip = ClipAestheticFilterStage(models["head"], clip_model=models["clip"]).score(clips)
    assert np.allclose(nemo_folder, from_column, atol=1e-4, equal_nan=True)
    assert np.allclose(own_clip, from_column, atol=1e-4, equal_nan=True)
    with pytest.raises(FileNotFoundError, match="clip_model"):
        ClipAestheticFilterStage(models["head"]).score(clips)


def test_the_threshold_keeps_clips_scoring_at_least_it_and_drops_junk(models, embedded):
    scores = ClipAestheticFilterStage(models["head"]).score(embedded)
    threshold = float(np.median(scores[:3]))
    kept = ClipAestheticFilterStage(models["head"], score_threshold=threshold).process(embedded)
    ids = embedded.column("id").to_pylist()
    expected = [key for key, s in zip(ids, scores, strict=True) if s >= threshold]
    assert kept.column("id").to_pylist() == expected
    assert 1 <= len(expected) < 3 and "junk" not in expected


def test_score_only_keeps_every_clip_with_its_aesthetic_score(models, embedded):
    stage = ClipAestheticFilterStage(models["head"], score_threshold=100.0, score_only=True)
    table = stage.process(embedded)
    assert table.num_rows == embedded.num_rows
    scores = table.column("aesthetic_score").to_numpy(zero_copy_only=False)
    assert np.isfinite(scores[:3]).all() and np.isnan(scores[3])


def test_a_reduction_other_than_min_or_mean_is_refused(models):
    with pytest.raises(ValueError, match="reduction"):
        ClipAestheticFilterStage(models["head"], reduction="max")


class _MeanColour(torch.nn.Module):
    """A stand-in video model: (1, T, 3, H, W) -> (1, 4): mean R, G, B and T."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = torch.full((1, 1), float(x.shape[1]))
        return torch.cat([x.mean(dim=(1, 3, 4)), frames], dim=1)


def test_a_torchscript_video_model_embeds_each_clip_from_its_frames(tmp_path, clips):
    path = tmp_path / "video_model.pt"
    with warnings.catch_warnings():  # torch deprecates TorchScript; the hook still reads it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_MeanColour()), str(path))
    table = VideoEmbeddingStage(os.fspath(path)).process(clips)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 4)
    assert FRAME_EMBEDDINGS not in table.column_names
    vectors, valid = embeddings_of(table)
    assert valid.tolist() == [True, True, True, False]
    for row, data in enumerate(clips.column("clip").to_pylist()[:3]):
        frames = sample(data, fps=1.0).astype(np.float64) / 255.0
        expected = np.array([*frames.mean(axis=(0, 1, 2)), len(frames)])
        assert np.allclose(vectors[row], expected / np.linalg.norm(expected), atol=1e-5)
