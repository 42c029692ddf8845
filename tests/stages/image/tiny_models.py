"""Tiny randomly initialised models in the layouts real checkpoints are published in, so
tests load them through the code that loads a real one: a Hugging Face CLIP folder
(`save_pretrained`, an image processor, a CLIP tokenizer with a tiny vocabulary), the LAION
aesthetic head and the LAION CLIP NSFW head (state dicts, `.safetensors` or `.pth`)."""

from __future__ import annotations

import json
import string
from pathlib import Path

DIM = 16  # projection size of the tiny CLIP: the heads below take DIM-d embeddings


def tiny_clip(folder: Path, seed: int = 0) -> str:
    """A CLIP model with 2-layer 32-wide towers, 32x32 images, DIM-d projections."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + ".,!?'-"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64}
    text |= {"num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77}
    text |= {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    vision |= {"num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=DIM)
    CLIPModel(config).eval().save_pretrained(folder)
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor.save_pretrained(folder)
    return str(folder)


def _save(state: dict, path: Path) -> str:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return str(path)


def aesthetic_state(dim: int = DIM, seed: int = 1) -> dict:
    """The improved-aesthetic-predictor layout, widths scaled down: dim -> 32 -> 16 -> 8 ->
    4 -> 1, keys layers.0/2/4/6/7 (the dropout layers have none)."""
    import torch

    torch.manual_seed(seed)
    sizes = [dim, 32, 16, 8, 4, 1]
    state = {}
    for index, (inp, out) in zip((0, 2, 4, 6, 7), zip(sizes, sizes[1:], strict=False), strict=True):
        state[f"layers.{index}.weight"] = torch.randn(out, inp) * 0.5
        state[f"layers.{index}.bias"] = torch.randn(out) + 5.0 * (index == 7)
    return state


def nsfw_state(dim: int = DIM, seed: int = 2) -> dict:
    """The CLIP NSFW head's layout, widths scaled down: norm, then dim -> 8 -> 12 -> 6 -> 1."""
    import torch

    torch.manual_seed(seed)
    sizes = [dim, 8, 12, 6, 1]
    state = {"norm.mean": torch.randn(dim) * 0.01, "norm.variance": torch.rand(dim) * 0.02 + 0.01}
    for i, (inp, out) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        state[f"linear_{i}.weight"] = torch.randn(out, inp) * 0.5
        state[f"linear_{i}.bias"] = torch.randn(out) * 0.1
    return state


def save_aesthetic(path: Path, dim: int = DIM) -> str:
    return _save(aesthetic_state(dim), path)


def save_nsfw(path: Path, dim: int = DIM) -> str:
    return _save(nsfw_state(dim), path)
