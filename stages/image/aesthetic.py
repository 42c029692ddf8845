"""Aesthetic score: the LAION improved-aesthetic-predictor head over CLIP image embeddings,
as NeMo Curator's `ImageAestheticFilterStage` uses it.

The head is a stack of linear layers with dropout between the first four and no
activation (768 -> 1024 -> 128 -> 64 -> 16 -> 1 for CLIP ViT-L/14); its published state
dict names them `layers.0`, `layers.2`, `layers.4`, `layers.6` and `layers.7` (the
others are dropout). Scores run about 1 to 10.

NeMo's default threshold, 0.5, removes nothing on that scale; ours is 5.0 (LAION-Aesthetics'
"5+" subsets), and `NEMO_AESTHETIC_THRESHOLD` keeps NeMo's for `--preset nemo`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter
from stages.image.clip import EMBEDDING, embeddings_of
from stages.image.heads import check_dim, check_layout, load_state_dict, weights_file

NEMO_AESTHETIC_THRESHOLD = 0.5
LINEAR_LAYERS = (0, 2, 4, 6, 7)
LAYOUT = [f"layers.{i}.{p}" for i in LINEAR_LAYERS for p in ("weight", "bias")]


def aesthetic_head(path: str):
    """The torch module of the head in the weights file `path` (eval mode, CPU)."""
    import torch
    from torch import nn

    state = load_state_dict(path)
    check_layout(state, LAYOUT, path, "improved-aesthetic-predictor")
    shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in LINEAR_LAYERS]
    for (out_a, _), (_, in_b) in zip(shapes, shapes[1:], strict=False):
        if out_a != in_b:
            raise ValueError(f"{path}: layer sizes do not chain: {shapes}")
    if shapes[-1][0] != 1:
        raise ValueError(f"{path}: the last layer gives {shapes[-1][0]} values, not 1")
    layers: list[nn.Module] = []
    for n, (out, inp) in enumerate(shapes):
        layers.append(nn.Linear(inp, out))
        if n < 3:
            layers.append(nn.Dropout(0.0))  # dropout at index 1, 3, 5: no weights
    head = nn.Module()
    head.layers = nn.Sequential(*layers)
    head.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    head.in_dim = shapes[0][1]
    return head.eval()


class ImageAestheticFilterStage(Filter):
    """Keeps images whose aesthetic score (`aesthetic_score`) is at least
    `score_threshold`. `model_dir`: the head's weights file, or a folder holding it."""

    name = "ImageAestheticFilterStage"

    def __init__(
        self,
        model_dir: str,
        score_threshold: float = 5.0,
        model_inference_batch_size: int = 256,
        embedding_column: str = EMBEDDING,
    ):
        self.model_dir = model_dir
        self.score_threshold = score_threshold
        self.model_inference_batch_size = model_inference_batch_size
        self.embedding_column = embedding_column
        self._head = None

    @property
    def score_column(self) -> str:
        return "aesthetic_score"

    def setup(self) -> None:
        if self._head is None:
            self._path = weights_file(self.model_dir, "aesthetic model")
            self._head = aesthetic_head(self._path)

    def score(self, batch: pa.Table) -> np.ndarray:
        import torch

        self.setup()
        vectors, valid = embeddings_of(batch, self.embedding_column)
        scores = np.full(batch.num_rows, np.nan)
        if not valid.any():
            return scores
        check_dim(vectors, self._head.in_dim, self._path)
        rows = np.flatnonzero(valid)
        size = self.model_inference_batch_size
        with torch.inference_mode():
            for start in range(0, len(rows), size):
                chunk = rows[start : start + size]
                out = self._head.layers(torch.from_numpy(vectors[chunk]))
                scores[chunk] = out[:, 0].double().numpy()
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.score_threshold  # no embedding, no score: not kept
