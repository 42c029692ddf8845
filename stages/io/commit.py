"""The commit protocol: how a run publishes a dataset version.

Layout of a dataset:

    <output>/_latest                              pointer to the newest committed version
    <output>/<version>/part-<shard>-<n>.parquet   data files
    <output>/<version>/quarantine/part-<shard>.parquet
    <output>/<version>/removed/part-<shard>.parquet  rows the stages removed (--keep-removed)
    <output>/<version>/_shards/<shard>.json        one marker per finished shard
    <output>/<version>/_manifest.json              written last: the version is committed

A shard's marker is written only after its files, and the manifest only after every marker,
so a crash at any point leaves nothing that a reader trusts: readers list files from the
manifest, never from the directory. A re-run skips shards that have a marker (resume).
"""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa

from stages.io.errors import InputNotFound
from stages.io.fs import exists, filesystem, join, read_bytes, write_bytes_atomic
from stages.io.quarantine import quarantine_counts
from stages.io.write import write_parquet

MANIFEST = "_manifest.json"
LATEST = "_latest"
SHARDS_DIR = "_shards"
QUARANTINE_DIR = "quarantine"
REMOVED_DIR = "removed"
MANIFEST_FORMAT = "curate-manifest/1"


def _dumps(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


class VersionWriter:
    """Writes one version `<output>/<version>` of a dataset under the commit protocol."""

    def __init__(self, output: str, version: str, storage_options: dict | None = None):
        if not version or "/" in version or version.startswith(("_", ".")):
            raise ValueError(f"{version!r}: a version is one path segment not starting with _ or .")
        self.output = output.rstrip("/")
        self.version = version
        self.storage_options = storage_options
        self.uri = join(self.output, version)

    # -- paths ---------------------------------------------------------------------------

    @staticmethod
    def part_path(shard_key: str, n: int = 0, ext: str = "parquet") -> str:
        """Relative path of data file `n` of a shard."""
        return f"part-{shard_key}-{n}.{ext}"

    @staticmethod
    def quarantine_path(shard_key: str) -> str:
        return f"{QUARANTINE_DIR}/part-{shard_key}.parquet"

    @staticmethod
    def removed_path(shard_key: str) -> str:
        return f"{REMOVED_DIR}/part-{shard_key}.parquet"

    def write_part(self, shard_key: str, table: pa.Table, n: int = 0) -> dict:
        """Write a data file of a shard; returns its entry for `commit_shard`."""
        path = self.part_path(shard_key, n)
        size = write_parquet(table, join(self.uri, path), self.storage_options)
        return {"path": path, "rows": table.num_rows, "bytes": size}

    def write_quarantine(self, shard_key: str, table: pa.Table) -> dict:
        """Write a shard's quarantine records; returns its entry for `commit_shard`:
        `rows` counts the input rows the records stand for, `records` the records."""
        path = self.quarantine_path(shard_key)
        size = write_parquet(table, join(self.uri, path), self.storage_options)
        rows, records = quarantine_counts(table)
        return {"path": path, "rows": rows, "records": records, "bytes": size}

    def write_removed(self, shard_key: str, table: pa.Table) -> dict:
        """Write the rows the stages removed from a shard (each with its `removed_by` and
        `reason`); returns its entry for `commit_shard(..., removed=[entry])`."""
        path = self.removed_path(shard_key)
        size = write_parquet(table, join(self.uri, path), self.storage_options)
        return {"path": path, "rows": table.num_rows, "bytes": size}

    # -- state ---------------------------------------------------------------------------

    def is_committed(self) -> bool:
        """True once `_manifest.json` exists."""
        return exists(join(self.uri, MANIFEST), self.storage_options)

    def done_shards(self) -> dict[str, dict]:
        """Shard key -> marker contents, for every shard already committed in this version."""
        fs, path = filesystem(join(self.uri, SHARDS_DIR), self.storage_options)
        if not fs.exists(path):
            return {}
        out = {}
        for entry in sorted(fs.ls(path, detail=False)):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if not name.endswith(".json") or name.startswith("."):
                continue
            out[name[: -len(".json")]] = orjson.loads(fs.cat_file(entry))
        return out

    def commit_shard(
        self,
        shard_key: str,
        files: list[dict],
        stats: dict,
        quarantine: list[dict] | None = None,
        removed: list[dict] | None = None,
    ) -> None:
        """Record a finished shard. Call after its files are written.

        `files`: `[{"path": relative path, "rows": n, "bytes": b}]`; entries under
        `quarantine/` are listed as quarantine files (as are those in `quarantine`), entries
        under `removed/` as removed rows (as are those in `removed`). Every listed file must
        exist; a missing `bytes` is filled in from storage.
        """
        data, bad, gone = [], list(quarantine or []), list(removed or [])
        for entry in files:
            if entry["path"].startswith(QUARANTINE_DIR + "/"):
                bad.append(entry)
            elif entry["path"].startswith(REMOVED_DIR + "/"):
                gone.append(entry)
            else:
                data.append(entry)
        owner = f"shard {shard_key}"
        marker = {
            "shard": shard_key,
            "files": [self._checked(f, owner) for f in data],
            "quarantine": [self._checked(f, owner) for f in bad],
            "removed": [self._checked(f, owner) for f in gone],
            "stats": stats,
        }
        write_bytes_atomic(
            join(self.uri, SHARDS_DIR, f"{shard_key}.json"), _dumps(marker), self.storage_options
        )

    def forget_shard(self, shard_key: str) -> None:
        """Remove a shard's marker: the shard counts as not done (its files stay until a
        re-run overwrites them or the commit removes what no marker lists)."""
        fs, path = filesystem(join(self.uri, SHARDS_DIR, f"{shard_key}.json"), self.storage_options)
        if fs.exists(path):
            fs.rm(path)

    def commit(
        self,
        *,
        inputs: list[dict],
        parameters: dict,
        code_version: str,
        flow_run_id: str | None,
        extra: dict | None = None,
        extra_files: list[dict] | None = None,
        set_latest: bool = True,
        skipped_inputs: list[dict] | None = None,
    ) -> dict:
        """Write `_manifest.json` from the shard markers, then point `<output>/_latest` here.

        `skipped_inputs` (`[{"path", "reason"}]`): what the inputs' folders hold that the
        run did not read. `quarantined_rows` counts the input rows quarantined,
        `quarantine_records` the records standing for them; `removed` lists the files of
        rows the stages removed (kept with `--keep-removed`), `removed_rows` counts them.

        Files under the version that nothing lists (left by a crashed attempt) are deleted
        first; top-level names starting with `_` (bookkeeping such as `_shards/`) are kept.
        `extra_files` (`[{"path", "rows", "bytes"}]`) are side files of the version that
        are not data rows (an audit table, a report): they are kept and listed under
        "extra_files". Committing a version that is already committed returns its
        manifest unchanged (and still updates `_latest`).
        """
        if self.is_committed():
            manifest = read_manifest(self.uri, self.storage_options)
        else:
            markers = self.done_shards()
            files, quarantine, removed, shards = [], [], [], {}
            for key in sorted(markers):
                marker = markers[key]
                files += [{**f, "shard": key} for f in marker.get("files", [])]
                quarantine += [{**f, "shard": key} for f in marker.get("quarantine", [])]
                removed += [{**f, "shard": key} for f in marker.get("removed", [])]
                shards[key] = _without_samples(marker.get("stats", {}))
            for listed in (files, quarantine, removed):
                listed.sort(key=lambda f: f["path"])
            side = sorted(
                (self._checked(f, "extra_files") for f in extra_files or []),
                key=lambda f: f["path"],
            )
            self._remove_unlisted({f["path"] for f in files + quarantine + removed + side})
            manifest = {
                "format": MANIFEST_FORMAT,
                "version": self.version,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "rows": sum(f.get("rows", 0) for f in files),
                "bytes": sum(f.get("bytes", 0) for f in files),
                "quarantined_rows": sum(f.get("rows", 0) for f in quarantine),
                "quarantine_records": sum(f.get("records", f.get("rows", 0)) for f in quarantine),
                "files": files,
                "quarantine": quarantine,
                "removed": removed,
                "removed_rows": sum(f.get("rows", 0) for f in removed),
                "extra_files": side,
                "shards": shards,
                "inputs": inputs,
                "skipped_inputs": list(skipped_inputs or []),
                "parameters": parameters,
                "code_version": code_version,
                "flow_run_id": flow_run_id,
                "extra": extra or {},
            }
            write_bytes_atomic(join(self.uri, MANIFEST), _dumps(manifest), self.storage_options)
            manifest = {**manifest, "uri": self.uri}
        if set_latest:
            pointer = {"version": self.version, "manifest": f"{self.version}/{MANIFEST}"}
            write_bytes_atomic(join(self.output, LATEST), _dumps(pointer), self.storage_options)
        return manifest

    def _checked(self, entry: dict, owner: str) -> dict:
        """`entry` with `rows` and `bytes` filled in; raises if its file does not exist."""
        uri = join(self.uri, entry["path"])
        fs, path = filesystem(uri, self.storage_options)
        try:
            size = fs.size(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: {owner} lists a file that was not written") from None
        return {**entry, "rows": entry.get("rows", 0), "bytes": entry.get("bytes", size)}

    def _remove_unlisted(self, listed: set[str]) -> None:
        fs, root = filesystem(self.uri, self.storage_options)
        if not fs.exists(root):
            return
        for path in sorted(fs.find(root)):
            relative = path[len(root) :].lstrip("/")
            if relative.startswith("_"):
                continue
            if relative not in listed:
                fs.rm_file(path)


def _without_samples(stats: dict) -> dict:
    """A shard's stats for the manifest: its metrics without the removed-row samples (the
    run's report keeps up to 10 per stage; the shard markers keep theirs for a resumed
    run), so the manifest does not grow with shards times stages times samples."""
    metrics = stats.get("metrics")
    if not isinstance(metrics, list):
        return stats
    return {
        **stats,
        "metrics": [
            {k: v for k, v in m.items() if k != "removed_sample"} if isinstance(m, dict) else m
            for m in metrics
        ],
    }


def _version_uri(uri: str, storage_options: dict | None) -> str:
    """The version directory for `uri`: itself when it holds a manifest, else via `_latest`."""
    uri = uri.rstrip("/")
    if exists(join(uri, MANIFEST), storage_options):
        return uri
    if exists(join(uri, LATEST), storage_options):
        raw = read_bytes(join(uri, LATEST), storage_options).strip()
        try:
            version = orjson.loads(raw)["version"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            version = raw.decode().strip()
        return join(uri, version)
    raise InputNotFound(f"{uri}: not a committed dataset (no {MANIFEST} and no {LATEST} pointer)")


def is_dataset(uri: str, storage_options: dict | None = None) -> bool:
    """True when `uri` is a committed version or a dataset directory with `_latest`."""
    uri = uri.rstrip("/")
    return exists(join(uri, MANIFEST), storage_options) or exists(
        join(uri, LATEST), storage_options
    )


def read_manifest(uri: str, storage_options: dict | None = None) -> dict:
    """The manifest of a version directory, or of the version `_latest` names in a dataset
    directory. The returned dict carries the version's location under `uri`."""
    version_uri = _version_uri(uri, storage_options)
    manifest = orjson.loads(read_bytes(join(version_uri, MANIFEST), storage_options))
    manifest["uri"] = version_uri
    return manifest


def dataset_files(uri: str, storage_options: dict | None = None) -> list[str]:
    """Full URIs of the data files a manifest lists (quarantine files and side files such
    as `embeddings/` excluded)."""
    manifest = read_manifest(uri, storage_options)
    return [join(manifest["uri"], f["path"]) for f in manifest["files"] if not f.get("side")]


def quarantine_files(uri: str, storage_options: dict | None = None) -> list[str]:
    """Full URIs of the quarantine files a manifest lists."""
    manifest = read_manifest(uri, storage_options)
    return [join(manifest["uri"], f["path"]) for f in manifest["quarantine"]]


def removed_files(uri: str, storage_options: dict | None = None) -> list[str]:
    """Full URIs of the files of removed rows a manifest lists (none in a version written
    without `--keep-removed`, or before such files existed)."""
    manifest = read_manifest(uri, storage_options)
    return [join(manifest["uri"], f["path"]) for f in manifest.get("removed", [])]


__all__ = [
    "VersionWriter",
    "read_manifest",
    "dataset_files",
    "quarantine_files",
    "removed_files",
    "is_dataset",
]
