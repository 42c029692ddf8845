"""Tiny randomly initialised models in the layouts real checkpoints are published in, so
tests load them through the code that loads a real one:

- `tiny_clip`: a Hugging Face CLIP folder as openai/clip-vit-large-patch14 ships it
  (`config.json` and `model.safetensors` from `save_pretrained`, the image processor's
  `preprocessor_config.json` in the hub's legacy `CLIPFeatureExtractor` form, a CLIP BPE
  tokenizer over a tiny vocabulary), 2-layer 32-wide towers, 32x32 images, DIM-d output;
- `aesthetic_state` / `save_aesthetic`: the LAION improved-aesthetic-predictor head
  (`layers.0/2/4/6/7`), widths scaled down;
- `nsfw_state` / `save_nsfw`: LAION's CLIP NSFW detector head as NeMo Curator loads it
  (`norm.mean`, `norm.variance`, `linear_1..4`), widths scaled down.

The heads are saved as `.safetensors` or as a torch state dict (`.pth`, `.pt`), by suffix.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

DIM = 16  # projection size of the tiny CLIP: the heads below take DIM-d embeddings
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def tiny_clip(folder: Path, seed: int = 0) -> str:
    """Save a tiny random CLIP model in `folder` (created); returns the folder."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,!?'-":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: a word is its letters
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64}
    text |= {"num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77}
    text |= {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    vision |= {"num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=DIM)
    CLIPModel(config).eval().save_pretrained(folder)
    processor = {
        "crop_size": 32,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "resample": 3,
        "size": 32,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return str(folder)


def save_state(state: dict, path: Path) -> str:
    """Save tensors `state` at `path`: safetensors for `.safetensors`, else torch.save."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return str(path)


def aesthetic_state(dim: int = DIM, seed: int = 1) -> dict:
    """The improved-aesthetic-predictor layout, widths scaled down: dim -> 32 -> 16 -> 8 ->
    4 -> 1 under keys layers.0/2/4/6/7 (the dropout layers have none). The last bias is
    about 5, so scores land around the default threshold."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    sizes = [dim, 32, 16, 8, 4, 1]
    state = {}
    for index, inp, out in zip((0, 2, 4, 6, 7), sizes, sizes[1:], strict=False):
        state[f"layers.{index}.weight"] = torch.randn(out, inp, generator=generator) * 0.5
        state[f"layers.{index}.bias"] = torch.randn(out, generator=generator) + 5.0 * (index == 7)
    return state


def nsfw_state(dim: int = DIM, seed: int = 2) -> dict:
    """The CLIP NSFW head's layout, widths scaled down: norm over dim, then dim -> 8 -> 12
    -> 6 -> 1 (linear_1..4)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    sizes = [dim, 8, 12, 6, 1]
    state = {
        "norm.mean": torch.randn(dim, generator=generator) * 0.01,
        "norm.variance": torch.rand(dim, generator=generator) * 0.02 + 0.01,
    }
    for i, (inp, out) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        state[f"linear_{i}.weight"] = torch.randn(out, inp, generator=generator) * 0.5
        state[f"linear_{i}.bias"] = torch.randn(out, generator=generator) * 0.1
    return state


def save_aesthetic(path: Path, dim: int = DIM) -> str:
    return save_state(aesthetic_state(dim), path)


def save_nsfw(path: Path, dim: int = DIM) -> str:
    return save_state(nsfw_state(dim), path)
