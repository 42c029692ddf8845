"""NSFW scores: LAION's CLIP-based NSFW detector head, as NeMo Curator's
`ImageNSFWFilterStage` uses it, and nudenet's bundled detector for runs without CLIP.

The CLIP head is LAION's clip-autokeras-binary-nsfw (LAION-AI/CLIP-based-NSFW-Detector),
in the torch port NeMo Curator loads (`clip_autokeras_binary_nsfw.pth`): the embedding
is standardised by the training set's statistics, `(x - norm.mean) / sqrt(norm.variance)`,
then `linear_1` .. `linear_4` (768 -> 64 -> 512 -> 256 -> 1 for ViT-L/14) with ReLU
between and a sigmoid at the end: 1 means NSFW. Keep score < threshold (NeMo's rule).

`NudeNetNSFWFilterStage` runs the ONNX detector that the `nudenet` package ships in its
wheel (offline, CPU through onnxruntime) on the image itself: the score is the highest
confidence among the exposed-nudity classes, 0 when none is found.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources
from stages.image.clip import EMBEDDING, EmbeddingHeadFilter, check_layout
from stages.image.decode import load_rgb

NSFW_SCORE = "nsfw_score"
NSFW_THRESHOLD = 0.5
# Where NeMo Curator's NSFWScorer keeps the weights under its model_dir.
NEMO_NSFW_PATH = os.path.join(
    "laion", "clip-autokeras-binary-nsfw", "clip_autokeras_binary_nsfw.pth"
)
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


def nsfw_head(state: dict, path: str = "NSFW model"):
    """The head as a torch module (eval mode) with the published state dict's layout:
    `norm` (buffers `mean`, `variance`), `linear_1` .. `linear_4`; `.in_dim` the embedding
    size it takes. The widths are read from `state`."""
    import torch
    from torch import nn

    check_layout(state, LAYOUT, path, "CLIP NSFW detector")
    dim = int(state["norm.mean"].numel())
    shapes = [tuple(state[f"linear_{i}.weight"].shape) for i in range(1, 5)]
    fits = state["norm.variance"].numel() == dim and all(len(s) == 2 for s in shapes)
    fits = fits and shapes[0][1] == dim and shapes[-1][0] == 1
    fits = fits and all(a[0] == b[1] for a, b in zip(shapes, shapes[1:], strict=False))
    fits = fits and all(
        tuple(state[f"linear_{i}.bias"].shape) == (shapes[i - 1][0],) for i in range(1, 5)
    )
    if not fits:
        raise ValueError(
            f"{path}: the CLIP NSFW detector's sizes do not fit: norm {dim}, linear {shapes}"
        )

    class Normalization(nn.Module):
        def __init__(self, size: int):
            super().__init__()
            self.register_buffer("mean", torch.zeros(size))
            self.register_buffer("variance", torch.ones(size))

        def forward(self, x):
            # No epsilon: the published port divides by the square root as it is.
            return (x - self.mean) / self.variance.sqrt()

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Normalization(dim)
            for i, (out, inp) in enumerate(shapes, start=1):
                setattr(self, f"linear_{i}", nn.Linear(inp, out))
            self.act = nn.ReLU()
            self.act_out = nn.Sigmoid()
            self.in_dim = dim

        def forward(self, x):
            x = self.norm(x)
            x = self.act(self.linear_1(x))
            x = self.act(self.linear_2(x))
            x = self.act(self.linear_3(x))
            return self.act_out(self.linear_4(x))

    head = Head()
    tensors = {
        k: v.float().reshape(-1) if k.startswith("norm.") else v.float() for k, v in state.items()
    }
    head.load_state_dict(tensors, strict=True)
    return head.eval()


class _NsfwFilter(Filter):
    score_threshold: float

    @property
    def score_column(self) -> str:
        return NSFW_SCORE

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores < self.score_threshold  # NaN (nothing to judge) compares False


class ImageNSFWFilterStage(_NsfwFilter, EmbeddingHeadFilter):
    """Keeps images whose CLIP NSFW score (`nsfw_score`, the probability LAION's
    clip-autokeras-binary-nsfw head gives the image being NSFW) is below `score_threshold`.

    - `model_dir`: the head's weights (a torch state dict `.pth`/`.pt`, or `.safetensors`),
      a folder holding that one file, or NeMo Curator's model folder (with
      `laion/clip-autokeras-binary-nsfw/clip_autokeras_binary_nsfw.pth`).
    - `score_threshold`: 0.5, as NeMo's.
    - `model_inference_batch_size`: embeddings per forward pass.

    Reads `embedding_column` (L2-normalised CLIP embeddings of the size the head takes:
    768 for ViT-L/14). A row without an embedding gets a NaN score and is not kept: what
    cannot be checked does not pass.
    """

    what = "NSFW model"
    nemo_path = NEMO_NSFW_PATH

    def __init__(
        self,
        model_dir: str,
        score_threshold: float = NSFW_THRESHOLD,
        model_inference_batch_size: int = 256,
        embedding_column: str = EMBEDDING,
    ):
        super().__init__(model_dir, score_threshold, model_inference_batch_size, embedding_column)

    def build_head(self, state: dict, path: str):
        return nsfw_head(state, path)


def nudenet_input(image) -> np.ndarray:
    """A PIL RGB image as the array nudenet's `detect` takes: 8-bit BGR, 3 channels, what
    `cv2.imread` gives. nudenet swaps red and blue twice on the way in (`cvtColor`, then
    `blobFromImage(swapRB=True)`), so this array reaches the network exactly as the same
    image given to `detect` as a file or as bytes does."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


class NudeNetNSFWFilterStage(_NsfwFilter):
    """Keeps images whose nudenet score (`nsfw_score`: the highest confidence of an
    exposed-nudity detection, 0 when there is none) is below `score_threshold`. No CLIP
    needed: nudenet's detector (a YOLOv8n ONNX model at 320 px, shipped in its wheel) runs
    on the image, on CPU through onnxruntime.

    Exposed-nudity classes: female breast, female genitalia, male genitalia, buttocks and
    anus, exposed (`EXPOSED`). `threads`: onnxruntime's intra-op threads per worker (1:
    the engine runs one worker per CPU). An undecodable image gets a NaN score and is not
    kept.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        score_threshold: float = NSFW_THRESHOLD,
        image_column: str = "image",
        threads: int = 1,
    ):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.score_threshold = score_threshold
        self.image_column = image_column
        self.threads = threads
        self._detector = None

    def setup(self) -> None:
        if self._detector is not None:
            return
        import nudenet
        import onnxruntime
        from nudenet import NudeDetector

        model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")  # in its wheel
        if not os.path.isfile(model):
            raise FileNotFoundError(f"{self.stage_name}: nudenet's model {model!r} is missing")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # NudeDetector builds its session with onnxruntime's defaults (a thread per core)
        # and takes no options: its session is replaced by one with ours.
        detector = NudeDetector(model_path=model)
        detector.onnx_session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        detector.input_name = detector.onnx_session.get_inputs()[0].name
        self._detector = detector

    def detect(self, data: bytes | None) -> list[dict] | None:
        """nudenet's detections (`class`, `score`, `box`) in encoded image `data`; None
        when there is no image or it does not decode."""
        self.setup()
        if not data:
            return None
        try:
            image = load_rgb(data)
        except Exception:  # noqa: BLE001  (undecodable: no score; the decoder quarantines)
            return None
        return self._detector.detect(nudenet_input(image))

    def score(self, batch: pa.Table) -> np.ndarray:
        if self.image_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no image column {self.image_column!r} "
                f"(columns: {batch.column_names})"
            )
        scores = np.full(batch.num_rows, np.nan)
        for i, data in enumerate(batch.column(self.image_column).to_pylist()):
            found = self.detect(data)
            if found is not None:
                exposed = [d["score"] for d in found if d["class"] in EXPOSED]
                scores[i] = float(max(exposed, default=0.0))
        return scores
