"""The `curate` command: clear one-line failures, and the demo the README promises."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from stages.io.commit import read_manifest


def _curate(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(cwd / "prefect-home")
    # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
    env["CURATE_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_input_exits_non_zero_with_one_line_naming_it(tmp_path):
    result = _curate("text", "--input", "nowhere/*.jsonl", "--output", "out", cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("curate: error:")]
    assert len(lines) == 1, result.stderr
    assert "nowhere" in lines[0]
    assert "Traceback" not in result.stderr


def test_demo_writes_parquet_and_a_manifest_and_says_where(tmp_path):
    result = _curate("demo", "--output", "demo-output", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = read_manifest(str(tmp_path / "demo-output"))
    assert manifest["files"] and all(f["path"].endswith(".parquet") for f in manifest["files"])
    assert 0 < manifest["rows"]
    assert f"manifest: {manifest['uri']}/_manifest.json" in result.stdout
    assert "report:" in result.stdout
    stages = {s["stage"]: s for s in manifest["extra"]["stages"]}
    assert stages["ExactDedup"]["removed"] > 0  # the sample has planted duplicates
    assert manifest["quarantined_rows"] >= 0
    assert any(s["removed"] > 0 for name, s in stages.items() if name.endswith("Filter"))
    # Without -v, neither Ray's C++ core nor its Python logs reach the terminal.
    leaked = [line for line in result.stderr.splitlines() if line.startswith("[20")]
    assert leaked == [], leaked
    assert "logging.cc" not in result.stderr and "core_worker" not in result.stderr


def test_a_one_shard_run_goes_through_prefect_without_ray(tmp_path):
    """The short run a user tries first: Prefect's embedded API starts before the flow's
    modules load, and one shard runs in the driver, without Ray's start-up."""
    import json

    from tests.documents import english_documents

    docs = tmp_path / "docs.jsonl"
    texts = english_documents(20)
    texts += texts[:3]
    lines = [json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)]
    docs.write_text("".join(lines))
    result = _curate("text", "--input", str(docs), "--output", "out", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    report = summary["report"]
    assert report["rows_read"] == 23 and report["unaccounted"] == 0
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["ExactDedup"]["removed"] == 3
    assert {node for s in report["stages"] for node in s["nodes"]} == {"local"}
    phases = report["phases"]  # the fixed costs, apart from the work per row
    assert phases["ray-start"] == 0 and phases["process-shards"] > 0
    assert set(phases) == {"plan-shards", "process-shards", "find-duplicates"} | {
        "write-shards",
        "ray-start",
    }
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest["flow_run_id"]  # the run is Prefect's, on the API started first


def test_the_early_api_start_knows_every_flow_command():
    from flows.cli import FLOW_COMMANDS
    from flows.runtime.builder import registered

    assert set(FLOW_COMMANDS) == {"demo", *registered()}
