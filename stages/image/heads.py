"""Small scoring heads over CLIP image embeddings, loaded from their published weights.

Both read the state dict as it is published (a `.safetensors`, `.pth` or `.pt` file, or a
folder holding one), check its layout before use, and infer the embedding size from it, so
a user's checkpoint loads through the same code as the tests' tiny random ones.
"""

from __future__ import annotations

import os

import numpy as np

from stages.image.clip import check_model_dir

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def weights_file(path: str, what: str) -> str:
    """The weights file `path` names: the file itself, or the one file of a folder."""
    check_model_dir(path, what)
    if os.path.isfile(path):
        return path
    found = sorted(f for f in os.listdir(path) if f.endswith(WEIGHT_SUFFIXES))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{what}: {path!r} should hold one weights file ({', '.join(WEIGHT_SUFFIXES)}), "
            f"found {found or 'none'}"
        )
    return os.path.join(path, found[0])


def load_state_dict(path: str) -> dict:
    """The tensors of a `.safetensors` file or a torch-saved state dict (weights only)."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (found {type(state).__name__})")
    return state


def check_layout(state: dict, expected: list[str], path: str, what: str) -> None:
    """Raise ValueError naming the keys that differ from the published layout."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise ValueError(
            f"{path}: not the {what} layout (missing {missing or 'none'}, unexpected "
            f"{extra[:6] or 'none'})"
        )


def check_dim(embeddings: np.ndarray, dim: int, path: str) -> None:
    if embeddings.shape[1] != dim:
        raise ValueError(
            f"{path} takes {dim}-d embeddings; the embedding column holds "
            f"{embeddings.shape[1]}-d ones (another CLIP model?)"
        )
