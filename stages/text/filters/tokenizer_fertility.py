"""`TokenizerFertilityFilter`: drop code files a tokenizer cuts into too many pieces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes


def _load_pieces_counter(path: Path):
    """A function from a list of texts to their numbers of tokenizer pieces."""
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            path = path / "tokenizer.json"
        elif (path / "tokenizer.model").is_file():
            path = path / "tokenizer.model"
        else:
            raise FileNotFoundError(
                f"TokenizerFertilityFilter: {path} holds neither tokenizer.json nor tokenizer.model"
            )
    if path.suffix == ".json":
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))

        def count(texts: list[str]) -> list[int]:
            encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
            return [len(e.tokens) for e in encodings]

        return count
    try:
        import sentencepiece
    except ImportError as error:
        raise ImportError(
            f"TokenizerFertilityFilter: {path} is a SentencePiece model and the sentencepiece "
            "package is not installed; install it, or give a Hugging Face tokenizer "
            "(tokenizer.json or its folder)"
        ) from error
    processor = sentencepiece.SentencePieceProcessor()
    processor.Load(str(path))
    return lambda texts: [len(processor.encode_as_pieces(t)) for t in texts]


class TokenizerFertilityFilter(Filter):
    """Characters per tokenizer piece: `len(text) / pieces`, the pieces being what the
    tokenizer cuts the text into (no special tokens). A text with no piece (empty or
    null) scores -1.

    Keep rule: `score >= min_char_to_token_ratio` (inclusive). NeMo Curator's
    `TokenizerFertilityFilter` (default 2.5; its code recipe uses 2): text the tokenizer
    handles badly (binary data, unusual scripts) has few characters per token.
    `path_to_tokenizer` is a local SentencePiece model (`.model`, needs the sentencepiece
    package, as in NeMo) or a Hugging Face tokenizer (`tokenizer.json`, or a folder holding
    `tokenizer.json` or `tokenizer.model`); it is required. The tokenizer loads in
    `setup()` (once per worker), or on first use.
    """

    def __init__(
        self,
        path_to_tokenizer: str | os.PathLike | None = None,
        min_char_to_token_ratio: float = 2.5,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        if path_to_tokenizer is None:
            raise ValueError(
                "TokenizerFertilityFilter: path_to_tokenizer is required: a local SentencePiece "
                "model or Hugging Face tokenizer file or folder"
            )
        path = Path(path_to_tokenizer)
        if not path.exists():
            raise FileNotFoundError(f"TokenizerFertilityFilter: no tokenizer at {path}")
        self.path_to_tokenizer = os.fspath(path_to_tokenizer)
        self.min_char_to_token_ratio = min_char_to_token_ratio
        self.text_field = text_field
        self.keep_score = keep_score
        self._count = None

    def setup(self) -> None:
        if self._count is None:
            self._count = _load_pieces_counter(Path(self.path_to_tokenizer))

    def __getstate__(self):
        # The loaded tokenizer stays in its worker; a copy loads its own in setup().
        return {**self.__dict__, "_count": None}

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        texts = text.array.to_pylist()
        pieces = np.asarray(self._count(texts), dtype=np.float64)
        chars = text.char_counts.astype(np.float64)
        scores = np.full(len(texts), -1.0)
        np.divide(chars, pieces, out=scores, where=pieces > 0)
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_char_to_token_ratio
