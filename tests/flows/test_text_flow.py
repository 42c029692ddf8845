"""The text flow end to end: Prefect (test harness) + local Ray + an S3 endpoint."""

from __future__ import annotations

import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from documents import english_documents

from flows.text import TextParams, build_stages, curate_text
from stages.base import FilterChain
from stages.io.commit import dataset_files, read_manifest
from stages.io.read import ShardReader
from stages.io.shards import plan_shards

GERMAN = (
    "Der Fluss war breit und langsam, und die alte Brücke knarrte unter dem Gewicht der "
    "Wagen. Sie öffnete das Fenster, um die Morgenluft hereinzulassen, und hörte den Vögeln "
    "im Garten zu. Unser Team hat die Temperatur des Wassers drei Tage lang jede Stunde "
    "gemessen. Als die Bibliothek wegen Reparaturen geschlossen wurde, zogen die Studenten "
    "mit ihrer Lerngruppe in das Café um. Er schrieb seiner Schwester einen kurzen Brief."
)


def _corpus() -> tuple[list[bytes], list[dict]]:
    """Three input files' bytes: prose, junk, duplicates, a German document, bad lines."""
    docs = english_documents(60, seed=1)
    rows_a = [{"id": f"a{i}", "text": t} for i, t in enumerate(docs[:30])]
    rows_b = [{"id": f"b{i}", "text": t} for i, t in enumerate(docs[30:])]
    rows_b += [
        {"id": "dup-1", "text": docs[3]},  # exact copy of a3
        {"id": "dup-2", "text": docs[40]},  # exact copy of b10
        {"id": "short", "text": "Too short to keep."},
        {"id": "symbols", "text": "#### $$$ ### !!! ((( ))) " * 20},
        {"id": "german", "text": GERMAN},
    ]
    lines_a = [json.dumps(r).encode() for r in rows_a]
    lines_b = [json.dumps(r).encode() for r in rows_b]
    lines_b.insert(5, b'{"id": "broken", "text": "unterminated')  # invalid JSON
    lines_b.insert(9, b'{"id": "no-text"}')  # missing text field
    lines_a.insert(2, b'{"id": "latin1", "text": "caf\xe9 au lait"}')  # not UTF-8
    file_a = b"\n".join(lines_a) + b"\n"
    file_b = gzip.compress(b"\n".join(lines_b) + b"\n")
    file_c = b""  # an empty file
    rows_d = [{"id": f"t{i}", "text": docs[i]} for i in range(10)]  # copies of a0..a9
    whole = gzip.compress(b"\n".join(json.dumps(r).encode() for r in rows_d) + b"\n")
    file_d = whole[: len(whole) * 2 // 3]  # a truncated gzip stream
    return [file_a, file_b, file_c, file_d], rows_a + rows_b


NAMES = ["a.jsonl", "b.jsonl.gz", "c.jsonl", "d.jsonl.gz"]


def _expected(input_uri: str, params: TextParams) -> tuple[list[str], dict[str, tuple]]:
    """Independent count: the same stages applied in this process, one after the other,
    with a plain-Python exact dedup (first occurrence kept)."""
    reader = ShardReader(storage_options={})
    tables = [reader.read(s).table for s in plan_shards(input_uri)]
    table = pa.concat_tables(tables).sort_by("_order")
    counts = {}
    stages = []
    for stage in build_stages(params):  # the chain's filters, one by one
        stages.extend(stage.filters if isinstance(stage, FilterChain) else [stage])
    for stage in stages:
        stage.setup()
        before = table.num_rows
        table = stage.process(table)
        counts[stage.stage_name] = (before, table.num_rows)
    seen, kept = set(), []
    for row in table.select(["id", "text"]).to_pylist():
        digest = hashlib.md5(row["text"].encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(row["id"])
    return sorted(kept), counts


def _output_ids(uri: str) -> list[str]:
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    ids = []
    for f in dataset_files(uri):
        with fs.open(f, "rb") as fh:
            ids.extend(pq.read_table(fh, columns=["id"]).column("id").to_pylist())
    return sorted(ids)


def test_curate_text_on_s3_counts_match_an_independent_count(
    s3_bucket, prefect_harness, ray_cluster
):
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    files, _ = _corpus()
    for name, data in zip(NAMES, files, strict=True):
        fs.pipe(f"{s3_bucket}/raw/{name}", data)
    params = TextParams(input=f"s3://{s3_bucket}/raw/*", output=f"s3://{s3_bucket}/curated")

    summary = curate_text(params)

    expected_ids, expected_counts = _expected(f"s3://{s3_bucket}/raw/*", params)
    assert _output_ids(f"s3://{s3_bucket}/curated") == expected_ids
    assert "dup-1" not in expected_ids and "a3" in expected_ids
    assert "german" not in expected_ids and "short" not in expected_ids

    manifest = read_manifest(f"s3://{s3_bucket}/curated")
    assert manifest["version"] == summary["output"].rsplit("/", 1)[-1]
    assert sum(f["rows"] for f in manifest["files"]) == len(expected_ids)
    assert [i["uri"] for i in manifest["inputs"]] == [f"s3://{s3_bucket}/raw/{n}" for n in NAMES]
    assert manifest["parameters"]["filters"] == "default"
    assert manifest["code_version"]
    assert manifest["flow_run_id"]

    stages = {s["stage"]: s for s in manifest["extra"]["stages"]}
    for name, (rows_in, rows_out) in expected_counts.items():
        if name == "ExactDedupHash":
            continue
        assert (stages[name]["rows_in"], stages[name]["rows_out"]) == (rows_in, rows_out), name
    report = summary["report"]
    truncated_rows = stages["read"]["rows_out"] - 65
    assert 0 < truncated_rows < 10  # the rows before the damage were kept
    dedup = stages["ExactDedup"]
    assert dedup["rows_in"] - dedup["rows_out"] == 2 + truncated_rows  # t<i> copy a<i>
    assert report["rows_read"] == 65 + truncated_rows + 5  # rows read include the quarantined
    # invalid JSON, missing text, empty file, non-UTF-8 line, truncated stream
    assert report["rows_quarantined"] == 5 == manifest["quarantined_rows"]
    reasons = [r for q in manifest["quarantine"] for r in _reasons(fs, manifest, q)]
    assert any("a.jsonl: line 3:" in r and "UTF-8" in r for r in reasons), reasons
    assert any("b.jsonl.gz: line 6:" in r for r in reasons), reasons
    assert any("b.jsonl.gz: line 10:" in r and "text" in r for r in reasons), reasons
    assert any("c.jsonl: line 0: empty file" in r for r in reasons), reasons
    assert any("d.jsonl.gz" in r and "truncated" in r for r in reasons), reasons

    assert [f["path"] for f in manifest["extra_files"]] == [
        "duplicates.parquet",
        "report.html",
        "report.md",
    ]
    duplicates = pq.read_table(
        fs.open(f"{s3_bucket}/curated/{manifest['version']}/duplicates.parquet")
    ).to_pylist()
    expected_pairs = {("dup-1", "a3"), ("dup-2", "b10")}
    expected_pairs |= {(f"t{i}", f"a{i}") for i in range(truncated_rows)}
    assert {(d["id"], d["duplicate_of"]) for d in duplicates} == expected_pairs


def test_run_is_reported_in_prefect_with_artifacts_and_an_asset(
    tmp_path, prefect_harness, ray_cluster
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"text": t}) for t in english_documents(20)))
    summary = curate_text(TextParams(input=str(source), output=str(tmp_path / "out")))
    run_id = read_manifest(summary["output"])["flow_run_id"]

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        by_key = {a.key: a for a in artifacts}
        assert by_key["curate-text-stages"].type == "table"
        assert by_key["curate-text-report"].type == "markdown"
        assert "WordCountFilter" in by_key["curate-text-report"].data
        events = _asset_events(client, run_id)
    assert events, "no asset materialization recorded"
    event = events[0]
    assert event["resource"]["prefect.resource.id"] == f"file://{tmp_path / 'out'}"
    related = {r["prefect.resource.id"]: r for r in event["related"]}
    assert related[f"file://{source}"]["prefect.resource.role"] == "asset"
    assert event["payload"]["rows"] == 20


def _asset_events(client, run_id: str) -> list[dict]:
    """Materialization events of this flow run (events reach the API asynchronously)."""
    import datetime as dt
    import time

    deadline = time.monotonic() + 30
    while True:
        now = dt.datetime.now(dt.UTC)
        response = client.request(
            "POST",
            "/events/filter",
            json={
                "filter": {
                    "occurred": {
                        "since": (now - dt.timedelta(hours=1)).isoformat(),
                        "until": (now + dt.timedelta(minutes=1)).isoformat(),
                    },
                    "event": {"name": ["prefect.asset.materialization.succeeded"]},
                },
                "limit": 50,
            },
        )
        events = [
            e
            for e in response.json()["events"]
            if any(r["prefect.resource.id"] == f"prefect.flow-run.{run_id}" for r in e["related"])
        ]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(1)


def _reasons(fs, manifest, entry) -> list[str]:
    path = f"{manifest['uri'].removeprefix('s3://')}/{entry['path']}"
    table = pq.read_table(fs.open(path, "rb")).to_pylist()
    return [f"{r['source']}: line {r['line']}: {r['reason']}" for r in table]


def test_rerunning_a_committed_run_changes_nothing(s3_bucket, prefect_harness, ray_cluster):
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe(f"{s3_bucket}/raw/a.jsonl", _corpus()[0][0])
    params = TextParams(input=f"s3://{s3_bucket}/raw/a.jsonl", output=f"s3://{s3_bucket}/out")
    first = curate_text(params)
    second = curate_text(params)
    assert second["already_committed"] is True
    assert second["output"] == first["output"]
    assert _output_ids(f"s3://{s3_bucket}/out") == sorted(f"a{i}" for i in range(30))


def test_strict_mode_fails_naming_file_and_line(s3_bucket, prefect_harness, ray_cluster):
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe(f"{s3_bucket}/raw/bad.jsonl", b'{"id": "x", "text": "fine"}\nnot json\n')
    params = TextParams(
        input=f"s3://{s3_bucket}/raw/bad.jsonl", output=f"s3://{s3_bucket}/out", strict=True
    )
    with pytest.raises(Exception, match=r"bad\.jsonl: line 2"):
        curate_text(params)


def test_text_flow_can_remove_near_duplicates(tmp_path, prefect_harness, ray_cluster):
    import random

    docs = english_documents(60, seed=17)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rng = random.Random(3)
    for i in range(8):  # the same document with one word changed
        words = docs[20 + i].split()
        words[rng.randrange(len(words))] = "zebra"
        rows.append({"id": f"near{i}", "text": " ".join(words)})
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    curate_text(TextParams(input=str(source), output=str(out), dedup="fuzzy", shard_size_mb=0.01))

    manifest = read_manifest(str(out))
    kept = set()
    for f in dataset_files(str(out)):
        kept |= set(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    assert {r["id"] for r in audit} == {f"near{i}" for i in range(8)}
    assert {r["duplicate_of"] for r in audit} == {f"d{20 + i}" for i in range(8)}
    assert kept == {f"d{i}" for i in range(60)}
    stages = {s["stage"]: s for s in manifest["extra"]["stages"]}
    assert stages["FuzzyDedup"]["removed"] == 8
    assert not (out / manifest["version"] / "_work").exists()


def test_text_flow_can_remove_semantic_duplicates(tmp_path, prefect_harness, ray_cluster):
    docs = english_documents(30, seed=23)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"again{i}", "text": docs[i] + " "} for i in range(3)]  # same meaning
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    curate_text(TextParams(input=str(source), output=str(out), dedup="semantic", clean=False))
    manifest = read_manifest(str(out))
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    pairs = {frozenset((r["id"], r["duplicate_of"])) for r in audit}
    assert {frozenset((f"d{i}", f"again{i}")) for i in range(3)} <= pairs
    assert manifest["rows"] == len(rows) - len(audit)
    assert "embedding" not in pq.read_schema(dataset_files(str(out))[0]).names
