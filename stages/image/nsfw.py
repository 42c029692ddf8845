"""NSFW scores: LAION's CLIP-based NSFW detector head, as NeMo Curator's
`ImageNSFWFilterStage` uses it, and nudenet's bundled detector for runs without CLIP.

The CLIP head (LAION's clip-autokeras-binary-nsfw, ported to torch as NeMo loads it):
the embedding normalised by the training set's mean and variance (`norm.mean`,
`norm.variance`), then `linear_1` .. `linear_4` (768 -> 64 -> 512 -> 256 -> 1 for ViT-L/14)
with ReLU between and a sigmoid at the end: 1 means NSFW. Keep score < threshold.

`NudeNetNSFWFilterStage` runs the ONNX detector that the `nudenet` package ships in its
wheel (offline, CPU through onnxruntime) on the image itself: the score is the highest
confidence among the exposed-nudity classes, 0 when none is found.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter
from stages.image.clip import EMBEDDING, embeddings_of
from stages.image.decode import load_rgb
from stages.image.heads import check_dim, check_layout, load_state_dict, weights_file

LAYOUT = ["norm.mean", "norm.variance"] + [
    f"linear_{i}.{p}" for i in range(1, 5) for p in ("weight", "bias")
]
EXPOSED = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


def nsfw_head(path: str):
    """(forward function over a float32 tensor, embedding size) of the head in `path`."""
    import torch

    state = {k: torch.as_tensor(v).float() for k, v in load_state_dict(path).items()}
    check_layout(state, LAYOUT, path, "CLIP NSFW detector")
    dim = state["norm.mean"].reshape(-1).shape[0]
    if state["linear_1.weight"].shape[1] != dim or state["linear_4.weight"].shape[0] != 1:
        raise ValueError(f"{path}: layer sizes do not fit a {dim}-d input and one output")
    mean = state["norm.mean"].reshape(-1)
    std = state["norm.variance"].reshape(-1).sqrt()

    def forward(x):
        x = (x - mean) / std
        for i in (1, 2, 3):
            x = torch.relu(x @ state[f"linear_{i}.weight"].T + state[f"linear_{i}.bias"])
        return torch.sigmoid(x @ state["linear_4.weight"].T + state["linear_4.bias"])[:, 0]

    return forward, dim


class _NsfwFilter(Filter):
    score_threshold: float

    @property
    def score_column(self) -> str:
        return "nsfw_score"

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores < self.score_threshold  # no score (no embedding): not kept


class ImageNSFWFilterStage(_NsfwFilter):
    """Keeps images whose CLIP NSFW score (`nsfw_score`) is below `score_threshold`.
    `model_dir`: the head's weights file, or a folder holding it."""

    name = "ImageNSFWFilterStage"

    def __init__(
        self,
        model_dir: str,
        score_threshold: float = 0.5,
        model_inference_batch_size: int = 256,
        embedding_column: str = EMBEDDING,
    ):
        self.model_dir = model_dir
        self.score_threshold = score_threshold
        self.model_inference_batch_size = model_inference_batch_size
        self.embedding_column = embedding_column
        self._head = None

    def setup(self) -> None:
        if self._head is None:
            self._path = weights_file(self.model_dir, "NSFW model")
            self._head = nsfw_head(self._path)

    def score(self, batch: pa.Table) -> np.ndarray:
        import torch

        self.setup()
        forward, dim = self._head
        vectors, valid = embeddings_of(batch, self.embedding_column)
        scores = np.full(batch.num_rows, np.nan)
        if not valid.any():
            return scores
        check_dim(vectors, dim, self._path)
        rows = np.flatnonzero(valid)
        size = self.model_inference_batch_size
        with torch.inference_mode():
            for start in range(0, len(rows), size):
                chunk = rows[start : start + size]
                scores[chunk] = forward(torch.from_numpy(vectors[chunk])).double().numpy()
        return scores


class NudeNetNSFWFilterStage(_NsfwFilter):
    """Keeps images whose nudenet score (`nsfw_score`: the highest confidence of an
    exposed-nudity detection, 0 when none) is below `score_threshold`. No CLIP needed.
    `threads`: onnxruntime threads per worker."""

    name = "NudeNetNSFWFilterStage"

    def __init__(self, score_threshold: float = 0.5, image_column: str = "image", threads: int = 1):
        self.score_threshold = score_threshold
        self.image_column = image_column
        self.threads = threads
        self._detector = None

    def setup(self) -> None:
        if self._detector is not None:
            return
        import os

        import nudenet
        import onnxruntime
        from nudenet import NudeDetector

        detector = NudeDetector()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")  # in its wheel
        detector.onnx_session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self._detector = detector

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        scores = np.full(batch.num_rows, np.nan)
        for i, data in enumerate(batch.column(self.image_column).to_pylist()):
            if not data:
                continue
            try:
                rgba = np.asarray(load_rgb(data).convert("RGBA"))  # nudenet converts RGBA->BGR
            except Exception:  # noqa: BLE001  (undecodable: no score; the decoder quarantines)
                continue
            found = self._detector.detect(np.ascontiguousarray(rgba))
            exposed = [d["score"] for d in found if d["class"] in EXPOSED]
            scores[i] = float(max(exposed, default=0.0))
        return scores
