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
        f"- rows read: {report.rows_read} (every line, record or sample the readers saw)",
        f"- rows quarantined (bad input): {report.rows_quarantined}"
        f" ({report.quarantine_records} records)",
        *(
            [f"- rows added by splitting (clips beyond one per video): {report.rows_added}"]
            if report.rows_added
            else []
        ),
        f"- rows removed by the stages: {report.rows_removed}",
        f"- duplicates removed: {report.duplicates_removed}",
        f"- rows written: {report.rows_written}",
        *(
            [f"- removed rows kept: {report.removed_kept} in `removed/`"]
            if report.removed_kept
            else []
        ),
        f"- blank lines (not rows): {report.blank_lines}",
        f"- bytes written: {report.bytes_written}",
        f"- {accounting(report)}",
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
        lines += ["", "## What each stage removed (samples)", ""]
        for name, sample in samples:
            lines.append(f"**{name}**")
            lines.append("")
            for row in sample[:3]:
                lines.append(_markdown_sample(row))
            lines.append("")
    found = report.duplicate_ids
    if found.get("ids"):
        lines += ["", "## Duplicate ids", "", _duplicate_ids_line(found), ""]
        for item in found.get("sample", []):
            sources = ", ".join(_code(s) for s in item.get("sources", []))
            lines.append(
                f"- {_code(item['id'])}: {item['rows']} rows" + (f" ({sources})" * bool(sources))
            )
    if report.skipped_inputs:
        lines += ["", "## Skipped inputs", "", "| path | reason |", "|---|---|"]
        for item in report.skipped_inputs[:SKIPPED_SHOWN]:
            lines.append(f"| {_code(item['path'])} | {_escape(item['reason'])} |")
        if len(report.skipped_inputs) > SKIPPED_SHOWN:
            more = len(report.skipped_inputs) - SKIPPED_SHOWN
            lines += ["", f"... and {more} more (the manifest's `skipped_inputs` lists them)"]
    return "\n".join(lines)


SKIPPED_SHOWN = 50  # skipped inputs a report lists; the manifest has them all


def accounting(report: RunReport) -> str:
    """The rows read, accounted for: "read = written + removed + duplicates + quarantined",
    with the difference when they do not add up."""
    read = f"{report.rows_read} read"
    if report.rows_added:
        read += f" + {report.rows_added} added by splitting"
    parts = (
        f"{read} = {report.rows_written} written + {report.rows_removed} "
        f"removed + {report.duplicates_removed} duplicates + {report.rows_quarantined} "
        "quarantined"
    )
    if report.unaccounted:
        return f"accounting: {parts.replace(' = ', ' != ')}: {report.unaccounted} unaccounted"
    return f"accounting: {parts}"


def _duplicate_ids_line(found: dict) -> str:
    ids = f"{found['ids']} id is" if found["ids"] == 1 else f"{found['ids']} ids are"
    return f"{ids} held by more than one row ({found['rows']} rows); ids are kept as they are:"


def sample_details(sample: dict) -> list[str]:
    """What a removed row held besides its id, text, path and duplicate, in words:
    "image 64x48", "undecodable image (reason)", "duration 3.2 s", "clip 1-4.2 s",
    "reason: ..." (the keys of `stages.samples.describe_rows`), then any other string or
    number a stage put in its sample ("length: 2")."""
    parts = []
    if _is_number(sample.get("width")) and _is_number(sample.get("height")):
        parts.append(f"image {sample['width']}x{sample['height']}")
    if sample.get("image_error"):
        parts.append(f"undecodable image ({sample['image_error']})")
    if _is_number(sample.get("duration")):
        parts.append(f"duration {_seconds(sample['duration'])} s")
    if _is_number(sample.get("start")) and _is_number(sample.get("end")):
        parts.append(f"clip {_seconds(sample['start'])}-{_seconds(sample['end'])} s")
    for key, value in sample.items():  # what a stage's own `describe_removed` adds
        if key in _RENDERED or isinstance(value, bool) or value is None or value == "":
            continue
        if isinstance(value, str) and not value.startswith("data:"):
            parts.append(f"{key}: {' '.join(value.split())[:80]}")
        elif _is_number(value):
            parts.append(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return parts


# Keys of `stages.samples.describe_rows` that each report renders in its own way.
_RENDERED = frozenset(
    ("id", "text", "thumbnail", "width", "height", "image_error", "duration", "start", "end")
    + ("path", "duplicate_of", "similarity")
)


def duplicate_of(sample: dict) -> tuple[str, str] | None:
    """(id kept instead, similarity in words or "") of a row a dedup step removed."""
    if sample.get("duplicate_of") is None:
        return None
    similarity = sample.get("similarity")
    return str(sample["duplicate_of"]), (
        f"similarity {similarity:.3g}" if _is_number(similarity) else ""
    )


def _markdown_sample(sample: dict) -> str:
    parts = [_code(sample.get("id"))]
    dup = duplicate_of(sample)
    if dup:
        parts.append(f"(duplicate of {_code(dup[0])}" + (f", {dup[1]})" if dup[1] else ")"))
    details = [_escape(d) for d in sample_details(sample)]
    if sample.get("path"):
        details.append(f"path {_code(sample['path'])}")
    if details:
        parts.append(", ".join(details))
    text = sample.get("text")
    if isinstance(text, str) and text.strip():
        parts.append(_escape(" ".join(text.split())[:160]))
    return "- " + " ".join(parts)


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]<>&|"})


def _escape(text: str) -> str:
    """Text shown as is: every character that markdown or HTML would read backslash-escaped."""
    return text.translate(_MARKDOWN)


def _code(value: Any) -> str:
    text = " ".join(str(value).split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")
