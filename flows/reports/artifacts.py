"""The run's Prefect artifacts: the per-stage table, the markdown report and a link to the
HTML report."""

from __future__ import annotations

from flows.reports.html import REPORT_HTML
from flows.reports.tables import markdown_report, stage_table
from flows.runtime.engine import RunReport


def publish_artifacts(flow_name: str, report: RunReport, manifest: dict, version_uri: str) -> None:
    """Attach the per-stage table and the markdown report to the current flow run, and a
    link to the HTML report when the version has one."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

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
            description=(
                "HTML run report (funnel, timings, removed samples, score histograms) "
                f"for {version_uri}"
            ),
        )


def _link(uri: str) -> str:
    return uri if "://" in uri else "file://" + uri
