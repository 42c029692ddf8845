"""`--keep-removed`: every row a stage or the dedup step removed is written to the version's
`removed/`, as it was when removed, with the stage that removed it (`removed_by`) and why
(`reason`); nothing of the kind is written or computed without the flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from documents import english_documents

from flows.runtime.engine import RunReport, run_pipeline, run_stage
from flows.text import TextParams, run_text
from stages.base import Filter, FilterChain, Resources, Splitter, Stage
from stages.io.commit import dataset_files, read_manifest, removed_files

DOCS = english_documents(40, seed=11)
GERMAN = (
    "Der Fluss war breit und langsam, und die alte Brücke knarrte unter dem Gewicht der "
    "Wagen. Sie öffnete das Fenster, um die Morgenluft hereinzulassen, und hörte den Vögeln "
    "im Garten zu. Unser Team hat die Temperatur des Wassers drei Tage lang jede Stunde "
    "gemessen. Als die Bibliothek wegen Reparaturen geschlossen wurde, zogen die Studenten "
    "mit ihrer Lerngruppe in das Café um. Er schrieb seiner Schwester einen kurzen Brief. "
    "Das Buch heißt The Wind and the Willows."  # English words enough for the heuristics
)


# --------------------------------------------------------------------------- the engine


class MinLength(Filter):
    """Keeps texts of at least `min_length` characters."""

    def __init__(self, min_length: int = 4):
        self.min_length = min_length

    def score(self, batch):
        return pc.utf8_length(batch["text"])

    def keep(self, scores):
        return scores >= self.min_length


class NoDigits(Filter):
    def score(self, batch):
        return pc.count_substring_regex(batch["text"], r"\d")

    def keep(self, scores):
        return scores == 0


class Tagged(Filter):
    """A filter whose own `apply` adds a column and says why in a `reason` column, as the
    HTML extractor does."""

    def score(self, batch):
        return pc.utf8_length(batch["text"])

    def keep(self, scores):
        return scores != 2

    def apply(self, batch):
        batch = batch.append_column("tag", pa.array(["t"] * batch.num_rows))
        keep = pa.array(self.keep(self.score(batch).to_numpy()))
        removed = batch.filter(pc.invert(keep))
        removed = removed.append_column("reason", pa.array(["two letters"] * removed.num_rows))
        return batch.filter(keep), removed, self.score(batch).to_numpy()


class Pieces(Splitter):
    """Splits a text into its words; an empty text becomes nothing."""

    def split(self, batch):
        texts = batch["text"].to_pylist()
        words = [t.split() for t in texts]
        counts = np.array([len(w) for w in words])
        flat = pa.array([w for ws in words for w in ws], pa.string())
        return self.children(batch, counts, {"text": flat}), counts


class Halves(Stage):
    """Not a filter, yet drops the rows of odd `_order`."""

    def process(self, batch):
        return batch.filter(pc.equal(pc.bit_wise_and(batch["_order"], 1), 0))


def _table(texts: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table({"id": [f"r{i}" for i in range(n)], "text": texts, "_order": list(range(n))})


def _removed(tables: list[pa.Table]) -> list[tuple]:
    rows = pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []
    return [(r["id"], r["removed_by"], r["reason"]) for r in rows]


def test_a_filter_hands_over_its_removed_rows_with_the_threshold_they_broke():
    removed: list[pa.Table] = []
    out, [record] = run_stage(MinLength(), _table(["hello", "hi", "yo!!", "x"]), removed=removed)
    assert out["id"].to_pylist() == ["r0", "r2"]
    assert _removed(removed) == [
        ("r1", "MinLength", "MinLength: score 2 < min_length 4"),
        ("r3", "MinLength", "MinLength: score 1 < min_length 4"),
    ]
    assert removed[0]["text"].to_pylist() == ["hi", "x"]  # the row as it was
    assert record["rows_in"] - record["rows_out"] == 2


def test_a_document_dropped_for_pii_is_kept_without_its_personal_data():
    from stages.text.pii import PiiModifier

    removed: list[pa.Table] = []
    texts = ["write to jane.doe@example.com today", "nothing personal here"]
    stage = PiiModifier(anonymize_action="drop")
    out, _ = run_stage(stage, _table(texts), removed=removed)
    assert out["id"].to_pylist() == ["r1"]
    [kept] = removed
    assert kept["id"].to_pylist() == ["r0"]
    assert "jane.doe@example.com" not in kept["text"][0].as_py()
    assert "<EMAIL_ADDRESS>" in kept["text"][0].as_py()
    assert kept["removed_by"].to_pylist() == ["PiiModifier"]


def test_without_a_removed_list_nothing_is_collected():
    out, [record] = run_stage(MinLength(), _table(["hello", "hi"]))
    assert out["id"].to_pylist() == ["r0"]
    assert record["removed_sample"][0]["id"] == "r1"  # the report's sample still is


def test_a_chain_attributes_each_row_to_the_first_filter_that_dropped_it():
    chain = FilterChain([MinLength(), NoDigits()], compact_below=1.0)
    chain.batch_size = 2  # slices: positions are per slice
    table = _table(["hello", "hi", "abc9", "hi5", "fine", "42"])
    removed: list[pa.Table] = []
    out, records = run_stage(chain, table, removed=removed)
    assert out["id"].to_pylist() == ["r0", "r4"]
    assert sorted(_removed(removed)) == [
        ("r1", "MinLength", "MinLength: score 2 < min_length 4"),
        ("r2", "NoDigits", "NoDigits: score 1"),
        ("r3", "MinLength", "MinLength: score 3 < min_length 4"),  # both would drop it
        ("r5", "MinLength", "MinLength: score 2 < min_length 4"),
    ]
    assert [(r["stage"], r["rows_in"] - r["rows_out"]) for r in records] == [
        ("MinLength", 3),
        ("NoDigits", 1),
    ]
    assert all("removed_rows" not in r and "removed_scores" not in r for r in records)
    assert not chain.track_removed  # the flow's chain is left as it was


def test_a_filter_of_its_own_apply_keeps_its_columns_and_its_reason():
    removed: list[pa.Table] = []
    out, _ = run_stage(Tagged(), _table(["hello", "hi"]), removed=removed)
    assert out.column_names == ["id", "text", "_order", "tag"]
    assert _removed(removed) == [("r1", "Tagged", "Tagged: two letters")]
    assert removed[0]["tag"].to_pylist() == ["t"]


def test_a_row_split_into_nothing_is_removed_by_the_splitter():
    removed: list[pa.Table] = []
    out, [record] = run_stage(Pieces(), _table(["a b", "", "c"]), removed=removed)
    assert out["text"].to_pylist() == ["a", "b", "c"]
    assert _removed(removed) == [("r1", "Pieces", "Pieces: split into no rows")]
    assert record["rows_added"] == 1


def test_rows_another_stage_leaves_out_are_found_by_their_order():
    removed: list[pa.Table] = []
    run_stage(Halves(), _table(["a", "b", "c", "d"]), removed=removed)
    assert _removed(removed) == [("r1", "Halves", "Halves"), ("r3", "Halves", "Halves")]


class Light(Stage):
    """Half a CPU: its own Ray operator, between a reading and a writing one."""

    resources = Resources(cpus=0.5)

    def process(self, batch):
        return batch


def _read(n: int) -> tuple[pa.Table, pa.Table]:
    quarantine = pa.table({"reason": pa.array([], pa.string())})
    return _table(["hello", "hi", "hey 3", "x"][: 2 + n % 3]), quarantine


def _sink(n, table, quarantine, metrics, removed):
    ids = removed["id"].to_pylist()
    return {"shard": n, "kept": table["id"].to_pylist(), "removed": ids, "metrics": metrics}


def _sink_without_removed(n, table, quarantine, metrics):
    return {"shard": n, "kept": table["id"].to_pylist(), "metrics": metrics}


def test_removed_rows_travel_between_ray_operators_to_the_sink(ray_cluster):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import it
    args = {"item_to_dict": lambda n: {"n": n}, "item_from_dict": lambda d: d["n"]}
    stages = [MinLength(), Light(), FilterChain([NoDigits()])]
    results = list(run_pipeline(list(range(6)), _read, stages, _sink, keep_removed=True, **args))
    assert sorted(r["shard"] for r in results) == list(range(6))
    for r in results:
        rows = 2 + r["shard"] % 3
        assert r["kept"] == ["r0"]
        assert sorted(r["removed"]) == [f"r{i}" for i in range(1, rows)]
    # The default: the sink is called as before, without removed rows.
    plain = list(run_pipeline(list(range(3)), _read, stages, _sink_without_removed, **args))
    assert sorted(r["shard"] for r in plain) == [0, 1, 2]
    report = RunReport()
    for r in plain:
        report.add_shard(r)
    assert report.removed_kept == 0 and report.stages["MinLength"].removed == 1 + 1 + 2
    assert report.stages["NoDigits"].removed == 0 + 1 + 1


# --------------------------------------------------------------------------- the text flow


def _input(raw) -> dict[str, str]:
    """Two input files (two shards), with rows each kind of stage removes; returns the id
    of each removed row -> the stage expected to remove it."""
    raw.mkdir()
    a = [{"id": f"a{i}", "text": DOCS[i]} for i in range(20)]
    a += [
        {"id": "a-short", "text": "Too short to keep."},
        {"id": "a-german", "text": GERMAN},
        {"id": "a-copy", "text": DOCS[4]},  # a copy of a4, in the same shard
    ]
    b = [{"id": f"b{i}", "text": DOCS[20 + i]} for i in range(20)]
    b += [
        {"id": "b-symbols", "text": "#### $$$ ### !!! ((( ))) " * 20},
        {"id": "b-short", "text": "Also far too short."},
        {"id": "b-copy", "text": DOCS[7]},  # a copy of a7, in the other shard
    ]
    lines_a = [json.dumps(r) for r in a]
    lines_b = [json.dumps(r) for r in b]
    lines_b.insert(3, '{"id": "broken", "text": "unterminated')  # quarantined
    (raw / "a.jsonl").write_text("\n".join(lines_a) + "\n")
    (raw / "b.jsonl").write_text("\n".join(lines_b) + "\n")
    return {
        "a-short": "WordCountFilter",
        "b-short": "WordCountFilter",
        "b-symbols": "",  # one of the heuristic filters
        "a-german": "LanguageFilter",
        "a-copy": "ExactDedup",
        "b-copy": "ExactDedup",
    }


def _removed_rows(output: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in removed_files(output)])


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory, ray_cluster):
    root = tmp_path_factory.mktemp("keep-removed")
    expected = _input(root / "raw")
    params = TextParams(input=str(root / "raw"), output=str(root / "out"), keep_removed=True)
    summary = run_text(params)
    return root, expected, summary, read_manifest(summary["output"])


def test_every_removed_row_is_kept_with_who_removed_it_and_why(kept_run):
    root, expected, summary, manifest = kept_run
    removed = _removed_rows(summary["output"])
    by = dict(zip(removed["id"].to_pylist(), removed["removed_by"].to_pylist(), strict=True))
    assert sorted(by) == sorted(expected)
    for row_id, stage in expected.items():
        assert by[row_id] == stage or (not stage and by[row_id].endswith("Filter")), row_id
    reasons = dict(zip(removed["id"].to_pylist(), removed["reason"].to_pylist(), strict=True))
    assert reasons["a-short"].startswith("WordCountFilter: score ")
    assert "< min_words 50" in reasons["a-short"]
    assert reasons["a-copy"] == "duplicate of a4"
    assert reasons["b-copy"] == "duplicate of a7"
    assert reasons["a-german"].startswith("LanguageFilter: score ")
    # The rows as they were: their own columns, no bookkeeping ones.
    texts = dict(zip(removed["id"].to_pylist(), removed["text"].to_pylist(), strict=True))
    assert texts["a-copy"] == DOCS[4] and texts["a-german"] == GERMAN
    assert {"id", "text", "source", "removed_by", "reason"} <= set(removed.column_names)
    assert not [c for c in removed.column_names if c.startswith("_")]
    written = {
        i for f in dataset_files(summary["output"]) for i in pq.read_table(f)["id"].to_pylist()
    }
    assert not written & set(by)


def test_the_manifest_and_the_report_list_each_shards_removed_rows(kept_run):
    root, expected, summary, manifest = kept_run
    assert [f["path"] for f in manifest["removed"]] == [
        "removed/part-00000-0000.parquet",
        "removed/part-00001-0000.parquet",
    ]
    assert manifest["removed_rows"] == len(expected) == summary["report"]["removed_kept"]
    assert summary["removed"] == summary["output"] + "/removed"
    report_md = (root / "out" / manifest["version"] / "report.md").read_text()
    assert f"- removed rows kept: {len(expected)} in `removed/`" in report_md
    assert not [f for f in manifest["files"] if f["path"].startswith("removed/")]


def test_written_plus_removed_plus_quarantined_rows_are_the_rows_read(kept_run):
    _, _, summary, manifest = kept_run
    report = summary["report"]
    kept = _removed_rows(summary["output"]).num_rows
    assert report["rows_written"] + kept + report["rows_quarantined"] == report["rows_read"]
    assert kept == report["rows_removed"] + report["duplicates_removed"]
    assert report["rows_quarantined"] == 1
    # Each stage's removed rows are the ones it counted.
    counted = Counter(_removed_rows(summary["output"])["removed_by"].to_pylist())
    stages = {s["stage"]: s["removed"] for s in report["stages"] if s["stage"] != "read"}
    assert counted == {name: n for name, n in stages.items() if n}


def test_without_the_flag_no_removed_rows_are_written(kept_run, tmp_path):
    root, _, _, _ = kept_run
    summary = run_text(TextParams(input=str(root / "raw"), output=str(tmp_path / "out")))
    manifest = read_manifest(summary["output"])
    assert manifest["removed"] == [] and manifest["removed_rows"] == 0
    assert removed_files(summary["output"]) == []
    assert not (tmp_path / "out" / manifest["version"] / "removed").exists()
    assert "removed" not in summary and summary["report"]["removed_kept"] == 0
    assert summary["report"]["rows_removed"] > 0


@pytest.mark.parametrize("dedup", ["exact", "none"])
def test_a_resumed_run_still_lists_every_shards_removed_rows(kept_run, tmp_path, dedup):
    root, expected, _, _ = kept_run
    if dedup == "none":
        expected = {k: v for k, v in expected.items() if v != "ExactDedup"}
    params = TextParams(
        input=str(root / "raw"),
        output=str(tmp_path / "out"),
        keep_removed=True,
        version="v1",
        dedup=dedup,
    )
    first = run_text(params)
    version = tmp_path / "out" / "v1"
    before = _removed_rows(first["output"]).sort_by("id").select(["id", "removed_by", "reason"])
    committed = (version / "removed" / "part-00000-0000.parquet").stat()
    # As if the run had stopped once shard 00000 was committed: no manifest, and of shard
    # 00001 only what a crash leaves (files without a marker).
    (version / "_manifest.json").unlink()
    (version / "_shards" / "00001-0000.json").unlink()
    (version / "removed" / "part-00001-0000.parquet").unlink()

    resumed = run_text(params)

    if dedup == "none":  # (a deduplicated run stages every shard again, then skips it)
        assert resumed["report"]["shards_skipped"] == 1
    again = (version / "removed" / "part-00000-0000.parquet").stat()
    assert (again.st_ino, again.st_mtime_ns) == (committed.st_ino, committed.st_mtime_ns)
    manifest = read_manifest(resumed["output"])
    assert sorted(f["shard"] for f in manifest["removed"]) == ["00000-0000", "00001-0000"]
    after = _removed_rows(resumed["output"]).sort_by("id").select(["id", "removed_by", "reason"])
    assert after.equals(before)
    assert sorted(after["id"].to_pylist()) == sorted(expected)
    assert manifest["removed_rows"] == len(expected) == resumed["report"]["removed_kept"]


def test_the_cli_option_writes_removed_rows_and_says_where(tmp_path):
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS[:5])]
    rows.append({"id": "short", "text": "Too short to keep."})
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
    env["CURATE_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
    args = ["text", "--input", "docs.jsonl", "--output", "out", "--keep-removed", "--no-dedup"]
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = read_manifest(str(tmp_path / "out"))
    assert f"removed:  {manifest['uri']}/removed (1 row)" in result.stdout
    assert manifest["parameters"]["keep_removed"] is True
    (removed,) = removed_files(str(tmp_path / "out"))
    assert pq.read_table(removed)["id"].to_pylist() == ["short"]
