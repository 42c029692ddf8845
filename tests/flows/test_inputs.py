"""What a run reads, end to end (the text flow without Prefect, on the local Ray cluster):
every input row is accounted for exactly, what a folder holds that is not read is listed
with its reason, and ids that are not unique are reported."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from documents import english_documents

from flows.runtime.passes import report_from_manifest, shard_result
from flows.text import TextParams, run_text
from stages.io.commit import read_manifest
from stages.io.quarantine import with_blank_lines
from stages.io.read import empty_quarantine
from stages.io.shards import Shard

DOCS = english_documents(60, seed=8)


def _messy_folder(raw) -> dict:
    """An input folder with every kind of trouble; returns what the test needs to know."""
    raw.mkdir()
    rows_a = [{"id": f"a{i}", "text": DOCS[i]} for i in range(30)]
    rows_a += [
        {"id": 7, "text": DOCS[40]},  # 7, "7" and 7.0 are all the id "7"
        {"id": "7", "text": DOCS[41]},
        {"id": 7.0, "text": DOCS[42]},
    ]
    lines = [json.dumps(r).encode() for r in rows_a]
    lines.insert(3, b"")  # blank lines: not rows, counted apart
    lines.insert(9, b"   ")
    lines.insert(12, b'{"id": "broken", "text": "unterminated')
    lines.insert(15, b'{"id": "no-text"}')
    (raw / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # with a BOM

    copies = [{"id": f"t{i}", "text": DOCS[i]} for i in range(12)]  # copies of a0..a11
    whole = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in copies))
    (raw / "b.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])  # truncated

    pq.write_table(pa.table({"text": DOCS[50:55]}), raw / "c.parquet")
    (raw / "c.parquet").write_bytes((raw / "c.parquet").read_bytes()[:-30])  # no footer

    pq.write_table(pa.table({"text": [f"row {i} " * 50 for i in range(100)]}), raw / "d.parquet")
    data = bytearray((raw / "d.parquet").read_bytes())
    data[4:600] = b"\xff" * 596  # data pages damaged, the footer still says 100 rows
    (raw / "d.parquet").write_bytes(bytes(data))

    rows_e = [
        {"id": "e0", "text": DOCS[45]},
        {"id": "dup-1", "text": DOCS[3]},  # exact copy of a3
        {"id": "dup-2", "text": DOCS[20]},  # exact copy of a20
        {"id": "short", "text": "Too short to keep."},
    ]
    pq.write_table(pa.Table.from_pylist(rows_e), raw / "e.parquet")

    (raw / "notes.txt").write_text("not an input")
    os.symlink(raw.parent / "moved-away.jsonl", raw / "f.jsonl")  # dangling
    (raw / "sub").mkdir()
    (raw / "sub" / "g.jsonl").write_text(json.dumps({"id": "g0", "text": DOCS[46]}) + "\n")
    os.symlink("..", raw / "sub" / "up")  # a loop (relative: copies of the folder loop too)
    return {"quarantined_lines": 2, "blank": 2}


def _accounted(report: dict) -> int:
    """rows_written + removed by the stages + duplicates removed + rows quarantined."""
    skip = {"read", "ExactDedup"}
    removed = sum(s["removed"] for s in report["stages"] if s["stage"] not in skip)
    return (
        report["rows_written"] + removed + report["duplicates_removed"] + report["rows_quarantined"]
    )


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory, ray_cluster):
    root = tmp_path_factory.mktemp("inputs")
    known = _messy_folder(root / "raw")
    summary = run_text(TextParams(input=str(root / "raw"), output=str(root / "out")))
    return root, known, summary, read_manifest(summary["output"])


def test_every_row_read_is_written_removed_deduplicated_or_quarantined(messy_run):
    root, known, summary, manifest = messy_run
    report = summary["report"]
    assert report["rows_read"] == _accounted(report)
    stages = {s["stage"]: s for s in report["stages"]}
    # One definition: the read stage takes in every row read and passes on the good ones.
    assert stages["read"]["rows_in"] == report["rows_read"]
    assert stages["read"]["removed"] == report["rows_quarantined"]
    truncated = stages["read"]["rows_out"] - 33 - 4 - 1  # rows kept from b.jsonl.gz
    assert 0 < truncated < 12
    # Quarantined rows: 2 bad lines, the truncated stream's last line, the footerless
    # c.parquet (1), all 100 rows of d.parquet (its footer says so), the dangling link.
    assert report["rows_quarantined"] == 2 + 1 + 1 + 100 + 1
    assert report["quarantine_records"] == 6
    assert report["rows_read"] == 33 + 2 + truncated + 1 + 1 + 100 + 4 + 1 + 1
    assert report["blank_lines"] == known["blank"]
    assert report["duplicates_removed"] == 2 + truncated
    assert manifest["quarantined_rows"] == report["rows_quarantined"]
    assert manifest["extra"]["rows_read"] == report["rows_read"]
    assert manifest["extra"]["blank_lines"] == known["blank"]


def test_a_committed_run_reports_the_same_accounting(messy_run):
    root, _, summary, manifest = messy_run
    again = report_from_manifest(manifest).to_dict()
    for key in (
        "rows_read",
        "rows_written",
        "rows_quarantined",
        "quarantine_records",
        "blank_lines",
        "duplicates_removed",
    ):
        assert again[key] == summary["report"][key], key
    assert again["rows_read"] == _accounted(again)
    rerun = run_text(TextParams(input=str(root / "raw"), output=str(root / "out")))
    assert rerun["already_committed"]
    assert rerun["report"]["rows_read"] == _accounted(rerun["report"])
    assert rerun["report"]["skipped_inputs"] == summary["report"]["skipped_inputs"]


def test_skipped_inputs_are_in_the_manifest_and_the_reports(messy_run):
    root, _, summary, manifest = messy_run
    raw = root / "raw"
    assert [(s["path"], s["reason"]) for s in manifest["skipped_inputs"]] == [
        (str(raw / "notes.txt"), "unsupported file type '.txt'"),
        (str(raw / "sub" / "up"), f"symbolic link loop: {raw} is a folder above it"),
    ]
    assert summary["report"]["skipped_inputs"] == manifest["skipped_inputs"]
    markdown = open(summary["report_uri"]).read()
    assert "## Skipped inputs" in markdown and "notes.txt" in markdown
    html = open(summary["report_html"]).read()
    assert "Skipped inputs" in html and "symbolic link loop" in html
    dangling = [q for q in manifest["quarantine"]]
    assert dangling  # the dangling link is quarantined, not skipped


def test_the_dangling_link_is_quarantined_with_its_target(messy_run):
    root, _, _, manifest = messy_run
    reasons = []
    for entry in manifest["quarantine"]:
        reasons += pq.read_table(f"{manifest['uri']}/{entry['path']}").column("reason").to_pylist()
    link = root / "raw" / "f.jsonl"
    assert f"{link}: line 0: dangling symbolic link to {root / 'moved-away.jsonl'}" in reasons
    assert [i["uri"] for i in manifest["inputs"]].count(str(link)) == 1


def test_duplicate_ids_are_reported_and_kept(messy_run):
    _, _, summary, manifest = messy_run
    found = manifest["extra"]["duplicate_ids"]
    assert found["ids"] == 1 and found["rows"] == 3
    [sample] = found["sample"]
    assert sample["id"] == "7" and sample["rows"] == 3
    assert summary["report"]["duplicate_ids"] == found
    ids = pa.concat_tables(
        [pq.read_table(f"{manifest['uri']}/{f['path']}") for f in manifest["files"]]
    ).column("id")
    assert ids.to_pylist().count("7") == 3  # ids are never changed
    assert "Duplicate ids" in open(summary["report_uri"]).read()


def test_the_duplicates_audit_names_the_source_and_line_of_each_removed_row(messy_run):
    root, _, _, manifest = messy_run
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet")
    assert audit.column_names[:3] == ["id", "source", "line"]
    rows = {r["id"]: r for r in audit.to_pylist()}
    assert (rows["dup-1"]["source"], rows["dup-1"]["line"]) == (str(root / "raw" / "e.parquet"), 2)
    assert (rows["dup-2"]["source"], rows["dup-2"]["line"]) == (str(root / "raw" / "e.parquet"), 3)
    assert rows["t0"]["source"] == str(root / "raw" / "b.jsonl.gz") and rows["t0"]["line"] == 1


def test_output_copied_into_the_input_folder_is_not_read_again(messy_run, tmp_path):
    root, _, summary, _ = messy_run
    raw = tmp_path / "raw"
    shutil.copytree(root / "raw", raw, symlinks=True)
    shutil.copytree(root / "out", raw / "last-run")
    again = run_text(TextParams(input=str(raw), output=str(tmp_path / "out")))
    assert again["report"]["rows_read"] == summary["report"]["rows_read"]
    skipped = {s["path"]: s["reason"] for s in again["report"]["skipped_inputs"]}
    assert "curate output" in skipped[str(raw / "last-run")]


def test_shard_result_counts_quarantined_rows_and_blank_lines():
    shard = Shard(uri="/x/a.parquet", file_index=0, format="parquet")
    quarantine = empty_quarantine()
    quarantine = pa.concat_tables(
        [quarantine, pa.table({"source": ["/x/a.parquet"], "line": [0], "reason": ["r"],
                               "raw": [None], "rows": [100], "offset": [None],
                               "length": [None]}, schema=quarantine.schema)]
    )  # fmt: skip
    quarantine = with_blank_lines(quarantine, 4)
    table = pa.table({"id": ["a", "b"]})
    read = {"stage": "read", "rows_in": 3, "rows_out": 2, "seconds": 0.0, "removed_sample": []}
    result = shard_result(shard, table, quarantine, [read], [])
    assert result["rows_read"] == 102 and result["rows_quarantined"] == 100
    assert result["quarantine_records"] == 1 and result["blank_lines"] == 4
    assert result["metrics"][0]["rows_in"] == 102  # the read stage's one definition
