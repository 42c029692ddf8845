"""What an input folder holds: the files to read, and what is left out and why.

- Names starting with `_` or `.` (markers, temporaries) are never inputs, and not listed.
- A subfolder holding curate's own output layout (`_latest`, `_manifest.json` or
  `_shards/`: a dataset, a committed or an uncommitted version) is left out whole, so
  output written or copied inside an input folder is never read again as raw input. A
  dataset is read only when it is the input itself, through its manifest.
- A file that no format claims is left out.
- Local folders: symbolic links to folders are followed; a link back to a folder above it
  (a loop), a link to itself, or a second link to a folder already listed is left out. A
  link to nothing (dangling) is listed as a file: reading it quarantines it, naming its
  target, and planning goes on.

Every folder or file left out (except hidden names) is listed with its reason.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import fsspec

from stages.io.commit import LATEST, MANIFEST, SHARDS_DIR
from stages.io.fs import is_local

# The names that make a folder curate's output, strongest first.
LAYOUT_MARKERS = {
    LATEST: "a dataset (holds _latest)",
    MANIFEST: "a dataset version (holds _manifest.json)",
    SHARDS_DIR: "an uncommitted dataset version (holds _shards/)",
}


@dataclass
class Listing:
    """`files`: (path, size or None) to read; `skipped`: (path, reason) left out."""

    files: list[tuple[str, int | None]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def list_folder(
    fs: fsspec.AbstractFileSystem,
    path: str,
    wanted: Callable[[str], bool],
    format_name: str | None = None,
) -> Listing:
    """The files under folder `path` that `wanted` accepts, and what is left out (paths
    on `fs`, sorted). `format_name`: the format every file is read as, when one was
    given (it names the format in reasons)."""
    root = path.rstrip("/") or "/"
    if is_local(fs):
        listing = _list_local(root, wanted, format_name)
    else:
        listing = _list_remote(fs, root, wanted, format_name)
    listing.files.sort()
    listing.skipped.sort()
    return listing


def filter_matches(
    fs: fsspec.AbstractFileSystem,
    base: str,
    matches: dict[str, dict],
    wanted: Callable[[str], bool],
    format_name: str | None = None,
) -> Listing:
    """What a glob pattern's `matches` (path -> info, as `fs.glob(detail=True)` gives) hold
    to read, by the folder rules above, applied to the part of each path the pattern matched
    (below `base`): the folders the user named are theirs to name."""
    listing = Listing()
    start = len(base.rstrip("/")) + 1 if base else 0
    layouts: dict[str, str | None] = {}  # folder -> why it is curate output, or None

    def layout_above(path: str) -> tuple[str, str] | None:
        parts = path[start:].split("/")
        for i in range(1, len(parts)):
            folder = path[:start] + "/".join(parts[:i])
            if folder not in layouts:
                layouts[folder] = layout_reason(
                    [m for m in LAYOUT_MARKERS if fs.exists(f"{folder}/{m}")]
                )
            if layouts[folder] is not None:
                return folder, layouts[folder]
        return None

    left_out: dict[str, str] = {}
    for path, info in sorted(matches.items()):
        if info.get("type") == "directory" or hidden(path[start:]):
            continue
        layout = layout_above(path)
        if layout is not None:
            left_out.setdefault(*layout)
        elif wanted(path):
            listing.files.append((path, info.get("size")))
        else:
            listing.skipped.append((path, type_reason(path, format_name)))
    listing.skipped += sorted(left_out.items())
    return listing


def layout_reason(names: set[str] | list[str]) -> str | None:
    """Why a folder holding entries `names` is curate's output, or None."""
    for marker, what in LAYOUT_MARKERS.items():
        if marker in names:
            return f"curate output: {what}; give it as the input to read it"
    return None


def type_reason(name: str, format_name: str | None) -> str:
    """Why a file is not read: its type."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    kind = f"'.{base.rsplit('.', 1)[-1]}'" if "." in base.lstrip(".") else "(none)"
    if format_name is not None:
        return f"not a {format_name} input (type {kind.strip('()')})"
    return f"unsupported file type {kind}"


def hidden(relative: str) -> bool:
    """Names starting with `_` or `.` (markers, temporaries) are never inputs."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _list_local(root: str, wanted, format_name: str | None) -> Listing:
    listing = Listing()
    top = os.stat(root)
    seen: dict[tuple[int, int], str] = {(top.st_dev, top.st_ino): root}

    def visit(folder: str, ancestors: frozenset[tuple[int, int]]) -> None:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith(("_", ".")):
                continue
            path = entry.path
            try:
                info = os.stat(path)  # follows links
            except OSError as err:
                if err.errno == errno.ELOOP:
                    listing.skipped.append((path, f"symbolic link loop ({os.readlink(path)})"))
                elif not entry.is_symlink():
                    listing.skipped.append((path, f"unreadable ({err.strerror})"))
                elif wanted(path):  # dangling: its reader quarantines it
                    listing.files.append((path, 0))
                else:
                    listing.skipped.append((path, type_reason(path, format_name)))
                continue
            if entry.is_dir():
                key = (info.st_dev, info.st_ino)
                target = os.path.realpath(path)
                if key in ancestors:
                    listing.skipped.append(
                        (path, f"symbolic link loop: {target} is a folder above it")
                    )
                elif key in seen:
                    again = f"the folder {target} again, already read as {seen[key]}"
                    listing.skipped.append((path, again))
                else:
                    seen[key] = path
                    try:
                        layout = layout_reason(os.listdir(path))
                    except OSError as err:
                        listing.skipped.append((path, f"unreadable folder ({err.strerror})"))
                        continue
                    if layout is not None:
                        listing.skipped.append((path, layout))
                    else:
                        visit(path, ancestors | {key})
            elif entry.is_file():
                if wanted(path):
                    listing.files.append((path, info.st_size))
                else:
                    listing.skipped.append((path, type_reason(path, format_name)))
            else:
                listing.skipped.append((path, "not a regular file"))

    visit(root, frozenset(seen))
    return listing


def _list_remote(fs, root: str, wanted, format_name: str | None) -> Listing:
    """Object stores: one recursive listing; no links there."""
    found = fs.find(root, detail=True, withdirs=True)
    prefix = len(root.rstrip("/")) + 1
    markers: dict[str, set[str]] = {}  # folder (relative) -> the layout names it holds
    for path in found:
        parts = path[prefix:].split("/")
        for i in range(1, len(parts)):
            if parts[i] in LAYOUT_MARKERS:
                markers.setdefault("/".join(parts[:i]), set()).add(parts[i])
    layouts = {f for f in markers if not hidden(f)}
    outer = {f for f in layouts if not _under(f, layouts)}
    listing = Listing()
    for path, info in sorted(found.items()):
        relative = path[prefix:]
        if info.get("type") == "directory" or hidden(relative) or _under(relative, outer):
            continue
        if wanted(path):
            listing.files.append((path, info.get("size")))
        else:
            listing.skipped.append((path, type_reason(path, format_name)))
    for folder in outer:
        listing.skipped.append((f"{root.rstrip('/')}/{folder}", layout_reason(markers[folder])))
    return listing


def _under(relative: str, folders: set[str]) -> bool:
    """Whether `relative` lies inside one of `folders` (all relative to the same root)."""
    parts = relative.split("/")
    return any("/".join(parts[:i]) in folders for i in range(1, len(parts)))
