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
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from stages.io.fs import exists, filesystem, join  # one join for flows and stages


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


GLOB_CHARS = "*?["


def is_pattern(uri: str, options: dict | None = None) -> bool:
    """True when `uri` is a glob: it holds a wildcard (`*?[`) and names no existing file or
    folder (a folder literally named `a [1]` is that folder, not a pattern)."""
    if not any(c in uri for c in GLOB_CHARS):
        return False
    try:
        return not exists(normalize_uri(uri), options if options is not None else storage_options())
    except Exception:  # noqa: BLE001 - unreachable or forbidden: a pattern, as written
        return True


def glob_base(uri: str) -> str:
    """The folder of a glob: everything before the segment holding the first wildcard."""
    first = min(uri.find(c) for c in GLOB_CHARS if c in uri)
    return uri[:first].rsplit("/", 1)[0]


# Prefect 3's restricted characters (prefect.types.names), in case it is not importable.
_ASSET_RESTRICTED = frozenset("\n\r\t\0 #?&%\"'<>[]{}|\\^`")
_ASSET_ESCAPE = "~"  # Prefect refuses `%` too, so percent-encoding uses `~` instead


@functools.cache
def _asset_rules() -> tuple[frozenset[str], int]:
    """(characters an asset key may not hold, the longest key) from Prefect itself."""
    try:
        from prefect.types.names import MAX_ASSET_KEY_LENGTH, RESTRICTED_ASSET_CHARACTERS
    except ImportError:
        return _ASSET_RESTRICTED, 512
    return _ASSET_RESTRICTED | frozenset(RESTRICTED_ASSET_CHARACTERS), MAX_ASSET_KEY_LENGTH


def asset_key(uri: str, pattern: bool | None = None) -> str:
    """The Prefect asset key (a URI) of a dataset location.

    A glob (`pattern`; None: `is_pattern`) is cut at the first wildcard so the key names
    the folder the inputs come from. Characters Prefect refuses in a key (space, `#`, `%`,
    `?`, `&`, `[`, quotes, control characters...) are percent-encoded with `~` for `%`
    (`a b` -> `a~20b`, `~` -> `~7E`), so two locations never share a key; a key longer
    than Prefect allows keeps its start and ends with a hash of the whole."""
    if pattern is None:
        pattern = is_pattern(uri)
    if pattern:
        uri = glob_base(uri)
    if is_remote(uri):
        scheme, rest = uri.split("://", 1)
        scheme, rest = scheme.lower(), rest.rstrip("/")
    else:
        scheme, rest = "file", normalize_uri(uri)
    restricted, longest = _asset_rules()
    escaped = "".join(
        "".join(f"~{b:02X}" for b in ch.encode())
        if ch in restricted or ch == _ASSET_ESCAPE or ord(ch) < 0x20 or ch == "\x7f"
        else ch
        for ch in rest
    )
    key = f"{scheme}://{escaped}"
    if len(key) > longest:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        key = f"{key[: longest - 14]}~h{digest}"
    return key


def check_asset_keys(input: str, output: str) -> None:
    """Before any work: the input and output locations make valid Prefect asset keys
    (checked with Prefect's own validator), so the commit cannot fail on them."""
    try:
        from prefect.types.names import validate_valid_asset_key
    except ImportError:  # not run by Prefect: no asset
        return
    for role, uri, pattern in (("input", input, None), ("output", output, False)):
        key = asset_key(uri, pattern=pattern)
        try:
            validate_valid_asset_key(key)
        except ValueError as exc:
            raise ValueError(
                f"{uri}: this {role} location cannot be a Prefect asset ({key!r}: {exc})"
            ) from None


def check_bucket(output: str, options: dict, create: bool = False) -> None:
    """Before any work: the S3 bucket of `output` exists (or is created when `create`), so
    a typo in its name fails at once instead of writing to a bucket nobody meant."""
    if output.split("://", 1)[0] not in ("s3", "s3a") or "://" not in output:
        return
    fs, path = filesystem(output, options)
    bucket = path.split("/", 1)[0]
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
        return
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - forbidden or unreachable: the writes will tell
        return
    if not create:
        raise ValueError(
            f"{output}: the bucket {bucket!r} does not exist (check its name; "
            f"create_bucket=True, --create-bucket, creates it)"
        )
    fs.mkdir(bucket)


# Sample files a run writes inside its output (data, quarantine, WebDataset, manifests).
_WRITTEN = (
    "v-0/part-00000-0000-0.parquet",
    "v-0/quarantine/part-00000-0000.parquet",
    "v-0/00000.tar",
    "v-0/part-00000-0000-0.jsonl",
)


def check_output_outside_input(input: str, output: str, options: dict) -> None:
    """Before any work: the output is not inside the input folder, where the next run
    would read it as input (and change the version). A dataset input, read through its
    manifest or `_latest`, lists its files: an output inside it is fine; so is one inside
    the folder of a glob that cannot match the files a run writes."""
    from stages.io.commit import is_dataset

    if is_pattern(input, options):
        folder = glob_base(input)
        if not _inside(output, folder):
            return
        from fsspec.utils import glob_translate

        matches = re.compile(glob_translate(input)).match
        if not any(matches(join(output, sample)) for sample in _WRITTEN):
            return
    else:
        fs, path = filesystem(input, options)
        if not fs.isdir(path) or is_dataset(input, options):
            return
        folder = input
    if _inside(output, folder):
        raise ValueError(
            f"{output} is inside the input folder {folder}: a later run would read this "
            "output as input; write it elsewhere"
        )


def _inside(uri: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return uri.rstrip("/") == folder or uri.startswith(folder + "/")


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
