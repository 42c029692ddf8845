"""CLIP image embeddings, and the CLIP similarity of an image and its caption.

`ImageEmbeddingStage` takes NeMo Curator's name and keyword arguments (`model_dir`,
`model_inference_batch_size`, `remove_image_data`). The model is a Hugging Face CLIP
folder (`CLIPModel` and its image processor; NeMo's default is
openai/clip-vit-large-patch14, 768-d), read from local disk only: `model_dir` is that
folder, or a folder holding it as `openai/clip-vit-large-patch14` (where NeMo Curator
downloads it). A worker runs the model on the GPU it sees, else on CPU; the embeddings are
L2-normalised float32 in a fixed-size list column, as NeMo computes them, so the aesthetic
and NSFW heads and semantic dedup read them as they are.

The heads over these embeddings (`stages.image.aesthetic`, `stages.image.nsfw`) read their
published state dicts with `head_state_dict`, below.
"""

from __future__ import annotations

import json
import os
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.base import Filter, Resources, Stage
from stages.image.decode import load_rgb

EMBEDDING = "embedding"
CAPTION_COLUMNS = ("caption", "txt")  # ours, then a WebDataset sample's KEY.txt
NEMO_CLIP_SUBDIR = os.path.join("openai", "clip-vit-large-patch14")
# NeMo Curator's InterleavedCLIPScoreFilterStage default (DEFAULT_CLIP_MIN_SCORE).
NEMO_CLIP_MIN_SCORE = 0.15
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def check_model_dir(path: str, what: str) -> str:
    """`path` as given, or FileNotFoundError naming it and what was expected there."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file or folder: {path!r}")
    return path


def clip_folder(model_dir: str) -> str:
    """The CLIP folder `model_dir` names: itself when it holds a CLIP `config.json`, else
    NeMo Curator's layout, `model_dir/openai/clip-vit-large-patch14`. FileNotFoundError
    naming the path when neither holds a CLIP model."""
    check_model_dir(model_dir, "CLIP model")
    for folder in (model_dir, os.path.join(model_dir, NEMO_CLIP_SUBDIR)):
        config = os.path.join(folder, "config.json")
        if not os.path.isfile(config):
            continue
        with open(config, encoding="utf-8") as f:
            kind = json.load(f).get("model_type")
        if kind != "clip":
            raise FileNotFoundError(
                f"CLIP model: {config!r} describes a {kind!r} model, not a CLIP model"
            )
        if not os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
            raise FileNotFoundError(
                f"CLIP model: {folder!r} has no preprocessor_config.json (the image processor)"
            )
        return folder
    raise FileNotFoundError(
        f"CLIP model: {model_dir!r} holds no config.json (a Hugging Face CLIP folder, as "
        f"save_pretrained writes it, or one under {NEMO_CLIP_SUBDIR!r})"
    )


class _Clip:
    """A CLIP model and its processors on the best device, loaded once per worker."""

    def __init__(self, model_dir: str, text: bool = False):
        import torch
        from transformers import CLIPModel
        from transformers.utils import logging as hf_logging

        try:  # Pillow's image processor: the default one wants torchvision, which we leave out
            from transformers import CLIPImageProcessorPil as CLIPImageProcessor
        except ImportError:
            from transformers import CLIPImageProcessor

        hf_logging.disable_progress_bar()  # no per-worker loading bars in the run's output
        folder = clip_folder(model_dir)
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model = CLIPModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self.model = model.to(self.device).eval()
        self.images = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
        self.tokenizer = None
        if text:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            # CLIP's text tower has 77 positions; longer captions are cut, as CLIP does.
            self.max_tokens = int(self.model.config.text_config.max_position_embeddings)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _unit(self, output) -> np.ndarray:
        # transformers 5 returns a model output whose pooler_output is the projection.
        features = output if isinstance(output, self.torch.Tensor) else output.pooler_output
        features = self.torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32)

    def embed_images(self, images: list) -> np.ndarray:
        with self.torch.inference_mode():
            pixels = self.images(images=images, return_tensors="pt")["pixel_values"]
            return self._unit(self.model.get_image_features(pixel_values=pixels.to(self.device)))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        with self.torch.inference_mode():
            tokens = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items()}
            return self._unit(self.model.get_text_features(**tokens))


def _decode(data: bytes | None):
    """The image as RGB, or None: a null or undecodable image has no embedding (the
    decoder quarantines those before this stage runs; a batch never fails on one)."""
    if not data:
        return None
    try:
        return load_rgb(data)
    except Exception:  # noqa: BLE001  (any decoder error: no embedding for the row)
        return None


def vectors_column(vectors: np.ndarray, valid: np.ndarray, dim: int) -> pa.Array:
    """A fixed_size_list<float32, dim> column; rows not `valid` are null."""
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1), pa.float32())
    mask = pa.array(~np.asarray(valid, dtype=bool).reshape(-1), pa.bool_())
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)


def embeddings_of(batch: pa.Table, column: str = EMBEDDING) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of `batch` as an (n, dim) float32 array (zeros where null) and the
    mask of rows that have one. The column is a fixed-size list (or a list) of floats."""
    if column not in batch.column_names:
        raise KeyError(
            f"no embedding column {column!r} (columns: {batch.column_names}): "
            "ImageEmbeddingStage (a CLIP model) must run first"
        )
    values = batch.column(column).combine_chunks()
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(values.type):
        dim = values.type.list_size
        flat = values.values.slice(values.offset * dim, len(values) * dim)
        out = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(values), dim)
        out[~valid] = 0.0  # a null row's slots hold whatever was there
        return out, valid
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        raise TypeError(f"embedding column {column!r} is {values.type}, not a list of floats")
    rows = values.to_pylist()
    dims = {len(r) for r in rows if r is not None}
    if len(dims) > 1:
        raise ValueError(f"embedding column {column!r} mixes sizes {sorted(dims)}")
    out = np.zeros((len(rows), dims.pop() if dims else 0), np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row
    return out, valid


class ImageEmbeddingStage(Stage):
    """Adds `embedding_column` (`fixed_size_list<float32>[dim]`): the L2-normalised CLIP
    image embedding of each row's image, as NeMo Curator's `ImageEmbeddingStage` computes
    it. A row whose image is null or undecodable gets a null embedding.

    - `model_dir`: a local Hugging Face CLIP folder (or one holding
      `openai/clip-vit-large-patch14`); FileNotFoundError at `setup` when it is not one.
    - `model_inference_batch_size`: images per forward pass.
    - `remove_image_data`: drop `image_column` afterwards (for runs that keep embeddings
      only).
    - `cpus`, `gpus`: what each worker asks for (a GPU fraction shares one GPU); the model
      runs on CUDA whenever the worker sees a GPU, on CPU otherwise.

    Each image is embedded independently of the others in its forward pass, so an
    embedding does not depend on the batch size beyond float rounding (~1e-6).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        model_dir: str,
        model_inference_batch_size: int = 32,
        image_column: str = "image",
        embedding_column: str = EMBEDDING,
        remove_image_data: bool = False,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ):
        if model_inference_batch_size < 1:
            raise ValueError(
                f"model_inference_batch_size must be at least 1, got {model_inference_batch_size}"
            )
        self.model_dir = model_dir
        self.model_inference_batch_size = model_inference_batch_size
        self.image_column = image_column
        self.embedding_column = embedding_column
        self.remove_image_data = remove_image_data
        if (cpus, gpus) != (type(self).resources.cpus, type(self).resources.gpus):
            self.resources = Resources(cpus=cpus, gpus=gpus)
        self._clip: _Clip | None = None

    def setup(self) -> None:
        if self._clip is not None:
            return
        # Models come from local paths only; never reach for the Hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(max(1, int(self.resources.cpus)))
        self._clip = _Clip(self.model_dir)

    @property
    def device(self) -> str:
        """Where the model runs ("cuda" or "cpu"), after `setup`."""
        self.setup()
        return self._clip.device

    @property
    def dim(self) -> int:
        """Embedding size (the CLIP projection's), after `setup`."""
        self.setup()
        return self._clip.dim

    def embed(self, images: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim) float32 unit vectors of encoded `images` (zeros where there is none)
        and the mask of images that decoded. Decodes one forward pass at a time."""
        self.setup()
        vectors = np.zeros((len(images), self._clip.dim), np.float32)
        valid = np.zeros(len(images), dtype=bool)
        pending: list[tuple[int, object]] = []
        for i, data in enumerate(images):
            image = _decode(data)
            if image is not None:
                pending.append((i, image))
            if pending and (
                len(pending) == self.model_inference_batch_size or i == len(images) - 1
            ):
                rows = [row for row, _ in pending]
                vectors[rows] = self._clip.embed_images([image for _, image in pending])
                valid[rows] = True
                pending = []
        return vectors, valid

    def process(self, batch: pa.Table) -> pa.Table:
        if self.image_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no image column {self.image_column!r} "
                f"(columns: {batch.column_names})"
            )
        vectors, valid = self.embed(batch.column(self.image_column).to_pylist())
        if self.embedding_column in batch.column_names:
            batch = batch.drop_columns([self.embedding_column])
        batch = batch.append_column(
            self.embedding_column, vectors_column(vectors, valid, vectors.shape[1])
        )
        if self.remove_image_data:
            batch = batch.drop_columns([self.image_column])
        return batch


class ImageTextSimilarityFilter(Filter):
    """Keeps images whose CLIP score, the cosine similarity of the image's and its
    caption's CLIP embeddings (`clip_score`, -1 to 1), is at least `min_score`.

    The caption is `caption_column`, or `txt` (a WebDataset sample's caption) when that is
    absent. Rows without a caption, or without an image embedding, are kept with a NaN
    score: this filter judges the pair, not the image. The image embedding comes from
    `embedding_column` when an `ImageEmbeddingStage` of the same `model_dir` made it, else
    it is computed here from `image_column`. The default `min_score`, 0.15, is NeMo
    Curator's for its CLIP score filter (`InterleavedCLIPScoreFilterStage`).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        model_dir: str,
        min_score: float = NEMO_CLIP_MIN_SCORE,
        caption_column: str = "caption",
        embedding_column: str = EMBEDDING,
        image_column: str = "image",
        model_inference_batch_size: int = 32,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ):
        self.model_dir = model_dir
        self.min_score = min_score
        self.caption_column = caption_column
        self.embedding_column = embedding_column
        self.image_column = image_column
        self.model_inference_batch_size = model_inference_batch_size
        if (cpus, gpus) != (type(self).resources.cpus, type(self).resources.gpus):
            self.resources = Resources(cpus=cpus, gpus=gpus)
        self._images: ImageEmbeddingStage | None = None

    @property
    def score_column(self) -> str:
        return "clip_score"

    def setup(self) -> None:
        if self._images is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(max(1, int(self.resources.cpus)))
        images = ImageEmbeddingStage(
            self.model_dir, self.model_inference_batch_size, image_column=self.image_column
        )
        images._clip = _Clip(self.model_dir, text=True)
        self._images = images

    def _captions(self, batch: pa.Table) -> list[str | None]:
        names = (self.caption_column, *(c for c in CAPTION_COLUMNS if c != self.caption_column))
        column = next((c for c in names if c in batch.column_names), None)
        if column is None:
            return [None] * batch.num_rows
        values = batch.column(column).to_pylist()
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        clip = self._images._clip
        captions = self._captions(batch)
        if self.embedding_column in batch.column_names:
            images, has_image = embeddings_of(batch, self.embedding_column)
        else:
            images, has_image = self._images.embed(batch.column(self.image_column).to_pylist())
        if has_image.any() and images.shape[1] != clip.dim:
            raise ValueError(
                f"{self.stage_name}: {self.embedding_column!r} holds {images.shape[1]}-d "
                f"embeddings; the CLIP model in {self.model_dir!r} makes {clip.dim}-d ones"
            )
        scores = np.full(batch.num_rows, np.nan)
        rows = [i for i, c in enumerate(captions) if c and c.strip() and has_image[i]]
        size = self.model_inference_batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            texts = clip.embed_texts([captions[i] for i in chunk])
            scores[chunk] = np.sum(texts.astype(np.float64) * images[chunk], axis=1)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.isnan(scores) | (scores >= self.min_score)


def weights_file(model_dir: str, what: str, nemo_path: str) -> str:
    """The weights file `model_dir` names: the file itself, the one weights file of a
    folder, or the file where NeMo Curator keeps it under `model_dir` (`nemo_path`)."""
    check_model_dir(model_dir, what)
    if os.path.isfile(model_dir):
        return model_dir
    nemo = os.path.join(model_dir, nemo_path)
    if os.path.isfile(nemo):
        return nemo
    found = sorted(f for f in os.listdir(model_dir) if f.endswith(WEIGHT_SUFFIXES))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{what}: {model_dir!r} should hold one weights file "
            f"({', '.join(WEIGHT_SUFFIXES)}) or {nemo_path!r}, found {found or 'none'}"
        )
    return os.path.join(model_dir, found[0])


def head_state_dict(model_dir: str, what: str, nemo_path: str) -> tuple[str, dict]:
    """(file, tensors) of a head's published weights: a `.safetensors` file, or a
    torch-saved state dict read with `weights_only=True` (no code runs from the file)."""
    import torch

    path = weights_file(model_dir, what, nemo_path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return path, load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (a pickle of more than tensors, or no pickle)
        raise ValueError(f"{what}: {path}: not a plain state dict of tensors ({error})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint's weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {path}: not a state dict of tensors")
    return path, state


def check_layout(state: dict, expected: list[str], path: str, what: str) -> None:
    """ValueError naming the keys that differ from the published layout."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise ValueError(
            f"{path}: not the {what} layout (missing {missing or 'none'}, unexpected "
            f"{extra[:6] or 'none'}; expected keys {expected})"
        )


def score_embeddings(
    head, batch: pa.Table, column: str, in_dim: int, path: str, batch_size: int, device: str
) -> np.ndarray:
    """One score per row from `head` (a torch callable over (n, in_dim) float32 giving
    (n, 1)) on the embeddings in `column`, `batch_size` rows at a time on `device`; NaN
    for rows without an embedding."""
    import torch

    vectors, valid = embeddings_of(batch, column)
    scores = np.full(batch.num_rows, np.nan)
    if not valid.any():
        return scores
    check_dim(vectors, in_dim, path, column)
    rows = np.flatnonzero(valid)
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            x = torch.from_numpy(vectors[chunk]).to(device)
            scores[chunk] = head(x)[:, 0].double().cpu().numpy()
    return scores


def check_dim(vectors: np.ndarray, dim: int, path: str, column: str) -> None:
    """ValueError when the embeddings are not the `dim`-d ones the head at `path` takes."""
    if vectors.shape[1] != dim:
        raise ValueError(
            f"{path} takes {dim}-d embeddings; column {column!r} holds {vectors.shape[1]}-d "
            "ones (made by another CLIP model?)"
        )


class EmbeddingHeadFilter(Filter):
    """A filter that scores rows with a small head over their CLIP embeddings (the LAION
    aesthetic predictor, the CLIP NSFW detector). Subclasses name the head (`what`), where
    NeMo Curator's model folder keeps it (`nemo_path`), and build it (`build_head`); the
    weights load on first use, on the GPU when there is one. A row without an embedding
    scores NaN."""

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    what: ClassVar[str] = "model"
    nemo_path: ClassVar[str] = ""

    def __init__(
        self,
        model_dir: str,
        score_threshold: float,
        model_inference_batch_size: int = 256,
        embedding_column: str = EMBEDDING,
    ):
        if model_inference_batch_size < 1:
            raise ValueError(
                f"model_inference_batch_size must be at least 1, got {model_inference_batch_size}"
            )
        self.model_dir = model_dir
        self.score_threshold = score_threshold
        self.model_inference_batch_size = model_inference_batch_size
        self.embedding_column = embedding_column
        self._head = None

    def build_head(self, state: dict, path: str):
        """The head module for `state` (read from `path`), with an `in_dim` attribute."""
        raise NotImplementedError

    def head_layers(self):
        """The module `score_embeddings` runs (the head itself by default)."""
        return self._head

    def setup(self) -> None:
        if self._head is not None:
            return
        import torch

        self._path, state = head_state_dict(self.model_dir, self.what, self.nemo_path)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._head = self.build_head(state, self._path).to(self.device)

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        return score_embeddings(
            self.head_layers(),
            batch,
            self.embedding_column,
            self._head.in_dim,
            self._path,
            self.model_inference_batch_size,
            self.device,
        )
