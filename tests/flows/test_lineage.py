"""Lineage across flows (manifest to manifest, back to the raw files) and the HTML run
report (self-contained page: funnel and timing bars, rows/s, samples, score histograms)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pyarrow as pa
import pytest
from documents import english_documents

from flows.lineage import lineage_chain, lineage_tree, print_lineage
from flows.reports.html import html_report, score_histograms
from flows.reports.tables import stage_table
from flows.runtime.engine import RunReport, StageMetrics
from stages.io.commit import VersionWriter


class _Page(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, tag: str, **attrs) -> list[dict]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


def _report() -> RunReport:
    report = RunReport(shards_total=3, rows_read=100, rows_written=70, bytes_written=4096)
    report.seconds = 2.5
    stages = [
        ("read", 100, 100, 0.5),
        ("WordCountFilter", 100, 80, 2.0),
        ("ExactDedup", 80, 70, 0.4),
    ]
    for name, rows_in, rows_out, seconds in stages:
        m = StageMetrics(name, rows_in=rows_in, rows_out=rows_out, seconds=seconds, shards=3)
        m.nodes = {"n1", "n2"}
        report.stages[name] = m
    report.stages["WordCountFilter"].removed_sample = [{"id": "doc-<7>", "text": "too short"}]
    report.stages["ExactDedup"].removed_sample = [{"id": "d9", "duplicate_of": "d1"}]
    return report


def _version(root, version: str, rows: int, inputs: list[dict], extra=None) -> str:
    writer = VersionWriter(str(root), version)
    table = pa.table({"id": [f"{version}-{i}" for i in range(rows)], "text": ["x"] * rows})
    files = [writer.write_part("s0", table)]
    writer.commit_shard("s0", files, {})
    manifest = writer.commit(
        inputs=inputs, parameters={}, code_version="c1", flow_run_id=None, extra=extra
    )
    return manifest["uri"]


# --------------------------------------------------------------------------- lineage


def test_lineage_follows_inputs_through_manifests_to_raw_files(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text("{}\n")
    first = _version(
        tmp_path / "a", "v1", 4, [{"uri": str(raw), "size": 3}], extra={"flow": "curate-text"}
    )
    # Two files of the same upstream version: one parent node, reached once.
    inputs = [{"uri": f"{first}/part-s0-0.parquet"}, {"uri": f"{first}/part-x-0.parquet"}]
    second = _version(tmp_path / "b", "v2", 3, inputs, extra={"flow": "curate-dedup"})

    chain = lineage_chain(str(tmp_path / "b"))

    assert [(n["uri"], n["kind"], n["depth"]) for n in chain] == [
        (second, "dataset", 0),
        (first, "dataset", 1),
        (str(raw), "raw", 2),
    ]
    assert [n["flow"] for n in chain] == ["curate-dedup", "curate-text", None]
    assert chain[0]["inputs"] == [first] and chain[1]["inputs"] == [str(raw)]
    assert [n["rows"] for n in chain[:2]] == [3, 4]
    assert chain[2]["size"] == 3


def test_lineage_of_a_version_without_curate_inputs_lists_its_raw_files(tmp_path):
    inputs = [{"uri": str(tmp_path / f"f{i}.jsonl"), "size": i} for i in range(8)]
    uri = _version(tmp_path / "out", "v1", 2, inputs)
    chain = lineage_chain(uri)
    assert [n["kind"] for n in chain] == ["dataset"] + ["raw"] * 8
    # The printed tree shows a few raw files and counts the rest.
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(lineage_tree(chain))
    text = console.export_text()
    assert "f0.jsonl" in text and "f7.jsonl" not in text and "and 3 more raw files" in text


@pytest.fixture
def text_then_dedup(tmp_path, ray_cluster):
    from flows.dedup import DedupParams, run_dedup
    from flows.text import TextParams, run_text

    raw = tmp_path / "raw"
    raw.mkdir()
    docs = english_documents(20, seed=2)
    for f in range(2):
        rows = [{"id": f"r{f}-{i}", "text": t} for i, t in enumerate(docs[f * 10 : f * 10 + 10])]
        rows.append({"id": f"copy{f}", "text": docs[0]})
        (raw / f"part{f}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = run_text(TextParams(input=str(raw), output=str(tmp_path / "curated"), dedup="none"))
    dedup = run_dedup(
        DedupParams(input=str(tmp_path / "curated"), output=str(tmp_path / "dedup"), method="exact")
    )
    return raw, text, dedup


def test_text_then_dedup_lineage_shows_both_flows_and_the_raw_inputs(text_then_dedup, capsys):
    raw, text, dedup = text_then_dedup

    chain = lineage_chain(dedup["output"])

    datasets = [n for n in chain if n["kind"] == "dataset"]
    assert [(n["uri"], n["flow"], n["depth"]) for n in datasets] == [
        (dedup["output"], "curate-dedup", 0),
        (text["output"], "curate-text", 1),
    ]
    assert datasets[0]["inputs"] == [text["output"]]
    assert datasets[1]["rows"] == 22 and datasets[0]["rows"] == 20  # both copies of docs[0] went
    raws = [n["uri"] for n in chain if n["kind"] == "raw"]
    assert raws == [str(raw / "part0.jsonl"), str(raw / "part1.jsonl")]
    assert all(n["code_version"] for n in datasets)

    print_lineage(dedup["output"])
    printed = capsys.readouterr().out
    assert printed.index("curate-dedup") < printed.index("curate-text") < printed.index("part0")


# --------------------------------------------------------------------------- HTML report


def test_html_report_has_one_funnel_bar_per_stage_with_the_reports_numbers(monkeypatch):
    monkeypatch.delenv("RAY_DASHBOARD_URL", raising=False)
    report = _report()
    page = html_report("curate-text", report, {"version": "v1"}, "/out/v1")
    parsed = _Page(page)

    bars = parsed.having("rect", **{"class": "bar"})
    assert [b["data-stage"] for b in bars] == list(report.stages)
    for bar, m in zip(bars, report.stages.values(), strict=True):
        assert int(bar["data-rows-in"]) == m.rows_in
        assert int(bar["data-rows-out"]) == m.rows_out
        assert int(bar["data-removed"]) == m.removed
    # Bars are to scale.
    widths = [float(b["width"]) for b in bars]
    assert widths[1] / widths[0] == pytest.approx(0.8, abs=0.01)
    assert widths[2] / widths[0] == pytest.approx(0.7, abs=0.01)
    times = parsed.having("rect", **{"class": "time-bar"})
    assert [float(t["data-seconds"]) for t in times] == [0.5, 2.0, 0.4]
    per_second = {r["stage"]: r["rows_per_s"] for r in stage_table(report)}
    assert [float(t["data-rows-per-s"]) for t in times] == list(per_second.values())
    assert per_second["WordCountFilter"] == 50.0
    text = "".join(parsed.text)
    assert "doc-<7>" in text and "too short" in text  # samples, escaped in the markup
    assert "<7>" not in page.replace("doc-&lt;7&gt;", "")
    assert "Ray dashboard" not in text


def test_html_report_is_self_contained_and_links_the_dashboard_when_known(monkeypatch):
    monkeypatch.setenv("RAY_DASHBOARD_URL", "127.0.0.1:8265")
    page = html_report("curate-dedup", _report(), {"version": "v1"}, "s3://b/out/v1")
    parsed = _Page(page)
    assert not parsed.having("script") and not parsed.having("link")
    assert not [a for _, a in parsed.tags if "src" in a]
    assert parsed.having("a", href="http://127.0.0.1:8265")


def test_score_histograms_from_shard_markers_and_from_the_manifest(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    for shard, scores in (("s0", [0.0, 0.1, 0.2]), ("s1", [0.9, 1.0])):
        table = pa.table(
            {"id": [f"{shard}-{i}" for i in range(len(scores))], "score_words": scores}
        )
        writer.commit_shard(shard, [writer.write_part(shard, table)], {})

    before = score_histograms(writer.uri, bins=10)  # at commit time: no manifest yet
    writer.commit(inputs=[], parameters={}, code_version="c", flow_run_id=None)
    after = score_histograms(writer.uri, bins=10)

    assert before == after
    hist = after["score_words"]
    assert hist["rows"] == 5 and sum(hist["counts"]) == 5
    assert hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0
    assert hist["counts"][0] == 1 and hist["counts"][-1] == 2

    page = _Page(html_report("t", _report(), {}, writer.uri, histograms=after))
    bins = page.having("rect", **{"class": "hist-bar"})
    assert [int(b["data-count"]) for b in bins] == hist["counts"]


def test_no_score_columns_means_no_histograms(tmp_path):
    uri = _version(tmp_path / "out", "v1", 3, [])
    assert score_histograms(uri) == {}
    page = _Page(html_report("t", _report(), {}, uri, histograms={}))
    assert not page.having("rect", **{"class": "hist-bar"})
    assert page.having("rect", **{"class": "bar"})  # the funnel is still there


def test_publish_artifacts_links_the_html_report_when_the_version_has_one(
    tmp_path, prefect_harness
):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.runtime import flow_run

    from flows.reports.artifacts import publish_artifacts

    version_uri = str(tmp_path / "out" / "v1")
    with_html = {"version": "v1", "extra_files": [{"path": "report.html"}]}

    @flow
    def publish(manifest: dict) -> str:
        publish_artifacts("curate-test", _report(), manifest, version_uri)
        return str(flow_run.id)

    linked, plain = publish(with_html), publish({"version": "v1", "extra_files": []})

    with get_client(sync_client=True) as client:

        def artifacts(run_id: str) -> dict:
            found = client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
            return {a.key: a for a in found}

        by_key = artifacts(linked)
        # Prefect stores a link artifact as markdown: [text](link).
        link = by_key["curate-test-report-html"].data
        assert f"(file://{version_uri}/report.html)" in link
        assert by_key["curate-test-stages"].type == "table"
        assert "curate-test-report-html" not in artifacts(plain)
