"""CLIP over a clip's frames: the clip embedding and NeMo Curator's clip aesthetic filter.

A clip's frames are sampled at `target_fps` (1 a second by default, as NeMo samples them
for aesthetics; a clip shorter than a second gives its first frame) and each frame gets
the image flow's L2-normalised CLIP embedding (`stages.image.clip`), batched across the
clips of a batch.

- `VideoEmbeddingStage` writes `embedding`, the mean of the unit frame embeddings,
  re-normalised, and keeps the frame embeddings in `frame_embeddings` (a list of
  fixed-size float32 lists per clip) for the aesthetic filter, so frames are embedded once
  when both run. That column is working data: the flow drops it before writing.
- `ClipAestheticFilterStage` scores each frame with the image flow's LAION aesthetic head
  (`stages.image.aesthetic`) and keeps the clip when the min (or mean) of its frames'
  scores is at least `score_threshold`. It reads `frame_embeddings` when present (trusting
  they were sampled at its `target_fps` by the same CLIP model), else embeds the frames
  itself.

A clip that is null or does not decode gets a null embedding and a NaN score, which the
filter removes (a NaN is never at or above a threshold); a batch never fails on one.
"""

from __future__ import annotations

import os
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, Stage
from stages.image.aesthetic import (
    AESTHETIC_SCORE,
    NEMO_AESTHETIC_THRESHOLD,  # noqa: F401  (NeMo's 0.5, for --preset nemo)
    ImageAestheticFilterStage,
)
from stages.image.clip import EMBEDDING, _Clip, check_model_dir, embeddings_of, vectors_column
from stages.video.frames import CLIP_COLUMN, sample

FRAME_EMBEDDINGS = "frame_embeddings"
# NeMo's default, 0.5, removes nothing on the head's 1-10 scale; its video tutorial uses
# 3.5, lower than the image flow's 5.0 because a clip's score is its worst frame's.
CLIP_AESTHETIC_THRESHOLD = 3.5
TORCHSCRIPT_SUFFIXES = (".pt", ".ts")


def _frames(data: bytes | None, fps: float) -> np.ndarray | None:
    """The clip's frames at `fps`, or None when it is null or does not decode."""
    if not data:
        return None
    try:
        return sample(data, fps=fps)
    except Exception:  # noqa: BLE001  (any decoder error: no frames for the row)
        return None


def _clips(batch: pa.Table, column: str, stage: str) -> list[bytes | None]:
    if column not in batch.column_names:
        raise KeyError(f"{stage}: input has no clip column {column!r} ({batch.column_names})")
    return batch.column(column).to_pylist()


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


class ClipFrameEmbedding:
    """Unit CLIP image embeddings of clips' frames sampled at `target_fps`: one
    (frames, dim) float32 array per clip, None for a clip that does not decode.
    `model_inference_batch_size` frames per forward pass, across clips."""

    def __init__(self, model_dir: str, target_fps: float = 1.0, model_inference_batch_size=32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local paths only, never the Hub
        self.clip = _Clip(model_dir)
        self.target_fps = target_fps
        self.batch_size = model_inference_batch_size

    def __call__(self, clips: list[bytes | None]) -> list[np.ndarray | None]:
        from PIL import Image

        out: list[np.ndarray | None] = [None] * len(clips)
        pending: list[tuple[int, int, Image.Image]] = []  # (clip, frame, picture)
        for i, data in enumerate(clips):
            frames = _frames(data, self.target_fps)
            if frames is not None:
                out[i] = np.zeros((len(frames), self.clip.dim), np.float32)
                pending += [(i, j, Image.fromarray(f)) for j, f in enumerate(frames)]
            while pending and (len(pending) >= self.batch_size or i == len(clips) - 1):
                chunk, pending = pending[: self.batch_size], pending[self.batch_size :]
                vectors = self.clip.embed_images([picture for _, _, picture in chunk])
                for (clip, frame, _), vector in zip(chunk, vectors, strict=True):
                    out[clip][frame] = vector
        return out


def frames_column(frames: list[np.ndarray | None], dim: int) -> pa.Array:
    """list<fixed_size_list<float32, dim>>: each clip's frame embeddings (null: none)."""
    present = [f for f in frames if f is not None]
    stacked = np.concatenate(present) if present else np.zeros((0, dim), np.float32)
    counts = [0 if f is None else len(f) for f in frames]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    inner = vectors_column(stacked, np.ones(len(stacked), bool), dim)
    missing = pa.array([f is None for f in frames], pa.bool_())
    return pa.ListArray.from_arrays(offsets, inner, mask=missing)


def frame_embeddings_of(batch: pa.Table, column: str = FRAME_EMBEDDINGS) -> list:
    """Each row's frame embeddings as a (frames, dim) float32 array, None where null."""
    values = batch.column(column).combine_chunks()
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        raise TypeError(f"column {column!r} is {values.type}, not a list of embeddings")
    lengths = values.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    flat, _ = embeddings_of(pa.table({column: values.flatten()}), column)
    parts = np.split(flat, np.cumsum(lengths)[:-1])
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    return [p if ok and len(p) else None for p, ok in zip(parts, valid, strict=True)]


class VideoEmbeddingStage(Stage):
    """Adds `embedding_column` (`fixed_size_list<float32>[dim]`, unit length): each clip's
    embedding, null for a clip that does not decode.

    - `model_dir`: a local CLIP folder (as `ImageEmbeddingStage` takes it): the embedding
      is the re-normalised mean of the clip's unit CLIP frame embeddings, and
      `frame_embeddings_column` keeps those (None: not kept).
    - or a TorchScript file (`.pt`/`.ts`, `torch.jit.save`) of a video model: it takes a
      float tensor (1, T, 3, H, W), the clip's T sampled frames at their decoded size,
      RGB in [0, 1], and returns (1, D); the output is L2-normalised. It must accept any
      T >= 1 and any size (it is probed at setup with one black 224x224 frame). No frame
      embeddings are kept; `model_inference_batch_size` is unused (one clip per call).
    - `target_fps`: frames sampled per second; `cpus`, `gpus`: what each worker asks for
      (the model runs on CUDA whenever the worker sees a GPU).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        model_dir: str,
        target_fps: float = 1.0,
        model_inference_batch_size: int = 32,
        clip_column: str = CLIP_COLUMN,
        embedding_column: str = EMBEDDING,
        frame_embeddings_column: str | None = FRAME_EMBEDDINGS,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ):
        if target_fps <= 0 or model_inference_batch_size < 1:
            raise ValueError(
                f"target_fps must be > 0 and model_inference_batch_size >= 1, got "
                f"{target_fps} and {model_inference_batch_size}"
            )
        self.model_dir = model_dir
        self.target_fps = target_fps
        self.model_inference_batch_size = model_inference_batch_size
        self.clip_column = clip_column
        self.embedding_column = embedding_column
        self.frame_embeddings_column = frame_embeddings_column
        self.resources = Resources(cpus=cpus, gpus=gpus)
        self._frames: ClipFrameEmbedding | None = None
        self._script = None

    def setup(self) -> None:
        if self._frames is not None or self._script is not None:
            return
        import torch

        torch.set_num_threads(max(1, int(self.resources.cpus)))
        path = check_model_dir(self.model_dir, "video embedding model")
        if os.path.isfile(path) and path.endswith(TORCHSCRIPT_SUFFIXES):
            self._load_script(path)
        else:
            batch = self.model_inference_batch_size
            self._frames = ClipFrameEmbedding(path, self.target_fps, batch)
            self.dim = self._frames.clip.dim

    def _load_script(self, path: str) -> None:
        import warnings

        import torch

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        with warnings.catch_warnings():  # torch deprecates TorchScript; loading still works
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                self._script = torch.jit.load(path, map_location=self.device).eval()
            except RuntimeError as error:
                raise ValueError(f"{path}: not a TorchScript module ({error})") from None
        self.dim = int(self._run_script(np.zeros((1, 224, 224, 3), np.uint8)).shape[0])

    def _run_script(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2)[None] / 255.0
            out = self._script(x.float())
        if out.ndim != 2 or out.shape[0] != 1:
            raise ValueError(f"{self.model_dir}: returned {tuple(out.shape)}, not (1, D)")
        return _unit(out[0].float().cpu().numpy())

    def process(self, batch: pa.Table) -> pa.Table:
        self.setup()
        clips = _clips(batch, self.clip_column, self.stage_name)
        vectors = np.zeros((len(clips), self.dim), np.float32)
        if self._script is not None:
            frames = [_frames(data, self.target_fps) for data in clips]
            for i, f in enumerate(frames):
                if f is not None:
                    vectors[i] = self._run_script(f)
        else:
            frames = self._frames(clips)
            for i, f in enumerate(frames):
                if f is not None:
                    vectors[i] = _unit(f.mean(axis=0))
        valid = np.array([f is not None for f in frames], bool)
        columns = {self.embedding_column: vectors_column(vectors, valid, self.dim)}
        if self._script is None and self.frame_embeddings_column:
            columns[self.frame_embeddings_column] = frames_column(frames, self.dim)
        batch = batch.drop_columns([c for c in columns if c in batch.column_names])
        for name, values in columns.items():
            batch = batch.append_column(name, values)
        return batch


class ClipAestheticFilterStage(Filter):
    """Keeps clips whose aesthetic score (`aesthetic_score`: the `reduction`, min or mean,
    of the LAION improved-aesthetic-predictor's scores of the clip's frames at
    `target_fps`, about 1 to 10) is at least `score_threshold`, as NeMo Curator's
    `ClipAestheticFilterStage` does. A clip that does not decode scores NaN and is removed.

    - `model_dir`: the head as `ImageAestheticFilterStage` takes it (a weights file, a
      folder holding one, or NeMo Curator's model folder with
      `ttj/sac-logos-ava1-l14-linearMSE/model.safetensors`).
    - `clip_model`: the CLIP folder for clips without `frame_embeddings_column`; default
      `model_dir` (NeMo's folder holds `openai/clip-vit-large-patch14` too).
    - `score_threshold`: 3.5 (NeMo's video tutorial); NeMo's default is
      `NEMO_AESTHETIC_THRESHOLD` (0.5), which removes nothing on this scale.
    - `num_gpus_per_worker`: NeMo's name for the GPU share; 0 by default here (NeMo's is
      0.25) as every stage runs on CPU; set it on a GPU cluster.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        model_dir: str,
        score_threshold: float = CLIP_AESTHETIC_THRESHOLD,
        reduction: Literal["mean", "min"] = "min",
        target_fps: float = 1.0,
        num_gpus_per_worker: float = 0.0,
        clip_model: str | None = None,
        model_inference_batch_size: int = 32,
        clip_column: str = CLIP_COLUMN,
        frame_embeddings_column: str = FRAME_EMBEDDINGS,
        score_only: bool = False,
        keep_score: bool = False,
        cpus: float = 1.0,
    ):
        if reduction not in ("mean", "min") or target_fps <= 0:
            raise ValueError(f"reduction must be 'mean' or 'min' ({reduction!r}), target_fps > 0")
        self.model_dir = model_dir
        self.score_threshold = score_threshold
        self.reduction = reduction
        self.target_fps = target_fps
        self.clip_model = clip_model or model_dir
        self.model_inference_batch_size = model_inference_batch_size
        self.clip_column = clip_column
        self.frame_embeddings_column = frame_embeddings_column
        self.score_only = score_only
        self.keep_score = keep_score
        self.resources = Resources(cpus=cpus, gpus=num_gpus_per_worker)
        self._head: ImageAestheticFilterStage | None = None
        self._frames: ClipFrameEmbedding | None = None  # loaded when a batch needs it

    @property
    def score_column(self) -> str:
        return AESTHETIC_SCORE

    def setup(self) -> None:
        if self._head is None:
            import torch

            torch.set_num_threads(max(1, int(self.resources.cpus)))
            head = ImageAestheticFilterStage(self.model_dir, model_inference_batch_size=256)
            head.setup()
            self._head = head

    def frame_embeddings(self, batch: pa.Table) -> list[np.ndarray | None]:
        """Each clip's unit CLIP frame embeddings: the column when present, else computed."""
        if self.frame_embeddings_column in batch.column_names:
            return frame_embeddings_of(batch, self.frame_embeddings_column)
        clips = _clips(batch, self.clip_column, self.stage_name)
        if self._frames is None:
            try:
                self._frames = ClipFrameEmbedding(
                    self.clip_model, self.target_fps, self.model_inference_batch_size
                )
            except FileNotFoundError as error:
                raise FileNotFoundError(
                    f"{self.stage_name}: no {self.frame_embeddings_column!r} column, so the "
                    f"frames need a CLIP model (clip_model): {error}"
                ) from None
        return self._frames(clips)

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        frames = self.frame_embeddings(batch)
        scores = np.full(batch.num_rows, np.nan)
        present = [i for i, f in enumerate(frames) if f is not None]
        if not present:
            return scores
        stacked = np.concatenate([frames[i] for i in present])
        column = vectors_column(stacked, np.ones(len(stacked), bool), stacked.shape[1])
        per_frame = self._head.score(pa.table({EMBEDDING: column}))
        reduce = np.min if self.reduction == "min" else np.mean
        bounds = np.cumsum([len(frames[i]) for i in present])[:-1]
        for i, part in zip(present, np.split(per_frame, bounds), strict=True):
            scores[i] = float(reduce(part))
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.score_threshold  # NaN (undecodable clip) compares False
