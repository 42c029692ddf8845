"""`TokenCountFilter`: keep documents whose length in tokens lies in a range."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes


class TokenCountFilter(Filter):
    """Number of token ids the tokenizer gives the text (`tokenizer.encode(text)`, special
    tokens such as BOS included, as NeMo Curator counts them). Null texts count as empty.

    Keep rule: `min_tokens <= count <= max_tokens` (both inclusive; the defaults 0 and
    infinity keep everything). NeMo Curator's `TokenCountFilter`, same arguments except
    that nothing is downloaded: `hf_model_name` is a local tokenizer folder (what
    `save_pretrained` writes) or the name of a model already in the Hugging Face cache
    (`HF_HOME`), loaded with `local_files_only=True`; `transformers_init_kwargs` go to
    `AutoTokenizer.from_pretrained` (`local_files_only` is not allowed there). Give either
    `tokenizer` (an object with `encode(text)`) or `hf_model_name`, not both. NeMo's
    `hf_token` is not taken: a token for the hub belongs in the environment.

    The tokenizer loads in `setup()` (once per worker), or on first use.
    """

    def __init__(
        self,
        tokenizer: Any | None = None,
        hf_model_name: str | os.PathLike | None = None,
        min_tokens: int = 0,
        max_tokens: int | float = math.inf,
        transformers_init_kwargs: dict[str, Any] | None = None,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        if tokenizer is None and hf_model_name is None:
            raise ValueError("TokenCountFilter: give either tokenizer or hf_model_name")
        if tokenizer is not None and hf_model_name is not None:
            raise ValueError("TokenCountFilter: give either tokenizer or hf_model_name, not both")
        init_kwargs = dict(transformers_init_kwargs or {})
        if "local_files_only" in init_kwargs:
            raise ValueError(
                "TokenCountFilter: transformers_init_kwargs may not set local_files_only "
                "(tokenizers always load from local files)"
            )
        self.tokenizer = tokenizer
        self.hf_model_name = None if hf_model_name is None else os.fspath(hf_model_name)
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        self.transformers_init_kwargs = init_kwargs
        self.text_field = text_field
        self.keep_score = keep_score

    def setup(self) -> None:
        if self.tokenizer is None:
            self.tokenizer = self._load()

    def _load(self):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(
                self.hf_model_name, local_files_only=True, **self.transformers_init_kwargs
            )
        except OSError as error:
            raise FileNotFoundError(
                f"TokenCountFilter: no tokenizer at hf_model_name={self.hf_model_name!r}: give "
                "a local tokenizer folder or a model already in the Hugging Face cache "
                f"({error})"
            ) from error

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        texts = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        texts = texts.array.to_pylist()
        if callable(self.tokenizer) and hasattr(self.tokenizer, "model_input_names"):
            # A Hugging Face tokenizer encodes the batch at once: the same ids as encode().
            ids = self.tokenizer(texts)["input_ids"]
            return np.array([len(row) for row in ids], dtype=np.int64)
        return np.array([len(self.tokenizer.encode(t)) for t in texts], dtype=np.int64)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return (scores >= self.min_tokens) & (scores <= self.max_tokens)
