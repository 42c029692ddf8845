"""The run report as a table and as markdown: one row per stage (the funnel from rows read
to rows written) and samples of what each stage removed."""

from __future__ import annotations

from typing import Any

from flows.runtime.engine import RunReport


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
