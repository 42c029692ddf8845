"""Lineage: where a curate output came from, read from the manifests.

Each output dataset is also a Prefect asset with its inputs as upstream assets; the
open-source Prefect server records asset materializations as events
(`prefect.asset.materialization.succeeded`) but has no asset graph (that view is Prefect
Cloud's), so every manifest carries the lineage too: inputs, parameters, code version, the
flow and its run id. This module follows it from manifest to manifest back to raw files.
"""

from __future__ import annotations

LINEAGE_MAX_LEVELS = 4  # folders walked up from an input file looking for a manifest


def _flow_of(manifest: dict) -> str | None:
    """The flow that wrote a version, as its manifest records it (None: not recorded)."""
    flow = (manifest.get("extra") or {}).get("flow")
    return flow if isinstance(flow, str) else None


class _VersionFinder:
    """Finds the dataset version an input file lies in (the nearest folder above it with a
    `_manifest.json`), remembering every folder it looked at."""

    def __init__(self, storage_options: dict | None):
        self.options = storage_options
        self.seen: dict[str, bool] = {}

    def version_of(self, uri: str) -> str | None:
        from stages.io.commit import MANIFEST
        from stages.io.fs import exists, join

        folder = uri.rstrip("/")
        for _ in range(LINEAGE_MAX_LEVELS):
            if "/" not in folder.split("://", 1)[-1]:
                return None
            folder = folder.rsplit("/", 1)[0]
            if not folder or folder.endswith(":/") or folder == "/":
                return None
            if folder not in self.seen:
                self.seen[folder] = exists(join(folder, MANIFEST), self.options)
            if self.seen[folder]:
                return folder
        return None


def lineage_chain(uri: str, storage_options: dict | None = None) -> list[dict]:
    """The lineage of a curate output, newest first: the version `uri` names (a version
    folder, or a dataset folder through its `_latest`), then every curate version its
    inputs came from, back to the raw input files.

    Each node is a dict: `uri`, `kind` ("dataset" or "raw"), `version`, `flow`,
    `code_version`, `flow_run_id`, `created_at`, `rows`, `inputs` (uris of the nodes it
    read: a curate version's folder, or a raw file), `depth` (0 for `uri`), and for raw
    files `size` and `etag`. A node appears once, at the depth it is first reached, even
    when several versions read it.
    """
    from stages.io.commit import read_manifest

    finder = _VersionFinder(storage_options)
    first = read_manifest(uri, storage_options)
    chain: list[dict] = []
    index: dict[str, dict] = {}
    queue: list[tuple[str, dict | None, int]] = [(first["uri"], first, 0)]
    while queue:
        node_uri, manifest, depth = queue.pop(0)
        if node_uri in index:
            continue
        if manifest is None:
            manifest = read_manifest(node_uri, storage_options)
        inputs: list[str] = []
        raw: list[dict] = []
        for entry in manifest.get("inputs", []):
            parent = finder.version_of(entry["uri"])
            if parent is None:
                raw.append(entry)
                target = entry["uri"]
            else:
                target = parent
                queue.append((parent, None, depth + 1))
            if target not in inputs:
                inputs.append(target)
        node = {
            "uri": node_uri,
            "kind": "dataset",
            "version": manifest.get("version"),
            "flow": _flow_of(manifest),
            "code_version": manifest.get("code_version"),
            "flow_run_id": manifest.get("flow_run_id"),
            "created_at": manifest.get("created_at"),
            "rows": manifest.get("rows"),
            "inputs": inputs,
            "depth": depth,
        }
        index[node_uri] = node
        chain.append(node)
        for entry in raw:
            if entry["uri"] in index:
                continue
            leaf = {
                "uri": entry["uri"],
                "kind": "raw",
                "version": None,
                "flow": None,
                "code_version": None,
                "flow_run_id": None,
                "created_at": None,
                "rows": None,
                "inputs": [],
                "depth": depth + 1,
                "size": entry.get("size"),
                "etag": entry.get("etag"),
            }
            index[entry["uri"]] = leaf
            chain.append(leaf)
    return chain


RAW_SHOWN = 5  # raw input files printed per version before "... and N more"


def lineage_tree(chain: list[dict]):
    """A rich Tree of a lineage chain (from `lineage_chain`): each version with the
    versions and raw files it read below it."""
    from rich.markup import escape
    from rich.tree import Tree

    by_uri = {node["uri"]: node for node in chain}

    def label(node: dict) -> str:
        if node["kind"] == "raw":
            size = f" ({node['size']:,} bytes)" if node.get("size") is not None else ""
            return f"[dim]raw[/dim] {escape(node['uri'])}{size}"
        parts = [
            f"[bold]{escape(node['flow'] or 'curate output')}[/bold] {escape(node['uri'])}",
            f"version {escape(str(node['version']))}",
        ]
        if node.get("rows") is not None:
            parts.append(f"{node['rows']:,} rows")
        if node.get("created_at"):
            parts.append(f"created {escape(str(node['created_at']))}")
        parts.append(f"code {escape(str(node['code_version']))}")
        if node.get("flow_run_id"):
            parts.append(f"run {escape(str(node['flow_run_id']))}")
        return parts[0] + "\n" + ", ".join(parts[1:])

    def grow(tree, node: dict, path: tuple[str, ...]) -> None:
        raw_shown = 0
        raw_total = sum(1 for u in node["inputs"] if by_uri.get(u, {}).get("kind") == "raw")
        for uri in node["inputs"]:
            child = by_uri.get(uri)
            if child is None:
                continue
            if child["kind"] == "raw":
                raw_shown += 1
                if raw_shown > RAW_SHOWN:
                    continue
                tree.add(label(child))
            elif uri in path:
                tree.add(f"{escape(uri)} (cycle)")
            else:
                grow(tree.add(label(child)), child, (*path, uri))
        if raw_total > RAW_SHOWN:
            tree.add(f"[dim]... and {raw_total - RAW_SHOWN} more raw files[/dim]")

    root = chain[0]
    tree = Tree(label(root))
    grow(tree, root, (root["uri"],))
    return tree


def print_lineage(uri: str) -> None:
    """Print the lineage of a curate output (a dataset or version folder, local or s3://)
    as an indented tree: `curate lineage <uri>`."""
    from rich.console import Console

    from flows.runtime import storage

    options = storage.storage_options()
    target = uri if storage.is_remote(uri) else storage.normalize_uri(uri)
    Console().print(lineage_tree(lineage_chain(target, options)))
