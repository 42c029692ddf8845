"""CLIP image embeddings, and the CLIP similarity of an image and its caption.

`ImageEmbeddingStage` takes NeMo Curator's name and keyword arguments (`model_dir`,
`model_inference_batch_size`, `remove_image_data`); the model is a Hugging Face CLIP
folder (`CLIPModel` with its image processor: NeMo's default is
openai/clip-vit-large-patch14, 768-d), loaded from local disk only. It runs on the GPU a
worker sees, else on CPU; the embeddings are L2-normalised float32 in a fixed-size list
column, so the aesthetic and NSFW heads and semantic dedup read them as they are.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, Stage
from stages.image.decode import load_rgb

EMBEDDING = "embedding"


def check_model_dir(path: str, what: str) -> str:
    """`path` as given, or FileNotFoundError naming it and what was expected there."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file or folder: {path!r}")
    return path


class _Clip:
    """A CLIP model and its processors on the best device, loaded once per worker."""

    def __init__(self, model_dir: str, text: bool = False):
        import torch
        from transformers import CLIPModel
        from transformers.utils import logging as hf_logging

        try:  # Pillow's processor: the default one wants torchvision, which we leave out
            from transformers import CLIPImageProcessorPil as CLIPImageProcessor
        except ImportError:
            from transformers import CLIPImageProcessor

        hf_logging.disable_progress_bar()  # no per-worker loading bars in the run's output
        check_model_dir(model_dir, "CLIP model")
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise FileNotFoundError(f"CLIP model: {model_dir!r} holds no config.json")
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = CLIPModel.from_pretrained(model_dir, local_files_only=True)
        self.model = self.model.to(self.device).eval()
        self.images = CLIPImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer = None
        if text:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _features(self, output):
        return output if isinstance(output, self.torch.Tensor) else output.pooler_output

    def embed_images(self, images: list) -> np.ndarray:
        with self.torch.inference_mode():
            pixels = self.images(images=images, return_tensors="pt")["pixel_values"]
            out = self._features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out = self.torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        with self.torch.inference_mode():
            tokens = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            tokens = {k: v.to(self.device) for k, v in tokens.items()}
            out = self._features(self.model.get_text_features(**tokens))
            out = self.torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32)


def _decoded(batch: pa.Table, column: str) -> list:
    """Each row's image as RGB, or None (null or undecodable: the decoder quarantines
    those before this stage runs; this never fails a batch)."""
    if column not in batch.column_names:
        raise KeyError(f"no image column {column!r} (columns: {batch.column_names})")
    images = []
    for data in batch.column(column).to_pylist():
        try:
            images.append(load_rgb(data) if data else None)
        except Exception:  # noqa: BLE001  (any decoder error: no embedding for the row)
            images.append(None)
    return images


def vectors_column(vectors: np.ndarray, valid: np.ndarray, dim: int) -> pa.Array:
    """A fixed_size_list<float32, dim> column; rows not `valid` are null."""
    flat = pa.array(vectors.reshape(-1).astype(np.float32), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))


def embeddings_of(batch: pa.Table, column: str = EMBEDDING) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of `batch` as an (n, dim) float32 array (zeros where null) and the
    mask of rows that have one."""
    if column not in batch.column_names:
        raise KeyError(
            f"no embedding column {column!r}: ImageEmbeddingStage (a CLIP model) must run first"
        )
    values = batch.column(column).combine_chunks()
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if not valid.any():
        return np.zeros((batch.num_rows, 0), np.float32), valid
    dim = values.type.list_size if pa.types.is_fixed_size_list(values.type) else None
    rows = values.to_pylist()
    dim = dim or len(next(r for r in rows if r is not None))
    out = np.zeros((batch.num_rows, dim), np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row
    return out, valid


class ImageEmbeddingStage(Stage):
    """Adds `embedding_column` (L2-normalised CLIP image embeddings) to every row; a row
    whose image is missing or undecodable gets a null embedding. `gpus`: the GPU share of
    each worker (a fraction shares one GPU)."""

    def __init__(
        self,
        model_dir: str,
        model_inference_batch_size: int = 32,
        image_column: str = "image",
        embedding_column: str = EMBEDDING,
        remove_image_data: bool = False,
        gpus: float = 0.0,
    ):
        if model_inference_batch_size < 1:
            raise ValueError("model_inference_batch_size must be at least 1")
        self.model_dir = model_dir
        self.model_inference_batch_size = model_inference_batch_size
        self.image_column = image_column
        self.embedding_column = embedding_column
        self.remove_image_data = remove_image_data
        if gpus:
            self.resources = Resources(cpus=1.0, gpus=gpus)
        self._clip: _Clip | None = None

    def setup(self) -> None:
        if self._clip is None:
            self._clip = _Clip(self.model_dir)

    def process(self, batch: pa.Table) -> pa.Table:
        self.setup()
        images = _decoded(batch, self.image_column)
        dim = self._clip.dim
        vectors = np.zeros((batch.num_rows, dim), np.float32)
        valid = np.array([image is not None for image in images], dtype=bool)
        rows = np.flatnonzero(valid)
        size = self.model_inference_batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            vectors[chunk] = self._clip.embed_images([images[i] for i in chunk])
        if self.embedding_column in batch.column_names:
            batch = batch.drop_columns([self.embedding_column])
        batch = batch.append_column(self.embedding_column, vectors_column(vectors, valid, dim))
        if self.remove_image_data:
            batch = batch.drop_columns([self.image_column])
        return batch


class ImageTextSimilarityFilter(Filter):
    """Keeps images whose CLIP similarity (cosine of the image and caption embeddings) is
    at least `min_score`; images without a caption are kept with a NaN score. The image
    embedding comes from `embedding_column` when an `ImageEmbeddingStage` made it (the
    same `model_dir`), else it is computed."""

    name = "ImageTextSimilarityFilter"

    def __init__(
        self,
        model_dir: str,
        min_score: float = 0.2,
        caption_column: str = "caption",
        embedding_column: str = EMBEDDING,
        image_column: str = "image",
        model_inference_batch_size: int = 32,
    ):
        self.model_dir, self.min_score = model_dir, min_score
        self.caption_column, self.embedding_column = caption_column, embedding_column
        self.image_column = image_column
        self.model_inference_batch_size = model_inference_batch_size
        self._clip: _Clip | None = None

    @property
    def score_column(self) -> str:
        return "clip_score"

    def setup(self) -> None:
        if self._clip is None:
            self._clip = _Clip(self.model_dir, text=True)

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        column = next((c for c in (self.caption_column, "txt") if c in batch.column_names), None)
        captions = batch.column(column).to_pylist() if column else [None] * batch.num_rows
        if self.embedding_column in batch.column_names:
            images, has_image = embeddings_of(batch, self.embedding_column)
        else:
            embedded = ImageEmbeddingStage(self.model_dir, self.model_inference_batch_size)
            embedded._clip = self._clip
            table = embedded.process(batch.select([self.image_column]))
            images, has_image = embeddings_of(table)
        scores = np.full(batch.num_rows, np.nan)
        rows = [i for i, c in enumerate(captions) if c and has_image[i]]
        size = self.model_inference_batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            texts = self._clip.embed_texts([captions[i] for i in chunk])
            scores[chunk] = np.sum(texts * images[chunk], axis=1)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.isnan(scores) | (scores >= self.min_score)
