"""fsspec access shared by readers, writers and the commit protocol.

Every location is a URI: an absolute local path, `file://...`, or `s3://bucket/key` (s3fs,
which reads credentials and `AWS_ENDPOINT_URL` from the environment).
"""

from __future__ import annotations

import os
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

# s3fs keeps directory listings in a cache by default; a run that writes and then lists
# (markers, manifests) must see its own writes, so listings are never cached.
_NO_LISTING_CACHE = {"s3", "s3a", "gs", "gcs", "abfs", "az"}


def filesystem(
    uri: str, storage_options: dict | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for `uri` and the path inside it."""
    options = dict(storage_options or {})
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    if protocol in _NO_LISTING_CACHE:
        options.setdefault("use_listings_cache", False)
    return fsspec.core.url_to_fs(uri, **options)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A full URI for `path` on `fs`: an absolute path when local, `proto://...` otherwise."""
    if is_local(fs):
        return path
    return fs.unstrip_protocol(path)


def join(uri: str, *parts: str) -> str:
    """`uri` joined with relative `parts` by `/` (works for local paths and URLs)."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def write_bytes_atomic(uri: str, data: bytes, storage_options: dict | None = None) -> int:
    """Write `data` to `uri` so that readers see either nothing or the whole file.

    Local: a temporary sibling file renamed over the target (`os.replace` is atomic).
    Object stores: one PUT, which becomes visible only once complete.
    """
    fs, path = filesystem(uri, storage_options)
    if is_local(fs):
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        fs.pipe_file(path, data)
    return len(data)


def read_bytes(uri: str, storage_options: dict | None = None) -> bytes:
    fs, path = filesystem(uri, storage_options)
    return fs.cat_file(path)


def read_parquet(uri: str, storage_options: dict | None = None, columns=None):
    """A whole Parquet file (every column, internal ones too) as a pyarrow Table."""
    import pyarrow.parquet as pq

    fs, path = filesystem(uri, storage_options)
    with fs.open(path, "rb") as f:
        return pq.read_table(f, columns=columns)


def exists(uri: str, storage_options: dict | None = None) -> bool:
    fs, path = filesystem(uri, storage_options)
    return fs.exists(path)


def dangling_link(uri: str) -> str | None:
    """The target of `uri` when it is a local symbolic link to nothing, else None."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    path = uri.removeprefix("file://")
    if os.path.islink(path) and not os.path.exists(path):
        return os.readlink(path)
    return None
