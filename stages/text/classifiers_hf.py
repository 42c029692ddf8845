"""Hugging Face sequence classifiers read from a local folder: NeMo Curator's quality, domain
and FineWeb-Edu classifiers, and any other `AutoModelForSequenceClassification` folder.

`SequenceClassifier` is the common base (NeMo Curator's `DistributedDataClassifier`); the
named classes set NeMo's defaults: `QualityClassifier`, `DomainClassifier`,
`MultilingualDomainClassifier` (labels, one column of predictions), `FineWebEduClassifier`,
`FineWebMixtralEduClassifier`, `FineWebNemotronEduClassifier` (a regression head: a float
score, an integer score and a high/low label). Nothing is downloaded: a model is a local
folder or a copy already in a Hugging Face hub cache.

Layouts that load (`model_path`):

- a standard transformers folder: `config.json` (with `model_type`), `model.safetensors` or
  `pytorch_model.bin`, and the tokenizer files (what `save_pretrained` writes);
- NeMo Curator's custom-head checkpoint (`PyTorchModelHubMixin`, as on the hub for
  nvidia/quality-classifier-deberta and nvidia/domain-classifier): `config.json` holding
  `base_model`, `fc_dropout`, `id2label`/`label2id`, and weights whose keys are the
  backbone's under `model.` and a linear head under `fc.` (`fc.weight`, `fc.bias`). The
  backbone is built from the configuration of `base_model` (a local folder, absolute or
  relative to the model folder, or a hub id found in the same cache, such as
  microsoft/deberta-v3-base, which NeMo Curator itself fetches when it loads the model);
  the prediction is the softmax of `fc` over the first token's last hidden state, as in
  NeMo's `Deberta.forward`. The tokenizer is the model folder's, else `base_model`'s;
- either one inside a hub cache: the cache's repository folder (`.../models--org--name`,
  read at the snapshot `refs/main` names, or its only snapshot), or a hub id such as
  "nvidia/quality-classifier-deberta" looked up in `cache_dir` (NeMo's argument), else in
  the default hub cache (`HF_HUB_CACHE`, `HF_HOME/hub`).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, Resources, text_column
from stages.dedup.embed import CHARS_PER_TOKEN, ROWS_PER_CALL, TOKENISE_ROWS

QUALITY_MODEL = "nvidia/quality-classifier-deberta"
DOMAIN_MODEL = "nvidia/domain-classifier"
MULTILINGUAL_DOMAIN_MODEL = "nvidia/multilingual-domain-classifier"
FINEWEB_EDU_MODEL = "HuggingFaceFW/fineweb-edu-classifier"
FINEWEB_MIXTRAL_EDU_MODEL = "nvidia/nemocurator-fineweb-mixtral-edu-classifier"
FINEWEB_NEMOTRON_EDU_MODEL = "nvidia/nemocurator-fineweb-nemotron-4-edu-classifier"
# A FineWeb-Edu score at or above this is "high_quality" (NeMo Curator's FineWebModelStage).
FINEWEB_HIGH_QUALITY = 2.5
FINEWEB_LABELS = ("high_quality", "low_quality")
# Inference batch (texts at the full sequence length) when none is given: NeMo's default on a
# GPU; on a CPU a smaller one bounds the memory of a forward pass.
GPU_BATCH_SIZE = 256
CPU_BATCH_SIZE = 32
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

Device = Literal["auto", "cpu", "cuda"]


# --- finding a model folder ------------------------------------------------------------


def resolve_model_dir(
    model_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> str:
    """The local folder that holds the model `model_path` names: the folder itself, a hub
    cache repository folder (`models--org--name`, at its `refs/main` snapshot), or a hub id
    found in `cache_dir` (else the default hub cache). FileNotFoundError names what was
    looked for and where."""
    path = os.fspath(model_path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
        if os.path.isdir(os.path.join(path, "snapshots")):
            return _snapshot(path)
        raise FileNotFoundError(
            f"{path}: no config.json: expected a Hugging Face model folder or a hub cache "
            "folder models--<org>--<name>"
        )
    caches = _hub_caches(cache_dir)
    if path.count("/") == 1 and not os.path.isabs(path):
        repo = "models--" + path.replace("/", "--")
        for cache in caches:
            if os.path.isdir(os.path.join(cache, repo)):
                return _snapshot(os.path.join(cache, repo))
        raise FileNotFoundError(
            f"model {path!r} not found: no such folder, and no {repo} in the hub cache "
            f"{' or '.join(caches)} (nothing is downloaded: copy the model there or give "
            "model_path=FOLDER)"
        )
    raise FileNotFoundError(f"model folder {path!r} not found")


def _hub_caches(cache_dir: str | os.PathLike | None) -> list[str]:
    if cache_dir is not None:
        cache = os.fspath(cache_dir)
        # HF_HOME-style folders keep the hub cache under hub/
        return [cache, os.path.join(cache, "hub")]
    from huggingface_hub import constants

    return [constants.HF_HUB_CACHE]


def _snapshot(repo: str) -> str:
    """The snapshot folder of a hub cache repository: the one `refs/main` names, else the
    only one."""
    ref = os.path.join(repo, "refs", "main")
    if os.path.isfile(ref):
        with open(ref) as f:
            folder = os.path.join(repo, "snapshots", f.read().strip())
        if os.path.isdir(folder):
            return folder
    snapshots = os.path.join(repo, "snapshots")
    found = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
    if len(found) == 1:
        return os.path.join(snapshots, found[0])
    raise FileNotFoundError(
        f"{repo}: expected refs/main or a single snapshot, found {len(found)} snapshots "
        f"{found[:5]}: give the snapshot folder as model_path"
    )


# --- loading a model ---------------------------------------------------------------------


class _Loaded:
    """A loaded classifier: its tokenizer, labels and `logits(input_ids, attention_mask)`."""

    def __init__(self, folder: str, device: str, cache_dir: str | None = None):
        import torch
        from transformers import AutoTokenizer

        self.folder = folder
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError(f"{folder}/config.json: expected a JSON object")
        tokenizer_folders = [folder]
        # NeMo's hub-mixin config holds the mixin's arguments, no transformers model_type
        if "base_model" in config and "model_type" not in config:
            base = _base_model_dir(str(config["base_model"]), folder, cache_dir)
            tokenizer_folders.append(base)
            self._build_custom(config, _read_weights(folder), base)
        else:
            self._build_standard(folder)
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.tokenizer = _load_tokenizer(tokenizer_folders, AutoTokenizer)

    def _build_standard(self, folder: str) -> None:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        self.labels = [id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels)]
        self.model = model
        self.config = model.config
        self.head = None

    def _build_custom(self, config: dict, state: dict, base: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModel

        if "fc.weight" not in state or "fc.bias" not in state:
            raise ValueError(
                f"{self.folder}: a custom-head checkpoint (config.json names base_model) "
                f"needs weights fc.weight and fc.bias, found {sorted(state)[:5]}"
            )
        backbone = AutoModel.from_config(AutoConfig.from_pretrained(base, local_files_only=True))
        fc = torch.nn.Linear(state["fc.weight"].shape[1], state["fc.weight"].shape[0])
        fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
        weights = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        result = backbone.load_state_dict(weights, strict=False)
        # older checkpoints saved position ids as a buffer that newer versions recompute
        unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
        if result.missing_keys or unexpected:
            raise ValueError(
                f"{self.folder}: the weights do not fit the backbone {config['base_model']!r}: "
                f"missing {result.missing_keys[:5]}, unexpected {unexpected[:5]}"
            )
        self.labels = _config_labels(config, self.folder)
        if len(self.labels) != fc.out_features:
            raise ValueError(
                f"{self.folder}: config.json has {len(self.labels)} labels, the head "
                f"fc has {fc.out_features} outputs"
            )
        self.model = torch.nn.ModuleDict({"backbone": backbone, "fc": fc})
        self.config = backbone.config
        self.head = fc

    def logits(self, input_ids, attention_mask):
        if self.head is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = self.model["backbone"](input_ids=input_ids, attention_mask=attention_mask)
        return self.head(hidden.last_hidden_state[:, 0, :])


def _read_weights(folder: str) -> dict:
    for name in _WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(path)
            import torch

            return torch.load(path, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no weights ({' or '.join(_WEIGHT_FILES)})")


def _base_model_dir(base_model: str, folder: str, cache_dir: str | None = None) -> str:
    """The folder of the backbone configuration a custom-head checkpoint names."""
    for candidate in (base_model, os.path.join(folder, base_model)):
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    # a hub id: look first in the cache that holds the model (<cache>/models--a--b/snapshots/x)
    caches = _hub_caches(cache_dir) + (_hub_caches(None) if cache_dir else [])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(folder)))
    if os.path.basename(repo).startswith("models--"):
        caches.insert(0, os.path.dirname(repo))
    for cache in caches:
        try:
            return resolve_model_dir(base_model, cache)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(
        f"{folder}: a custom-head checkpoint whose backbone is {base_model!r}, and no "
        f"configuration for it is found locally: put {base_model} in the hub cache beside "
        "the model, or set config.json's base_model to a folder holding its config.json"
    )


def _config_labels(config: dict, folder: str) -> list[str]:
    """Labels in id order: from `label2id` (as NeMo Curator orders them), else `id2label`."""
    if isinstance(config.get("label2id"), dict) and config["label2id"]:
        return [str(k) for k, _ in sorted(config["label2id"].items(), key=lambda kv: int(kv[1]))]
    if isinstance(config.get("id2label"), dict) and config["id2label"]:
        return [str(v) for _, v in sorted(config["id2label"].items(), key=lambda kv: int(kv[0]))]
    raise ValueError(f"{folder}/config.json: no id2label or label2id: the labels are unknown")


def _load_tokenizer(folders: list[str], auto_tokenizer):
    errors = []
    for folder in folders:
        try:
            return auto_tokenizer.from_pretrained(folder, local_files_only=True)
        except Exception as error:  # each folder's reason goes into the message
            errors.append(f"{folder}: {error}")
    raise FileNotFoundError("no tokenizer found: " + "; ".join(errors))


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


# --- the stages ------------------------------------------------------------------------


class SequenceClassifier(Filter):
    """Classify each text with a Hugging Face sequence classifier and keep the rows whose
    predicted label is in `filter_by` (all rows when None), as NeMo Curator's
    `DistributedDataClassifier` does.

    Adds `pred_column` (string: the most probable label) and, when `prob_column` is given,
    `prob_column` (`list<float32>`: the probability of every label, in the model's label-id
    order, as NeMo's `score_field`). The probabilities are the softmax of the logits.

    - `model_path`: a local model folder, a hub cache folder, or a hub id found in
      `cache_dir` or the default hub cache (see the module docstring for the layouts that
      load). Nothing is downloaded.
    - `text_field`: the text column; null counts as empty text.
    - `max_chars`: only the first `max_chars` characters are tokenised (NeMo's truncation;
      the output keeps the whole text, where NeMo's tokenizer stage also cut the text
      column itself). None: no cut.
    - `max_seq_length`: tokens per text after tokenising (truncated on the right); None:
      the tokenizer's `model_max_length`, or the model's `max_position_embeddings` when
      that is unset (as NeMo's tokenizer stage).
    - `batch_size`: texts per forward pass at the full `max_seq_length` (NeMo's
      `model_inference_batch_size`; default 256 on a GPU, 32 on a CPU). Texts are sorted
      by token count and shorter ones go in larger batches of the same number of padded
      tokens; results come back in input order.
    - `device`: "auto" (CUDA when `torch.cuda.is_available()`, else the CPU), "cpu", "cuda"
      or "cuda:N". `autocast`: float16 autocast on CUDA (NeMo's default).
    - `cpus`, `gpus`: what each worker asks for; `gpus=None` asks for one GPU when one is
      visible where the pipeline is planned (and `device` is not "cpu"), else none. Give
      `gpus` when the GPUs are on other nodes than the driver.
    - `rows_per_call`: rows the engine hands `process` at once; they are sorted together.

    Each text is classified independently of the others in its batch (padding is masked),
    so the output does not depend on batch boundaries beyond float rounding. Run it as a
    stage of its own: inside a `FilterChain` the keep decision holds but the prediction
    columns are not added. `score` is the index of the predicted label in `labels`.
    """

    regression: ClassVar[bool] = False

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        text_field: str = "text",
        pred_column: str = "preds",
        prob_column: str | None = None,
        filter_by: list[str] | tuple[str, ...] | None = None,
        max_chars: int | None = None,
        max_seq_length: int | None = None,
        batch_size: int | None = None,
        device: str = "auto",
        autocast: bool = True,
        cpus: float = 1.0,
        gpus: float | None = None,
        rows_per_call: int = ROWS_PER_CALL,
    ):
        for name, value in (
            ("max_chars", max_chars),
            ("max_seq_length", max_seq_length),
            ("batch_size", batch_size),
            ("rows_per_call", rows_per_call),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
        if isinstance(filter_by, str):
            raise TypeError(f"filter_by must be a list of labels, got the string {filter_by!r}")
        self.model_path = os.fspath(model_path)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.text_field = text_field
        self.pred_column = pred_column
        self.prob_column = prob_column
        self.filter_by = None if filter_by is None else tuple(str(x) for x in filter_by)
        self.max_chars = max_chars
        self.max_seq_length = max_seq_length
        self.inference_batch_size = batch_size
        self.batch_size = rows_per_call  # the engine's slice of a shard per `process` call
        self.device = device
        self.autocast = autocast
        self._cpus = float(cpus)
        self._gpus = gpus
        self._resources: Resources | None = None
        self._loaded: _Loaded | None = None

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        if self._resources is None:
            gpus = self._gpus
            if gpus is None:
                gpus = 1.0 if self.device != "cpu" and _cuda_available() else 0.0
            self._resources = Resources(cpus=self._cpus, gpus=float(gpus))
        return self._resources

    @resources.setter
    def resources(self, value: Resources) -> None:
        self._resources = value

    @property
    def rows_per_call(self) -> int:
        return self.batch_size

    @property
    def labels(self) -> list[str]:
        """The labels the model predicts, in label-id order (after `setup`)."""
        self.setup()
        return list(FINEWEB_LABELS if self.regression else self._loaded.labels)

    def setup(self) -> None:
        if self._loaded is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch

        folder = resolve_model_dir(self.model_path, self.cache_dir)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(max(1, int(self.resources.cpus)))
        loaded = _Loaded(folder, device, self.cache_dir)
        self._check_head(loaded, folder)
        tokenizer = loaded.tokenizer
        length = self.max_seq_length or tokenizer.model_max_length
        if not length or length > 100_000:  # tokenizers with no limit say int(1e30)
            length = getattr(loaded.config, "max_position_embeddings", 512)
        self._max_tokens = int(length)
        self._kept = self._max_tokens - int(tokenizer.num_special_tokens_to_add(pair=False))
        if self._kept < 1:
            raise ValueError(f"max_seq_length {self._max_tokens} leaves no room for text")
        # A long text is cut before tokenising when its cut provably holds the kept tokens
        # (see `_encode`); that needs word ids (fast tokenizers) and right truncation.
        exact = getattr(tokenizer, "is_fast", False) and tokenizer.truncation_side == "right"
        self._cut = CHARS_PER_TOKEN * self._max_tokens if exact else None
        if tokenizer.pad_token_id is None:
            raise ValueError(f"{folder}: the tokenizer has no padding token")
        self._batch = self.inference_batch_size or (
            GPU_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE
        )
        self._loaded = loaded

    def _check_head(self, loaded: _Loaded, folder: str) -> None:
        if len(loaded.labels) < 2:
            raise ValueError(
                f"{self.stage_name}: {folder} has a regression head (one output); a "
                "classifier of labels needs one output per label"
            )
        unknown = [x for x in self.filter_by or () if x not in loaded.labels]
        if unknown:
            raise ValueError(
                f"{self.stage_name}: filter_by {unknown} not among the model's labels "
                f"{loaded.labels}"
            )

    # ------------------------------------------------------------------ Filter contract

    def score(self, batch: pa.Table) -> np.ndarray:
        return self.annotate(batch)[1]

    def keep(self, scores: np.ndarray) -> np.ndarray:
        if self.filter_by is None:
            return np.ones(len(scores), dtype=bool)
        wanted = [self.labels.index(x) for x in self.filter_by]
        return np.isin(scores, wanted)

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        annotated, scores = self.annotate(batch)
        keep = pa.array(self.keep(scores) if len(scores) else np.zeros(0, bool), pa.bool_())
        return annotated.filter(keep), annotated.filter(pc.invert(keep)), scores

    def annotate(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        """`batch` with the prediction columns, and the scores of its rows (no row removed)."""
        column = text_column(batch, self.text_field, self.stage_name)
        outputs = self.predict_column(column) if batch.num_rows else None
        columns, scores = self._columns(outputs)
        for name, values in columns.items():
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, values)
        return batch, scores

    def _columns(self, outputs: np.ndarray | None) -> tuple[dict[str, pa.Array], np.ndarray]:
        if outputs is None:
            columns = {self.pred_column: pa.array([], pa.string())}
            if self.prob_column:
                columns[self.prob_column] = pa.array([], pa.list_(pa.float32()))
            return columns, np.zeros(0, dtype=np.int64)
        best = outputs.argmax(axis=1).astype(np.int64)
        labels = np.array(self._loaded.labels, dtype=object)
        columns = {self.pred_column: pa.array(labels[best], pa.string())}
        if self.prob_column:
            flat = pa.array(outputs.reshape(-1), pa.float32())
            offsets = pa.array(np.arange(0, outputs.size + 1, outputs.shape[1], dtype=np.int32))
            columns[self.prob_column] = pa.ListArray.from_arrays(offsets, flat)
        return columns, best

    # ------------------------------------------------------------------ inference

    def predict(self, texts: list[str | None]) -> np.ndarray:
        """Model outputs for `texts` in their order: probabilities (rows x labels) for a
        classifier, raw scores (rows x 1) for a regression head."""
        return self.predict_column(pa.array(texts, pa.large_string()))

    def predict_column(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        self.setup()
        column = pc.fill_null(column, "")
        if self.max_chars:
            column = pc.utf8_slice_codeunits(column, 0, self.max_chars)
        width = 1 if self.regression else len(self._loaded.labels)
        out = np.empty((len(column), width), dtype=np.float32)
        for start in range(0, len(column), self.rows_per_call):
            texts = column.slice(start, self.rows_per_call).to_pylist()
            out[start : start + len(texts)] = self._forward(self._encode(texts))
        return out

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, truncated to `max_seq_length` as the tokenizer truncates.

        A text longer than `_cut` characters is tokenised from its first `_cut` characters
        when they provably hold its kept tokens (the argument of `TextEmbedder._measure`: a
        fast tokenizer splits text into words and each word into tokens on its own, so only
        the last word of the cut can differ from the whole text's; the kept tokens must end
        two words before it). Else, and for slow tokenizers, the whole text is tokenised."""
        tokenizer, cut = self._loaded.tokenizer, self._cut
        whole = {"truncation": True, "max_length": self._max_tokens}
        plain = {"return_attention_mask": False, "return_token_type_ids": False}
        if cut is None:
            return [
                ids
                for start in range(0, len(texts), TOKENISE_ROWS)
                for ids in tokenizer(texts[start : start + TOKENISE_ROWS], **whole, **plain)[
                    "input_ids"
                ]
            ]
        encoded_all: list[list[int]] = []
        for start in range(0, len(texts), TOKENISE_ROWS):
            chunk = texts[start : start + TOKENISE_ROWS]
            encoded = tokenizer(
                [t[:cut] for t in chunk], return_special_tokens_mask=True, verbose=False, **plain
            )
            for at, text in enumerate(chunk):
                ids = encoded["input_ids"][at]
                if len(text) > cut:
                    words = [w for w in encoded.word_ids(at) if w is not None]
                    if len(words) <= self._kept or words[-1] < words[self._kept - 1] + 2:
                        encoded_all.append(tokenizer(text, **whole, **plain)["input_ids"])
                        continue
                encoded_all.append(self._truncate(ids, encoded["special_tokens_mask"][at]))
        return encoded_all

    def _truncate(self, ids: list[int], special: list[int]) -> list[int]:
        """`ids` with content tokens past the first `_kept` removed (special tokens stay):
        what the tokenizer's right truncation to `max_seq_length` gives."""
        if len(ids) <= self._max_tokens:
            return ids
        kept, content = [], 0
        for token, is_special in zip(ids, special, strict=True):
            if is_special:
                kept.append(token)
            elif content < self._kept:
                kept.append(token)
                content += 1
        return kept

    def _forward(self, encoded: list[list[int]]) -> np.ndarray:
        """Outputs for `encoded` in its order, computed longest first in batches of at most
        `batch_size * max_seq_length` padded tokens."""
        import torch

        loaded = self._loaded
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")
        budget = self._batch * self._max_tokens
        width = 1 if self.regression else len(loaded.labels)
        out = np.empty((len(encoded), width), dtype=np.float32)
        pad = loaded.tokenizer.pad_token_id
        on_cuda = loaded.device.type == "cuda"
        cast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if on_cuda and self.autocast
            else contextlib.nullcontext()
        )
        start = 0
        with torch.inference_mode(), cast:
            while start < len(order):
                longest = max(1, int(lengths[order[start]]))
                rows = order[start : start + max(1, budget // longest)]
                ids = np.full((len(rows), longest), pad, dtype=np.int64)
                mask = np.zeros((len(rows), longest), dtype=np.int64)
                for j, row in enumerate(rows):
                    ids[j, : lengths[row]] = encoded[row]
                    mask[j, : lengths[row]] = 1
                logits = loaded.logits(
                    torch.from_numpy(ids).to(loaded.device),
                    torch.from_numpy(mask).to(loaded.device),
                ).float()
                if not self.regression:
                    logits = torch.softmax(logits, dim=1)
                out[rows] = logits.cpu().numpy()
                start += len(rows)
        return out


class QualityClassifier(SequenceClassifier):
    """NeMo Curator's `QualityClassifier`: nvidia/quality-classifier-deberta (DeBERTa-v3
    base, a custom `fc` head; labels High, Medium, Low). Adds `quality_pred` and
    `quality_prob` (the probabilities of every label; NeMo writes them only when given a
    `score_field`: `prob_column=None` leaves them out). NeMo's defaults: `max_chars`
    6000, `max_seq_length` 1024. `filter_by=["High"]` keeps the high-quality rows."""

    def __init__(
        self,
        model_path: str | os.PathLike = QUALITY_MODEL,
        *,
        pred_column: str = "quality_pred",
        prob_column: str | None = "quality_prob",
        max_chars: int | None = 6000,
        max_seq_length: int | None = 1024,
        **kwargs,
    ):
        super().__init__(
            model_path,
            pred_column=pred_column,
            prob_column=prob_column,
            max_chars=max_chars,
            max_seq_length=max_seq_length,
            **kwargs,
        )


class DomainClassifier(SequenceClassifier):
    """NeMo Curator's `DomainClassifier`: nvidia/domain-classifier (DeBERTa-v3 base, a
    custom `fc` head; 26 domains such as Finance, Health, Travel_and_Transportation). Adds
    `domain_pred`; `prob_column` (None, as NeMo's `score_field`) adds the probabilities.
    NeMo's defaults: `max_chars` 2000, `max_seq_length` 512."""

    def __init__(
        self,
        model_path: str | os.PathLike = DOMAIN_MODEL,
        *,
        pred_column: str = "domain_pred",
        prob_column: str | None = None,
        max_chars: int | None = 2000,
        max_seq_length: int | None = 512,
        **kwargs,
    ):
        super().__init__(
            model_path,
            pred_column=pred_column,
            prob_column=prob_column,
            max_chars=max_chars,
            max_seq_length=max_seq_length,
            **kwargs,
        )


class MultilingualDomainClassifier(DomainClassifier):
    """NeMo Curator's `MultilingualDomainClassifier`: nvidia/multilingual-domain-classifier
    (the domain classifier's labels in 52 languages). Adds `multilingual_domain_pred`."""

    def __init__(
        self,
        model_path: str | os.PathLike = MULTILINGUAL_DOMAIN_MODEL,
        *,
        pred_column: str = "multilingual_domain_pred",
        **kwargs,
    ):
        super().__init__(model_path, pred_column=pred_column, **kwargs)


class FineWebEduClassifier(SequenceClassifier):
    """NeMo Curator's `FineWebEduClassifier`: HuggingFaceFW/fineweb-edu-classifier, a
    regression head scoring educational value from 0 to 5 (Penedo et al., "The FineWeb
    Datasets", 2024). Adds, with NeMo's names and rules:

    - `fineweb-edu-score-float` (float32): the model's score clipped to 0..5;
    - `fineweb-edu-score-int` (int64): that score rounded half to even (Python's and
      NumPy's `round`, as NeMo's), so 2.5 gives 2;
    - `fineweb-edu-score-label` (`pred_column`): "high_quality" when the score is at least
      2.5, else "low_quality"; `filter_by=["high_quality"]` keeps those rows.

    The model needs one output (`num_labels=1`). NeMo's defaults: no `max_chars`,
    `max_seq_length` 512. `score` is the float score.
    """

    regression: ClassVar[bool] = True

    def __init__(
        self,
        model_path: str | os.PathLike = FINEWEB_EDU_MODEL,
        *,
        pred_column: str = "fineweb-edu-score-label",
        float_score_column: str = "fineweb-edu-score-float",
        int_score_column: str = "fineweb-edu-score-int",
        max_chars: int | None = None,
        max_seq_length: int | None = 512,
        **kwargs,
    ):
        if "prob_column" in kwargs:
            raise TypeError(f"{type(self).__name__} has no prob_column: a regression head")
        super().__init__(
            model_path,
            pred_column=pred_column,
            max_chars=max_chars,
            max_seq_length=max_seq_length,
            **kwargs,
        )
        self.float_score_column = float_score_column
        self.int_score_column = int_score_column

    def _check_head(self, loaded: _Loaded, folder: str) -> None:
        if len(loaded.labels) != 1:
            raise ValueError(
                f"{self.stage_name}: {folder} has {len(loaded.labels)} outputs; a FineWeb-Edu "
                "scorer is a regression head with one output (num_labels=1)"
            )
        unknown = [x for x in self.filter_by or () if x not in FINEWEB_LABELS]
        if unknown:
            raise ValueError(f"{self.stage_name}: filter_by {unknown} not in {FINEWEB_LABELS}")

    def keep(self, scores: np.ndarray) -> np.ndarray:
        if self.filter_by is None:
            return np.ones(len(scores), dtype=bool)
        high = np.asarray(scores) >= FINEWEB_HIGH_QUALITY
        return (high & ("high_quality" in self.filter_by)) | (
            ~high & ("low_quality" in self.filter_by)
        )

    def _columns(self, outputs: np.ndarray | None) -> tuple[dict[str, pa.Array], np.ndarray]:
        raw = np.zeros(0, np.float32) if outputs is None else outputs[:, 0]
        clipped = np.clip(raw, 0.0, 5.0).astype(np.float32)
        labels = np.where(raw >= FINEWEB_HIGH_QUALITY, *FINEWEB_LABELS).astype(object)
        columns = {
            self.float_score_column: pa.array(clipped, pa.float32()),
            self.int_score_column: pa.array(np.rint(clipped).astype(np.int64), pa.int64()),
            self.pred_column: pa.array(labels, pa.string()),
        }
        return columns, clipped.astype(np.float64)


class FineWebMixtralEduClassifier(FineWebEduClassifier):
    """NeMo Curator's `FineWebMixtralEduClassifier`: the FineWeb-Edu scorer trained on
    Mixtral 8x22B's annotations (nvidia/nemocurator-fineweb-mixtral-edu-classifier); the
    columns are `fineweb-mixtral-edu-score-{float,int,label}`."""

    def __init__(self, model_path: str | os.PathLike = FINEWEB_MIXTRAL_EDU_MODEL, **kwargs):
        kwargs.setdefault("pred_column", "fineweb-mixtral-edu-score-label")
        kwargs.setdefault("float_score_column", "fineweb-mixtral-edu-score-float")
        kwargs.setdefault("int_score_column", "fineweb-mixtral-edu-score-int")
        super().__init__(model_path, **kwargs)


class FineWebNemotronEduClassifier(FineWebEduClassifier):
    """NeMo Curator's `FineWebNemotronEduClassifier`: the FineWeb-Edu scorer trained on
    Nemotron-4-340B's annotations (nvidia/nemocurator-fineweb-nemotron-4-edu-classifier);
    the columns are `fineweb-nemotron-edu-score-{float,int,label}`."""

    def __init__(self, model_path: str | os.PathLike = FINEWEB_NEMOTRON_EDU_MODEL, **kwargs):
        kwargs.setdefault("pred_column", "fineweb-nemotron-edu-score-label")
        kwargs.setdefault("float_score_column", "fineweb-nemotron-edu-score-float")
        kwargs.setdefault("int_score_column", "fineweb-nemotron-edu-score-int")
        super().__init__(model_path, **kwargs)


# `KIND=FOLDER` as the text flow's `--classifiers` takes it: kind -> class name.
CLASSIFIER_KINDS = {
    "quality": "QualityClassifier",
    "domain": "DomainClassifier",
    "multilingual-domain": "MultilingualDomainClassifier",
    "fineweb-edu": "FineWebEduClassifier",
}


def classifier_from_spec(spec: str, build: bool = True):
    """The classifier `KIND=FOLDER` names (`quality=models/quality-deberta`), built unless
    `build` is False (then only checked); ValueError naming the kinds otherwise."""
    kind, eq, folder = spec.partition("=")
    if not eq or kind not in CLASSIFIER_KINDS or not folder:
        raise ValueError(
            f"classifier {spec!r}: expected KIND=FOLDER, KIND one of {sorted(CLASSIFIER_KINDS)}"
        )
    return globals()[CLASSIFIER_KINDS[kind]](model_path=folder) if build else None
