"""The HTML run report: one self-contained page per output version (no scripts, no network),
with its plots drawn as inline SVG.

- the funnel: rows in and rows out of every stage, one bar per stage;
- seconds and rows per second of every stage;
- what each stage removed (a sample of rows, each shown by what it holds: a text excerpt,
  an image thumbnail, the duration and path of a clip, the row it duplicates);
- score histograms, when the output keeps `score_*` columns (`keep_scores=True`): the
  scores of the rows that were kept, so a user sees how close to each threshold they lie.

Every bar carries its figures as `data-*` attributes, so the page is also machine-readable.
"""

from __future__ import annotations

import html
import os
import sys
from typing import Any

from flows.runtime.engine import RunReport

REPORT_HTML = "report.html"
HISTOGRAM_BINS = 20
_THUMBNAIL_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
)
HISTOGRAM_MAX_FILES = 200  # score histograms read at most this many data files (the first)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
code { background: #f3f3f3; padding: 0 0.2em; }
.bar { fill: #3b7dd8; } .bar-in { fill: #d6e4f7; } .time-bar { fill: #e08a2c; }
.hist-bar { fill: #5a9e5a; } svg text { font-size: 11px; fill: #333; }
.sample { font-size: 0.85em; color: #444; } .sample li { margin: 0.3em 0; }
.thumb { max-width: 96px; max-height: 96px; vertical-align: middle; margin: 0 0.4em; }
dl.meta dt { font-weight: 600; float: left; width: 9em; } dl.meta dd { margin-left: 10em; }
"""


def ray_dashboard_url() -> str | None:
    """The Ray dashboard of the cluster this process is connected to: `RAY_DASHBOARD_URL`
    when set, else what Ray reports (nothing when the dashboard is off or Ray is not
    running here)."""
    url = os.environ.get("RAY_DASHBOARD_URL")
    if not url and "ray" in sys.modules:
        try:
            import ray

            if ray.is_initialized():
                from ray._private import worker

                url = getattr(getattr(worker, "_global_node", None), "webui_url", None)
        except Exception:  # noqa: BLE001 - a report never fails for want of a link
            url = None
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


# --------------------------------------------------------------------------- scores


def score_histograms(
    version_uri: str, storage_options: dict | None = None, bins: int = HISTOGRAM_BINS
) -> dict[str, dict]:
    """Histograms of every `score_*` column in a version's data files: column ->
    {"edges": [bins + 1 floats], "counts": [bins ints], "rows": n}.

    Files come from `_manifest.json` when the version is committed, else from its shard
    markers (so this works at commit time, before the manifest is written). Only Parquet
    files are read, and of them only the score columns, so a version of any modality works.
    Empty when no file has a score column.
    """
    import numpy as np
    import pyarrow.parquet as pq

    from stages.io.commit import MANIFEST, VersionWriter, read_manifest
    from stages.io.fs import exists, filesystem, join

    version_uri = version_uri.rstrip("/")
    if exists(join(version_uri, MANIFEST), storage_options):
        paths = [f["path"] for f in read_manifest(version_uri, storage_options)["files"]]
    else:
        output, version = version_uri.rsplit("/", 1)
        markers = VersionWriter(output, version, storage_options).done_shards()
        paths = [f["path"] for key in sorted(markers) for f in markers[key].get("files", [])]
    values: dict[str, list] = {}
    # Only the Parquet files: a WebDataset version's tar shards carry their scores in the
    # sibling Parquet file, and media columns are never read.
    paths = [p for p in paths if p.endswith(".parquet")]
    for path in sorted(paths)[:HISTOGRAM_MAX_FILES]:
        fs, local = filesystem(join(version_uri, path), storage_options)
        with fs.open(local, "rb") as f:
            parquet = pq.ParquetFile(f)
            columns = [c for c in parquet.schema_arrow.names if c.startswith("score_")]
            if not columns:
                continue
            table = parquet.read(columns=columns)
        for name in columns:
            column = table.column(name)
            try:
                array = column.to_numpy(zero_copy_only=False).astype(np.float64)
            except (TypeError, ValueError):
                continue  # a non-numeric score (a label) has no histogram
            values.setdefault(name, []).append(array)
    out = {}
    for name in sorted(values):
        data = np.concatenate(values[name])
        data = data[np.isfinite(data)]
        if not data.size:
            continue
        low, high = float(data.min()), float(data.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        counts, edges = np.histogram(data, bins=bins, range=(low, high))
        out[name] = {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "rows": int(data.size),
        }
    return out


# --------------------------------------------------------------------------- SVG


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"


def _bar_chart(
    rows: list[dict[str, Any]],
    value: str,
    css: str,
    label: str,
    background: str | None = None,
) -> str:
    """Horizontal bars, one per row: `row[value]` (and `row[background]` behind it)."""
    label_w, bar_w, row_h = 260, 560, 20
    top = max([r[value] for r in rows] + [r[background] for r in rows if background] + [0])
    scale = bar_w / top if top > 0 else 0.0
    height = row_h * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 120}" '
        f'height="{height}" aria-label="{html.escape(label)}">'
    ]
    for i, row in enumerate(rows):
        y = 5 + i * row_h
        stage = html.escape(str(row["stage"]))
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{stage}</text>')
        if background:
            width = row[background] * scale
            parts.append(
                f'<rect class="{css}-in" x="{label_w}" y="{y + 2}" width="{width:.1f}" '
                f'height="{row_h - 4}"/>'
            )
        width = row[value] * scale
        data = " ".join(
            f'data-{k.replace("_", "-")}="{html.escape(str(v))}"'
            for k, v in row.items()
            if k in ("stage", "rows_in", "rows_out", "removed", "seconds", "rows_per_s")
        )
        parts.append(
            f'<rect class="{css}" {data} x="{label_w}" y="{y + 2}" width="{width:.1f}" '
            f'height="{row_h - 4}"><title>{stage}: {_fmt(row[value])}</title></rect>'
        )
        text = _fmt(row[value])
        if background:
            text = f"{_fmt(row[value])} / {_fmt(row[background])}"
        x = label_w + max(row[value], row[background] if background else 0) * scale + 6
        parts.append(f'<text x="{x:.1f}" y="{y + 13}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(name: str, hist: dict) -> str:
    width, height, pad = 420, 140, 24
    counts, edges = hist["counts"], hist["edges"]
    top = max(counts) or 1
    step = (width - 2 * pad) / len(counts)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height + 20}" aria-label="histogram of {html.escape(name)}">'
    ]
    for i, count in enumerate(counts):
        h = (height - pad) * count / top
        parts.append(
            f'<rect class="hist-bar" data-low="{edges[i]:.6g}" data-high="{edges[i + 1]:.6g}" '
            f'data-count="{count}" x="{pad + i * step:.1f}" y="{height - h:.1f}" '
            f'width="{max(step - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>[{edges[i]:.4g}, {edges[i + 1]:.4g}): {count}</title></rect>"
        )
    parts.append(f'<text x="{pad}" y="{height + 14}">{edges[0]:.4g}</text>')
    parts.append(
        f'<text x="{width - pad}" y="{height + 14}" text-anchor="end">{edges[-1]:.4g}</text>'
    )
    parts.append(f'<text x="{pad}" y="12">max {top:,} rows per bin</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- page


def _html_sample(sample: dict) -> str:
    """One removed row as a list item: id, thumbnail, duplicate, media details, text."""
    from flows.reports.tables import duplicate_of, sample_details

    esc = html.escape
    parts = [f"<code>{esc(str(sample.get('id')))}</code>"]
    thumbnail = sample.get("thumbnail")
    if isinstance(thumbnail, str) and thumbnail.startswith(_THUMBNAIL_PREFIXES):
        alt = f"image {sample.get('width', '')}x{sample.get('height', '')}"
        parts.append(f'<img class="thumb" src="{esc(thumbnail)}" alt="{esc(alt)}">')
    dup = duplicate_of(sample)
    if dup:
        similarity = f", {esc(dup[1])}" if dup[1] else ""
        parts.append(f"(duplicate of <code>{esc(dup[0])}</code>{similarity})")
    details = [esc(d) for d in sample_details(sample)]
    if sample.get("path"):
        details.append(f"path <code>{esc(str(sample['path']))}</code>")
    if details:
        parts.append(", ".join(details))
    text = sample.get("text")
    if isinstance(text, str) and text.strip():
        parts.append(esc(" ".join(text.split())[:300]))
    return "<li>" + " ".join(parts) + "</li>"


def html_report(
    title: str,
    report: RunReport,
    manifest: dict,
    version_uri: str,
    histograms: dict[str, dict] | None = None,
    dashboard_url: str | None = None,
) -> str:
    """A self-contained HTML page for one run: summary, funnel and timing charts, the
    per-stage table (with rows/s), samples of removed rows and, when given (see
    `score_histograms`), a histogram per score column. The Ray dashboard is linked when
    known (`dashboard_url`, else `ray_dashboard_url()`)."""
    from flows.reports.tables import stage_table

    esc = html.escape
    rows = stage_table(report)
    dashboard = dashboard_url or ray_dashboard_url()
    meta = [
        ("Output", f"<code>{esc(version_uri)}</code>"),
        ("Version", f"<code>{esc(str(manifest.get('version', '')))}</code>"),
        ("Code", f"<code>{esc(str(manifest.get('code_version', '')))}</code>"),
    ]
    if manifest.get("flow_run_id"):
        meta.append(("Flow run", f"<code>{esc(str(manifest['flow_run_id']))}</code>"))
    if manifest.get("created_at"):
        meta.append(("Created", esc(str(manifest["created_at"]))))
    if dashboard:
        meta.append(("Ray dashboard", f'<a href="{esc(dashboard)}">{esc(dashboard)}</a>'))
    totals = [
        ("shards", report.shards_total),
        ("already committed", report.shards_skipped),
        ("rows read", report.rows_read),
        *([("rows added by splitting", report.rows_added)] if report.rows_added else []),
        ("rows quarantined", report.rows_quarantined),
        ("quarantine records", report.quarantine_records),
        ("rows removed", report.rows_removed),
        ("duplicates removed", report.duplicates_removed),
        ("rows written", report.rows_written),
        ("unaccounted", report.unaccounted),
        ("blank lines", report.blank_lines),
        ("duplicate ids", report.duplicate_ids.get("ids", 0)),
        ("skipped inputs", len(report.skipped_inputs)),
        ("bytes written", report.bytes_written),
        ("seconds", round(report.seconds, 3)),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl>",
        '<table class="totals">'
        + "".join(f'<tr><td>{k}</td><td data-total="{k}">{_fmt(v)}</td></tr>' for k, v in totals)
        + "</table>",
    ]
    if rows:
        out += [
            "<h2>Funnel: rows in and out per stage</h2>",
            _bar_chart(rows, "rows_out", "bar", "rows out of each stage", "rows_in"),
            "<h2>Seconds per stage</h2>",
            _bar_chart(rows, "seconds", "time-bar", "seconds per stage"),
            "<h2>Stages</h2>",
            '<table class="stages"><tr><th>stage</th><th>rows in</th><th>rows out</th>'
            "<th>removed</th><th>removed %</th><th>seconds</th><th>rows/s</th><th>nodes</th></tr>",
        ]
        for row, metrics in zip(rows, report.stages.values(), strict=True):
            out.append(
                f'<tr data-stage="{esc(row["stage"])}"><td>{esc(row["stage"])}</td>'
                f"<td>{_fmt(row['rows_in'])}</td><td>{_fmt(row['rows_out'])}</td>"
                f"<td>{_fmt(row['removed'])}</td><td>{row['removed_%']}</td>"
                f"<td>{row['seconds']}</td><td>{_fmt(row['rows_per_s'])}</td>"
                f"<td>{len(metrics.nodes)}</td></tr>"
            )
        out.append("</table>")
    samples = [(m.name, m.removed_sample) for m in report.stages.values() if m.removed_sample]
    if samples:
        out.append("<h2>What each stage removed (samples)</h2>")
        for name, sample in samples:
            out.append(f'<h3>{esc(name)}</h3><ul class="sample">')
            out += [_html_sample(item) for item in sample[:5]]
            out.append("</ul>")
    out += _inputs_sections(report)
    if histograms:
        out.append("<h2>Scores of the kept rows</h2>")
        for name, hist in histograms.items():
            out.append(f'<h3 data-score="{esc(name)}">{esc(name)} ({_fmt(hist["rows"])} rows)</h3>')
            out.append(_histogram(name, hist))
    out.append("</body></html>")
    return "\n".join(out)


def _inputs_sections(report: RunReport) -> list[str]:
    """The accounting of the rows read, the ids held by several rows and the inputs that
    were not read."""
    from flows.reports.tables import SKIPPED_SHOWN, _duplicate_ids_line, accounting

    esc = html.escape
    out = [f'<p class="accounting">{esc(accounting(report))}</p>']
    found = report.duplicate_ids
    if found.get("ids"):
        out += ["<h2>Duplicate ids</h2>", f"<p>{esc(_duplicate_ids_line(found))}</p>"]
        out.append('<table class="duplicate-ids"><tr><th>id</th><th>rows</th><th>sources</th></tr>')
        for item in found.get("sample", []):
            sources = ", ".join(f"<code>{esc(s)}</code>" for s in item.get("sources", []))
            out.append(
                f'<tr data-id="{esc(item["id"])}"><td><code>{esc(item["id"])}</code></td>'
                f"<td>{_fmt(item['rows'])}</td><td>{sources}</td></tr>"
            )
        out.append("</table>")
    if report.skipped_inputs:
        out += [
            "<h2>Skipped inputs</h2>",
            '<table class="skipped"><tr><th>path</th><th>reason</th></tr>',
        ]
        for item in report.skipped_inputs[:SKIPPED_SHOWN]:
            out.append(
                f'<tr data-path="{esc(item["path"])}"><td><code>{esc(item["path"])}</code></td>'
                f"<td>{esc(item['reason'])}</td></tr>"
            )
        out.append("</table>")
        if len(report.skipped_inputs) > SKIPPED_SHOWN:
            more = len(report.skipped_inputs) - SKIPPED_SHOWN
            out.append(f"<p>... and {more} more (the manifest's skipped_inputs lists them)</p>")
    return out


__all__ = ["REPORT_HTML", "html_report", "ray_dashboard_url", "score_histograms"]
