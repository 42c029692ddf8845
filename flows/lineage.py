"""Run reports and lineage in Prefect: artifacts (a table of per-stage counts and
timings, a markdown report with what each filter removed) and the output dataset as a
Prefect asset with its inputs as upstream assets.

The open-source Prefect server records asset materializations as events
(`prefect.asset.materialization.succeeded`) but has no asset graph (that view is Prefect
Cloud's); the output manifest therefore carries the lineage too: inputs, parameters, code
version and flow run id.
"""

from __future__ import annotations

from typing import Any

from flows.engine import RunReport

LINEAGE_MAX_LEVELS = 4  # folders walked up from an input file looking for a manifest


def stage_table(report: RunReport) -> list[dict[str, Any]]:
    """One row per stage: the funnel from rows read to rows written."""
    rows = []
    for m in report.stages.values():
        rows.append(
            {
                "stage": m.name,
                "rows_in": m.rows_in,
                "rows_out": m.rows_out,
                "removed": m.removed,
                "removed_%": round(100.0 * m.removed / m.rows_in, 2) if m.rows_in else 0.0,
                "seconds": round(m.seconds, 3),
                "rows_per_s": round(m.rows_per_second, 1),
            }
        )
    return rows


def markdown_report(title: str, report: RunReport, manifest: dict, version_uri: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"Output: `{version_uri}`  ",
        f"Version: `{manifest.get('version', '')}`, code `{manifest.get('code_version', '')}`",
        "",
        f"- shards: {report.shards_total} ({report.shards_skipped} already committed)",
        f"- rows read: {report.rows_read}",
        f"- rows quarantined (bad input): {report.rows_quarantined}",
        f"- rows written: {report.rows_written}",
        f"- bytes written: {report.bytes_written}",
        "",
        "| stage | rows in | rows out | removed | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in stage_table(report):
        lines.append(
            f"| {row['stage']} | {row['rows_in']} | {row['rows_out']} | {row['removed']} "
            f"| {row['seconds']} |"
        )
    samples = [(m.name, m.removed_sample) for m in report.stages.values() if m.removed_sample]
    if samples:
        lines += ["", "## What the filters removed (samples)", ""]
        for name, sample in samples:
            lines.append(f"**{name}**")
            lines.append("")
            for row in sample[:3]:
                text = (row.get("text") or "").replace("\n", " ").replace("|", "\\|")[:160]
                extra = f" (duplicate of `{row['duplicate_of']}`)" if "duplicate_of" in row else ""
                lines.append(f"- `{row.get('id')}`{extra} {text}")
            lines.append("")
    return "\n".join(lines)


def publish_artifacts(flow_name: str, report: RunReport, manifest: dict, version_uri: str) -> None:
    """Attach the per-stage table and the markdown report to the current flow run, and a
    link to the HTML report when the version has one."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    from flows.report_html import REPORT_HTML

    create_table_artifact(
        key=f"{flow_name}-stages",
        table=stage_table(report),
        description=f"Per-stage rows in/out and timings for {version_uri}",
    )
    create_markdown_artifact(
        key=f"{flow_name}-report",
        markdown=markdown_report(flow_name, report, manifest, version_uri),
        description=f"Run report for {version_uri}",
    )
    if any(f.get("path") == REPORT_HTML for f in manifest.get("extra_files", [])):
        link = _link(version_uri.rstrip("/") + "/" + REPORT_HTML)
        create_link_artifact(
            key=f"{flow_name}-report-html",
            link=link,
            link_text=REPORT_HTML,
            description=f"HTML run report (funnel, timings, score histograms) for {version_uri}",
        )


def _link(uri: str) -> str:
    return uri if "://" in uri else "file://" + uri


# --------------------------------------------------------------------------- lineage


def _flow_of(manifest: dict) -> str | None:
    """The flow that wrote a version: recorded in the manifest, else told by its parameters."""
    for where in (manifest, manifest.get("extra") or {}, manifest.get("parameters") or {}):
        if isinstance(where.get("flow"), str):
            return where["flow"]
    parameters = manifest.get("parameters") or {}
    if "method" in parameters and "threshold" in parameters:
        return "curate-dedup"
    if "filters" in parameters and "languages" in parameters:
        return "curate-text"
    return None


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

    from flows import storage

    options = storage.storage_options()
    target = uri if storage.is_remote(uri) else storage.normalize_uri(uri)
    Console().print(lineage_tree(lineage_chain(target, options)))
