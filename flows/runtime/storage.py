"""Where data lives: storage options, URIs, dataset versions and the code version.

Every input and output is an fsspec URL: `s3://bucket/prefix` goes through s3fs (AWS S3,
MinIO, any S3-compatible endpoint), a plain path is local. Credentials and endpoints come
from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`,
`AWS_PROFILE`) or from `CURATE_STORAGE_OPTIONS` (a JSON object of fsspec options), never
from flow parameters, which Prefect stores and shows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from stages.io.fs import join  # noqa: F401  (one join for flows and stages)


def storage_options() -> dict[str, Any]:
    """fsspec options for every filesystem the run touches (from CURATE_STORAGE_OPTIONS)."""
    raw = os.environ.get("CURATE_STORAGE_OPTIONS")
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CURATE_STORAGE_OPTIONS is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ValueError("CURATE_STORAGE_OPTIONS must be a JSON object")
    return options


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def normalize_uri(uri: str) -> str:
    """Absolute local paths (so Ray workers agree on them); remote URIs unchanged."""
    if is_remote(uri):
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return str(Path(uri).expanduser().resolve())


def asset_key(uri: str) -> str:
    """A Prefect asset key (a URI) for a dataset location; globs are cut at the first
    wildcard so the key names the folder the inputs come from."""
    for i, ch in enumerate(uri):
        if ch in "*?[":
            uri = uri[:i].rsplit("/", 1)[0]
            break
    if is_remote(uri):
        return uri.rstrip("/")
    return "file://" + normalize_uri(uri)


@functools.cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        version = metadata.version("curate")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    root = Path(__file__).resolve().parents[2]  # the repository, in a checkout
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            version = f"{version}+g{sha}" + (".dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def version_id(inputs: list[dict], parameters: dict) -> str:
    """A deterministic version name for (inputs, parameters): re-running the same job on
    the same inputs resumes (or finds committed) the same version instead of starting over."""
    digest = hashlib.sha256(
        json.dumps({"inputs": inputs, "parameters": parameters}, sort_keys=True).encode()
    ).hexdigest()
    return f"v-{digest[:12]}"
