"""Aesthetic score: the LAION improved-aesthetic-predictor head over CLIP image embeddings,
as NeMo Curator's `ImageAestheticFilterStage` uses it.

The head (Schuhmann, LAION "improved-aesthetic-predictor", the sac+logos+ava1-l14-linearMSE
weights NeMo downloads as ttj/sac-logos-ava1-l14-linearMSE) is a stack of linear layers with
dropout between the first four and no activation: 768 -> 1024 -> 128 -> 64 -> 16 -> 1 for
CLIP ViT-L/14. Its published state dict names the linear layers `layers.0`, `layers.2`,
`layers.4`, `layers.6` and `layers.7` (1, 3 and 5 are dropout). Scores run about 1 to 10.

NeMo's default threshold, 0.5, removes nothing on that scale; ours is 5.0 (LAION-Aesthetics'
"5+" subsets), and `NEMO_AESTHETIC_THRESHOLD` keeps NeMo's for `--preset nemo`.
"""

from __future__ import annotations

import os

import numpy as np

from stages.image.clip import EMBEDDING, EmbeddingHeadFilter, check_layout

NEMO_AESTHETIC_THRESHOLD = 0.5
AESTHETIC_THRESHOLD = 5.0
AESTHETIC_SCORE = "aesthetic_score"
# Where NeMo Curator's AestheticScorer keeps the weights under its model_dir.
NEMO_AESTHETIC_PATH = os.path.join("ttj", "sac-logos-ava1-l14-linearMSE", "model.safetensors")
LINEAR_LAYERS = (0, 2, 4, 6, 7)
DROPOUT = (0.2, 0.2, 0.1)  # after the first three linear layers; idle in eval mode
LAYOUT = [f"layers.{i}.{p}" for i in LINEAR_LAYERS for p in ("weight", "bias")]


def aesthetic_head(state: dict, path: str = "aesthetic model"):
    """The head as a torch module (eval mode): `.layers` is the published `nn.Sequential`,
    its widths read from `state`; `.in_dim` the embedding size it takes."""
    from torch import nn

    check_layout(state, LAYOUT, path, "improved-aesthetic-predictor")
    shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in LINEAR_LAYERS]
    biases = [tuple(state[f"layers.{i}.bias"].shape) for i in LINEAR_LAYERS]
    fits = all(len(s) == 2 for s in shapes)
    if not fits or any(b != (s[0],) for b, s in zip(biases, shapes, strict=True)):
        raise ValueError(f"{path}: weight shapes {shapes} and bias shapes {biases} do not fit")
    for (out_a, _), (_, in_b) in zip(shapes, shapes[1:], strict=False):
        if out_a != in_b:
            raise ValueError(f"{path}: layer sizes do not chain: {shapes}")
    if shapes[-1][0] != 1:
        raise ValueError(f"{path}: the last layer gives {shapes[-1][0]} values, not 1")
    layers: list[nn.Module] = []
    for n, (out, inp) in enumerate(shapes):
        layers.append(nn.Linear(inp, out))
        if n < len(DROPOUT):
            layers.append(nn.Dropout(DROPOUT[n]))
    head = nn.Module()
    head.layers = nn.Sequential(*layers)
    head.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    head.in_dim = shapes[0][1]
    return head.eval()


class ImageAestheticFilterStage(EmbeddingHeadFilter):
    """Keeps images whose aesthetic score (`aesthetic_score`, the LAION
    improved-aesthetic-predictor's rating, about 1 to 10) is at least `score_threshold`.

    - `model_dir`: the head's weights (`.safetensors`, or a torch state dict `.pth`/`.pt`),
      a folder holding that one file, or NeMo Curator's model folder (with
      `ttj/sac-logos-ava1-l14-linearMSE/model.safetensors`).
    - `score_threshold`: 5.0 (LAION-Aesthetics 5+); NeMo's is `NEMO_AESTHETIC_THRESHOLD`.
    - `model_inference_batch_size`: embeddings per forward pass.

    Reads `embedding_column` (L2-normalised CLIP embeddings of the size the head takes:
    768 for ViT-L/14). A row without an embedding gets a NaN score and is not kept.
    """

    what = "aesthetic model"
    nemo_path = NEMO_AESTHETIC_PATH

    def __init__(
        self,
        model_dir: str,
        score_threshold: float = AESTHETIC_THRESHOLD,
        model_inference_batch_size: int = 256,
        embedding_column: str = EMBEDDING,
    ):
        super().__init__(model_dir, score_threshold, model_inference_batch_size, embedding_column)

    @property
    def score_column(self) -> str:
        return AESTHETIC_SCORE

    def build_head(self, state: dict, path: str):
        return aesthetic_head(state, path)

    def head_layers(self):
        return self._head.layers

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.score_threshold  # NaN (no embedding) compares False
