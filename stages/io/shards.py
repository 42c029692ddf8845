"""Shard planning: turn input paths, directories and globs into a sorted list of `Shard`s.

A shard is one unit of reading work: a whole file, or a byte range of a large plain JSONL
file. A reader of the range `[start, end)` owns every line that *starts* inside it (the
Hadoop input-split rule), so splitting loses and duplicates no line.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Literal

from stages.io.errors import InputNotFound
from stages.io.fs import filesystem, to_uri

_FORMATS: dict[str, tuple[str, str | None]] = {
    # extension -> (format, compression)
    ".jsonl": ("jsonl", None),
    ".json": ("jsonl", None),
    ".ndjson": ("jsonl", None),
    ".jsonl.gz": ("jsonl", "gzip"),
    ".json.gz": ("jsonl", "gzip"),
    ".ndjson.gz": ("jsonl", "gzip"),
    ".jsonl.zst": ("jsonl", "zstd"),
    ".json.zst": ("jsonl", "zstd"),
    ".ndjson.zst": ("jsonl", "zstd"),
    ".parquet": ("parquet", None),
}
_GLOB_CHARS = "*?["
_COUNT_BLOCK = 16 << 20


def detect_format(uri: str) -> tuple[str, str | None] | None:
    """`(format, compression)` from the file name, or None when the extension is unknown."""
    name = uri.rsplit("/", 1)[-1].lower()
    for ext in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return _FORMATS[ext]
    return None


@dataclass(frozen=True)
class Shard:
    """One unit of reading work.

    `start`/`end` is a byte range of a plain JSONL file (`end=None`: to the end of the
    file); compressed and Parquet files are read whole. `first_line` is the 1-based line
    number of the first line owned by the range (None: the reader counts it).
    """

    uri: str
    file_index: int
    part: int = 0
    start: int = 0
    end: int | None = None
    format: Literal["jsonl", "parquet"] = "jsonl"
    first_line: int | None = 1

    @property
    def key(self) -> str:
        """Stable, filename-safe, sortable name of the shard."""
        return f"{self.file_index:05d}-{self.part:04d}"

    @property
    def compression(self) -> str | None:
        found = detect_format(self.uri)
        return found[1] if found else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Shard:
        return cls(**d)


def _list_input(item: str, storage_options: dict | None) -> list[tuple[str, int | None]]:
    """Files named by one input: (uri, size or None). Raises InputNotFound when none."""
    from stages.io.commit import MANIFEST, SHARDS_DIR, dataset_files, is_dataset

    fs, path = filesystem(item, storage_options)
    if any(c in path for c in _GLOB_CHARS):
        found = fs.glob(path, detail=True)
        # Only the part the pattern matched can be hidden, not the folders the user named.
        base = path[: min(path.find(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0]
        files = [
            (to_uri(fs, p), info.get("size"))
            for p, info in sorted(found.items())
            if info.get("type") != "directory" and detect_format(p) and not _hidden(p[len(base) :])
        ]
        if not files:
            raise InputNotFound(f"{item}: no input file matches this pattern")
        return files
    if not fs.exists(path):
        raise InputNotFound(f"{item}: no such file or directory")
    if fs.isdir(path):
        if is_dataset(item, storage_options):
            return [(uri, None) for uri in dataset_files(item, storage_options)]
        if fs.exists(f"{path.rstrip('/')}/{SHARDS_DIR}"):
            raise InputNotFound(
                f"{item}: an uncommitted dataset version (shard markers but no {MANIFEST})"
            )
        found = fs.find(path, detail=True)
        files = [
            (to_uri(fs, p), info.get("size"))
            for p, info in sorted(found.items())
            if detect_format(p) and not _hidden(p[len(path) :]) and not p.endswith(MANIFEST)
        ]
        if not files:
            raise InputNotFound(f"{item}: directory holds no .jsonl/.json(.gz/.zst)/.parquet file")
        return files
    if detect_format(path) is None:
        raise ValueError(
            f"{item}: unknown input format (expected .jsonl, .json, .jsonl.gz, .jsonl.zst, "
            ".json.gz, .json.zst or .parquet)"
        )
    return [(to_uri(fs, path), None)]


def _hidden(relative: str) -> bool:
    """Names starting with `_` or `.` (markers, temporaries) are never inputs."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def plan_shards(
    inputs: str | list[str],
    shard_size_mb: float = 64,
    storage_options: dict | None = None,
) -> list[Shard]:
    """Sorted, deterministic shards for `inputs` (files, directories, globs; local or s3).

    A directory written by this project (it holds `_manifest.json` or a `_latest` pointer)
    expands to the files its manifest lists, and only those. Plain JSONL files larger than
    `shard_size_mb` are split into byte ranges; planning such a file reads it once to number
    its lines, so line numbers and generated ids do not depend on the shard size.
    """
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    if not items:
        raise InputNotFound("no input given")
    sizes: dict[str, int | None] = {}
    for item in items:
        for uri, size in _list_input(item, storage_options):
            sizes.setdefault(uri, size)
    shard_bytes = max(1, int(shard_size_mb * (1 << 20)))
    plans = []
    for index, uri in enumerate(sorted(sizes)):
        fmt, compression = detect_format(uri)
        plans.append((index, uri, fmt, compression))

    def plan_file(entry: tuple[int, str, str, str | None]) -> list[Shard]:
        index, uri, fmt, compression = entry
        if fmt != "jsonl" or compression is not None:
            return [Shard(uri=uri, file_index=index, format=fmt)]
        size = sizes[uri]
        if size is None:
            fs, path = filesystem(uri, storage_options)
            size = fs.size(path)
        if size <= shard_bytes:
            return [Shard(uri=uri, file_index=index, format=fmt)]
        parts = math.ceil(size / shard_bytes)
        bounds = [size * k // parts for k in range(parts + 1)]
        first_lines = _first_lines(uri, bounds[1:-1], storage_options)
        return [
            Shard(
                uri=uri,
                file_index=index,
                part=k,
                start=bounds[k],
                end=bounds[k + 1],
                format=fmt,
                first_line=1 if k == 0 else first_lines[k - 1],
            )
            for k in range(parts)
        ]

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(plans)))) as pool:
        return [shard for shards in pool.map(plan_file, plans) for shard in shards]


def _first_lines(uri: str, starts: list[int], storage_options: dict | None) -> list[int]:
    """For each range start `s > 0`, the number of the first line starting at or after `s`.

    That line follows the first newline at or after byte `s - 1`, so its number is the count
    of newlines in `[0, s - 1)` plus 2.
    """
    fs, path = filesystem(uri, storage_options)
    out: list[int] = []
    newlines = 0
    pos = 0
    with fs.open(path, "rb") as f:
        for s in starts:
            target = s - 1
            while pos < target:
                chunk = f.read(min(_COUNT_BLOCK, target - pos))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                pos += len(chunk)
            out.append(newlines + 2)
    return out
