"""Shard planning: turn input paths, directories and globs into a sorted list of `Shard`s.

A shard is one unit of reading work: a whole file, a range of a large line-based file
(JSONL, manifests; byte offsets in a plain file, in the decompressed stream of a gzip or
zstd one), or a group of small media files (`format="files"`). A reader of the range
`[start, end)` owns every line that *starts* inside it (the Hadoop input-split rule), so
splitting loses and duplicates no line. A range of a large gzip file can carry the
seek-point index its reader starts from (`stages.io.formats.gzip_index`).
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

from stages.io.errors import InputNotFound
from stages.io.formats import FORMATS, Format, compression_of, format_of, get_format
from stages.io.formats.files import FILES_PER_SHARD, file_id
from stages.io.formats.gzip_index import index_uri
from stages.io.formats.lines import compressed_cuts, indexed_cuts
from stages.io.formats.lines import first_lines as _first_lines
from stages.io.formats.parquet import ParquetFormat, row_group_ranges
from stages.io.fs import filesystem, to_uri, write_bytes_atomic
from stages.io.listing import filter_matches, list_folder

_GLOB_CHARS = "*?["

log = logging.getLogger(__name__)

__all__ = ["PlannedInputs", "Shard", "detect_format", "plan_inputs", "plan_shards"]

SKIPPED_LISTED = 1000  # skipped inputs listed per input; more are counted in one entry


def detect_format(uri: str) -> tuple[str, str | None] | None:
    """`(format, compression)` from the file name, or None when no format claims its
    extension. Formats read only on request (`files`, `manifest`) are never detected."""
    name = uri.rsplit("/", 1)[-1]
    found = format_of(name)
    return (found, compression_of(name)) if found else None


@dataclass(frozen=True)
class Shard:
    """One unit of reading work.

    - `uri`: the input file; for a group of media files (`members` not empty), the folder
      the members' paths are relative to ("" when the inputs share no folder and members
      are full URIs).
    - `file_index`: the position of the (first) file among all input files, sorted.
    - `part`, `start`/`end`: a range of a line-based file (`end=None`: to the end of the
      file), in bytes of the file, or of its decompressed stream when it is compressed; of
      a Parquet file, in row groups; other files are read whole. `first_line` is the
      1-based number of the first line (row) owned by the range (None: the reader counts
      it).
    - `format`: a name in `stages.io.formats.FORMATS`.
    - `members`: the files of a `files` shard, relative to `uri`; `uris` lists them whole.
    - `number`: the position of the shard in its plan (writers name WebDataset tars by it).
    - `index`: for a range of a gzip file, the URI of the file's seek-point index, from
      which the reader starts near the range (None: it decompresses from the start).
    """

    uri: str
    file_index: int
    part: int = 0
    start: int = 0
    end: int | None = None
    format: str = "jsonl"
    first_line: int | None = 1
    members: tuple[str, ...] = ()
    number: int = 0
    index: str | None = None

    def __post_init__(self):
        if self.format not in FORMATS:
            known = ", ".join(FORMATS)
            raise ValueError(f"{self.uri}: unknown format {self.format!r} (known: {known})")
        if not isinstance(self.members, tuple):
            object.__setattr__(self, "members", tuple(self.members))

    @property
    def key(self) -> str:
        """Stable, filename-safe, sortable name of the shard."""
        return f"{self.file_index:05d}-{self.part:04d}"

    @property
    def compression(self) -> str | None:
        return compression_of(self.uri)

    @property
    def uris(self) -> tuple[str, ...]:
        """Every input file the shard reads: its members' URIs, or its own URI."""
        if not self.members:
            return (self.uri,)
        base = self.uri.rstrip("/") + "/" if self.uri else ""
        return tuple(base + m for m in self.members)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Shard:
        return cls(**d)


class PlannedInputs(NamedTuple):
    """The shards of a plan, and the inputs left out: `{"path", "reason"}` each."""

    shards: list[Shard]
    skipped: list[dict]


def plan_shards(
    inputs: str | list[str],
    shard_size_mb: float = 32,
    storage_options: dict | None = None,
    format: str | None = None,
    parallelism: int = 1,
    index_dir: str | None = None,
) -> list[Shard]:
    """Sorted, deterministic shards for `inputs` (files, directories, globs; local or s3).
    `plan_inputs` says what this left out of folders, and why, and what `index_dir` is."""
    return plan_inputs(
        inputs, shard_size_mb, storage_options, format, parallelism, index_dir
    ).shards


SPLIT_PROBE_FILES = 4  # compressed inputs are probed for splitting below this many per worker
SPLIT_PROBE_RATIO = 8  # ... when larger than 1/this of a shard (text compresses 3-5x)


def plan_inputs(
    inputs: str | list[str],
    shard_size_mb: float = 32,
    storage_options: dict | None = None,
    format: str | None = None,
    parallelism: int = 1,
    index_dir: str | None = None,
) -> PlannedInputs:
    """The shards `plan_shards` plans, and what the inputs' folders hold that is not read:
    files no format claims (or not of the `format` given), curate's own output inside
    a folder, symbolic link loops (`stages.io.listing`), `SKIPPED_LISTED` of them at most
    per input, then one entry counting the rest.

    `format` reads every input file as that format (`"manifest"` for NeMo manifests,
    `"files"` for a folder of media; a folder or glob then picks the files with the
    format's extensions); None detects it from each file's extension.

    A directory written by this project (it holds `_manifest.json` or a `_latest` pointer)
    expands to the files its manifest lists, and only those; inside a folder, such output
    is never read. A symbolic link to a folder is followed, a dangling one planned (its
    reader quarantines it). Line-based files larger than `shard_size_mb` are split into
    ranges; planning such a file reads it once to number its lines, so line numbers and
    generated ids do not depend on the shard size. A gzip or zstd file is decompressed
    once to learn its size, and split when that exceeds `shard_size_mb`, at line starts
    (a damaged file is read whole, so its reader reports the damage). The reader of a
    range decompresses from the start of the file and stops at the next range, unless
    `index_dir` (a folder URI the workers can read) is given: a gzip file that is split
    then gets, in the same pass, a seek-point index written to `index_dir` (its name a
    hash of the file's URI, size, version and cuts, so a re-run plans the same name; it
    is rebuilt and rewritten each time), and its shards carry the index's URI (`index`),
    from which each range's reader starts near its range and reads only its range. A
    Parquet file larger than `shard_size_mb` is split into ranges of row groups.
    `parallelism` (the workers that will read the shards) keeps every worker busy on few
    large files: when there are fewer input files than workers, a file that is split is
    split into a multiple of `parallelism` ranges, so that they end together. A compressed
    file is decompressed at planning only when it may be split: when it is larger than
    1/`SPLIT_PROBE_RATIO` of a shard and the input has fewer than `SPLIT_PROBE_FILES` files
    per worker (many files keep the workers busy read whole, and planning does not read
    them all).
    Media files are grouped into shards of up to `shard_size_mb` and `FILES_PER_SHARD`.
    When the format is detected, `X.parquet` beside `X.tar` is the tar's metadata (as
    img2dataset and our WebDataset writer lay them out): only the tar is read.
    """
    forced = type(get_format(format)) if format is not None else None
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    items = [name for item in items for name in _expand_braces(item, storage_options)]
    if not items:
        raise InputNotFound("no input given")
    sizes: dict[str, int | None] = {}
    roots: list[str] = []
    skipped: list[dict] = []
    for item in items:
        left_out: list[dict] = []
        root, files = _list_input(item, storage_options, forced, left_out)
        if len(left_out) > SKIPPED_LISTED:
            more = len(left_out) - SKIPPED_LISTED
            left_out[SKIPPED_LISTED:] = [{"path": item, "reason": f"{more} more not listed"}]
        skipped += left_out
        roots.append(root)
        for uri, size in files:
            sizes.setdefault(uri, size)
    if forced is None:
        _drop_tar_metadata(sizes)
    shard_bytes = max(1, int(shard_size_mb * (1 << 20)))
    uris = sorted(sizes)
    if forced is not None and forced.groups_files:
        shards = _group_files(uris, sizes, _common_root(roots), shard_bytes, storage_options)
    else:
        plans = [(i, uri, forced or FORMATS[detect_format(uri)[0]]) for i, uri in enumerate(uris)]
        multiple = max(1, parallelism) if len(plans) < parallelism else 1

        def plan_file(entry: tuple[int, str, type[Format]]) -> list[Shard]:
            index, uri, fmt = entry
            if fmt is ParquetFormat:
                return _row_group_ranges(uri, index, sizes[uri], shard_bytes, storage_options)
            if not fmt.splittable:
                return [Shard(uri=uri, file_index=index, format=fmt.name)]
            size = sizes[uri]
            if compression_of(uri) is not None:
                if len(plans) >= SPLIT_PROBE_FILES * parallelism:
                    return [Shard(uri=uri, file_index=index, format=fmt.name)]
                try:
                    size = _size(uri, storage_options) if size is None else size
                except FileNotFoundError:  # a dangling link: its reader quarantines it
                    return [Shard(uri=uri, file_index=index, format=fmt.name)]
                if size * SPLIT_PROBE_RATIO <= shard_bytes:
                    return [Shard(uri=uri, file_index=index, format=fmt.name)]
                return _compressed_ranges(
                    uri, index, fmt.name, shard_bytes, storage_options, multiple, index_dir
                )
            if size is None:
                size = _size(uri, storage_options)
            if size <= shard_bytes:
                return [Shard(uri=uri, file_index=index, format=fmt.name)]
            parts = math.ceil(math.ceil(size / shard_bytes) / multiple) * multiple
            bounds = [size * k // parts for k in range(parts + 1)]
            starts = _first_lines(uri, bounds[1:-1], storage_options)
            return _ranges(uri, index, fmt.name, bounds, [1, *starts])

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(plans)))) as pool:
            shards = [shard for found in pool.map(plan_file, plans) for shard in found]
    numbered = [replace(shard, number=n) for n, shard in enumerate(shards)]
    return PlannedInputs(numbered, skipped)


def _compressed_ranges(
    uri: str,
    index: int,
    format: str,
    shard_bytes: int,
    storage_options: dict | None,
    multiple: int = 1,
    index_dir: str | None = None,
) -> list[Shard]:
    """A compressed line-based file as ranges of its decompressed stream, each starting at
    a line start and ending where the next starts (a multiple of `multiple` of them); one
    whole-file shard when it is not larger than `shard_bytes`, or damaged. With
    `index_dir`, the ranges of a gzip file carry its seek-point index, written there."""
    seek_index = None
    if index_dir is not None and compression_of(uri) == "gzip":
        cuts, seek_index = indexed_cuts(uri, shard_bytes, storage_options, multiple)
    else:
        cuts = compressed_cuts(uri, shard_bytes, storage_options, multiple)
    if not cuts:
        return [Shard(uri=uri, file_index=index, format=format)]
    bounds = [0, *(offset for offset, _ in cuts), None]
    shards = _ranges(uri, index, format, bounds, [1, *(line for _, line in cuts)])
    if seek_index is None:
        return shards
    target = index_uri(index_dir, uri, storage_options, bounds[1:-1])
    try:
        write_bytes_atomic(target, seek_index, storage_options)
    except OSError as err:  # the ranges still read, from the start of the file
        log.warning("%s: cannot write its index %s: %s", uri, target, err)
        return shards
    return [replace(shard, index=target) for shard in shards]


def _row_group_ranges(
    uri: str, index: int, size: int | None, shard_bytes: int, storage_options: dict | None
) -> list[Shard]:
    """A Parquet file larger than `shard_bytes` as ranges of consecutive row groups (its
    footer is read to size them); one whole-file shard otherwise."""
    whole = [Shard(uri=uri, file_index=index, format="parquet")]
    if size is None:
        try:
            size = _size(uri, storage_options)
        except FileNotFoundError:
            return whole
    starts = row_group_ranges(uri, shard_bytes, storage_options) if size > shard_bytes else []
    if not starts:
        return whole
    # After the first range, the reader counts rows from the footer.
    return _ranges(uri, index, "parquet", [0, *starts, None], [1] + [None] * len(starts))


def _ranges(
    uri: str, index: int, format: str, bounds: list, first_lines: list[int | None]
) -> list[Shard]:
    """The shards `[bounds[k], bounds[k + 1])` of one file, numbered `part=k`, the first
    line (row) of each from `first_lines`."""
    return [
        Shard(
            uri=uri,
            file_index=index,
            part=k,
            start=bounds[k],
            end=bounds[k + 1],
            format=format,
            first_line=first_lines[k],
        )
        for k in range(len(bounds) - 1)
    ]


def _drop_tar_metadata(sizes: dict[str, int | None]) -> None:
    tars = {uri[: -len(".tar")] for uri in sizes if uri.endswith(".tar")}
    for uri in [u for u in sizes if u.endswith(".parquet") and u[: -len(".parquet")] in tars]:
        del sizes[uri]


def _group_files(
    uris: list[str],
    sizes: dict[str, int | None],
    root: str,
    shard_bytes: int,
    storage_options: dict | None,
) -> list[Shard]:
    """Consecutive files in shards of at most `shard_bytes` (a larger file alone) and
    `FILES_PER_SHARD` files; refuses two files that would get the same id."""
    unknown = [u for u in uris if sizes[u] is None]
    if unknown:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = pool.map(lambda u: _size(u, storage_options), unknown)
            sizes.update(zip(unknown, found, strict=True))
    prefix = root.rstrip("/") + "/" if root else ""
    members = [uri[len(prefix) :] for uri in uris]
    ids: dict[str, str] = {}
    for uri, member in zip(uris, members, strict=True):
        other = ids.setdefault(file_id(member), uri)
        if other != uri:
            raise ValueError(
                f"{other} and {uri}: both would get the id {file_id(member)!r} (a file's id is"
                " its path without extension); rename one or read them separately"
            )
    shards: list[Shard] = []
    first, total = 0, 0
    for i, uri in enumerate(uris):
        size = sizes[uri] or 0
        if i > first and (total + size > shard_bytes or i - first >= FILES_PER_SHARD):
            shards.append(_files_shard(root, members, first, i))
            first, total = i, 0
        total += size
    if uris:
        shards.append(_files_shard(root, members, first, len(uris)))
    return shards


def _files_shard(root: str, members: list[str], first: int, end: int) -> Shard:
    return Shard(uri=root, file_index=first, format="files", members=tuple(members[first:end]))


def _size(uri: str, storage_options: dict | None) -> int:
    fs, path = filesystem(uri, storage_options)
    return fs.size(path)


def _common_root(roots: list[str]) -> str:
    """The deepest folder holding every root ("" when they share none, e.g. two buckets)."""
    split = []
    for root in roots:
        protocol, _, path = root.rpartition("://")
        split.append((protocol, path.rstrip("/").split("/")))
    if len({protocol for protocol, _ in split}) > 1:
        return ""
    protocol = split[0][0]
    common = split[0][1]
    for _, parts in split[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    if protocol:
        return f"{protocol}://{'/'.join(common)}" if common and common[0] else ""
    if not common:
        return ""
    return "/".join(common) or "/"


def _list_input(
    item: str,
    storage_options: dict | None,
    forced: type[Format] | None,
    skipped: list[dict] | None = None,
) -> tuple[str, list[tuple[str, int | None]]]:
    """The folder of one input and the files it names: (uri, size or None). Raises
    InputNotFound when none. What a folder holds that is not read goes to `skipped`."""
    from stages.io.commit import MANIFEST, SHARDS_DIR, dataset_files, is_dataset

    def wanted(path: str) -> bool:
        return forced.claims(path) if forced is not None else detect_format(path) is not None

    fs, path = filesystem(item, storage_options)
    # A wildcard makes a pattern unless the path exists as written (a folder `a [1]`).
    if any(c in path for c in _GLOB_CHARS) and not fs.exists(path):
        found = fs.glob(path, detail=True)
        # Only the part the pattern matched can be hidden or curate output, not the folders
        # the user named.
        base = path[: min(path.find(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0]
        name = forced.name if forced is not None else None
        listing = filter_matches(fs, base, found, wanted, name)
        files = [(to_uri(fs, p), size) for p, size in listing.files]
        if skipped is not None:
            skipped += [{"path": to_uri(fs, p), "reason": why} for p, why in listing.skipped]
        if not files:
            raise InputNotFound(f"{item}: no input file matches this pattern")
        return to_uri(fs, base or "/"), files
    if not fs.exists(path):
        raise InputNotFound(f"{item}: no such file or directory")
    if fs.isdir(path):
        root = to_uri(fs, path.rstrip("/") or "/")
        if is_dataset(item, storage_options):
            return root, [(uri, None) for uri in dataset_files(item, storage_options)]
        if fs.exists(f"{path.rstrip('/')}/{SHARDS_DIR}"):
            raise InputNotFound(
                f"{item}: an uncommitted dataset version (shard markers but no {MANIFEST})"
            )
        listing = list_folder(fs, path, wanted, forced.name if forced is not None else None)
        files = [(to_uri(fs, p), size) for p, size in listing.files]
        if skipped is not None:
            skipped += [{"path": to_uri(fs, p), "reason": why} for p, why in listing.skipped]
        if not files:
            raise InputNotFound(f"{item}: directory holds no {_expected(forced)} file")
        return root, files
    if forced is None and detect_format(path) is None:
        raise ValueError(f"{item}: unknown input format (expected {_expected(None)})")
    return to_uri(fs, path.rsplit("/", 1)[0] or "/"), [(to_uri(fs, path), None)]


_BRACES = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def _expand_braces(item: str, storage_options: dict | None) -> list[str]:
    """WebDataset's shard notation: `a-{000..099}.tar` names 100 files (zero-padded as the
    first bound is), `{train,val}/x.tar` two; several braces multiply. A path that exists
    as written (a folder named `{x}`) is not expanded."""
    match = _BRACES.search(item)
    if match is None:
        return [item]
    fs, path = filesystem(item, storage_options)
    if fs.exists(path):
        return [item]
    return expand_braces(item)


def expand_braces(pattern: str) -> list[str]:
    """Every name the brace pattern `pattern` stands for, in order."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numbers = _RANGE.match(body)
    if numbers is not None:
        first, last = numbers.group(1), numbers.group(2)
        width = len(first.lstrip("-")) if first.lstrip("-").startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        choices = [f"{n:0{width}d}" for n in range(int(first), int(last) + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:
        choices = None
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if choices is None:  # `{x}`: not a pattern, kept as written
        return [head + "{" + body + "}" + rest for rest in expand_braces(tail)]
    return [head + choice + rest for choice in choices for rest in expand_braces(tail)]


def _expected(forced: type[Format] | None) -> str:
    """The extensions a listing looks for, for error messages."""
    if forced is not None:
        return f"{forced.name} ({', '.join(forced.extensions)})"
    exts = [e for cls in FORMATS.values() if cls.detected for e in cls.extensions]
    return ", ".join(exts) + "; pass format='files' for media files"
