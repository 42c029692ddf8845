"""Killing a run after some shards are committed, then re-running it, gives the same
output as an uninterrupted run: no lost and no duplicated rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from documents import english_documents

from stages.io.commit import dataset_files, read_manifest

SHARD_MB = 0.004  # ~4 KB shards: the input below makes ~100 of them


def _input(path: Path) -> Path:
    docs = english_documents(240, seed=7)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"copy{i}", "text": docs[i * 3]} for i in range(20)]  # exact duplicates
    rows += [{"id": f"junk{i}", "text": "buy now " * (i + 1)} for i in range(20)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _curate(input_path: Path, output: Path, tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
    env["CURATE_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "flows.cli", "text", "--input", str(input_path)]
    cmd += ["--output", str(output), "--version", "v1", "--shard-size-mb", str(SHARD_MB)]
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )


def _rows(output: Path) -> pa.Table:
    tables = [pq.read_table(f) for f in dataset_files(str(output))]
    return pa.concat_tables(tables).sort_by("id")


def _kill_when(proc: subprocess.Popen, markers: Path, count: int, timeout: float = 300) -> int:
    """SIGKILL the run (its whole process group) once `count` shard markers exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = len(list(markers.glob("*.json"))) if markers.exists() else 0
        if seen >= count:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return seen
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed:\n{proc.stdout.read()}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no shard was committed in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, pa.Table]:
    tmp = tmp_path_factory.mktemp("resume")
    source = _input(tmp / "docs.jsonl")
    output = tmp / "reference"
    proc = _curate(source, output, tmp)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return source, _rows(output)


@pytest.mark.parametrize("phase", ["filter", "write"])
def test_killed_run_resumes_to_the_same_output(uninterrupted, tmp_path, phase):
    source, reference = uninterrupted
    output = tmp_path / "out"
    markers = output / "v1" / "_work" / "staged" / "_shards"
    if phase == "write":
        markers = output / "v1" / "_shards"

    proc = _curate(source, output, tmp_path)
    killed_at = _kill_when(proc, markers, count=3)
    assert not (output / "v1" / "_manifest.json").exists(), "killed too late to test resume"
    assert killed_at >= 3

    proc = _curate(source, output, tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    resumed = _rows(output)
    assert resumed.num_rows == reference.num_rows
    assert len(set(resumed.column("id").to_pylist())) == resumed.num_rows
    assert resumed.equals(reference)
    manifest = read_manifest(str(output))
    assert manifest["rows"] == reference.num_rows
    assert not (output / "v1" / "_work").exists()


def test_a_resume_with_other_shard_ranges_reruns_the_shards_whose_range_changed(tmp_path):
    """A large file's ranges depend on the number of workers: committed shards whose range
    the new plan does not have are run again, not taken for the new ones."""
    from flows.runtime.builder import _still_done
    from stages.io.commit import VersionWriter
    from stages.io.shards import Shard

    writer = VersionWriter(str(tmp_path / "out"), "v1")
    old = [Shard("big.jsonl", 0, part=k, start=k * 100, end=k * 100 + 100) for k in range(3)]
    for shard in old:
        writer.commit_shard(shard.key, [], {"range": [shard.start, shard.end]})
    writer.commit_shard("00001-0000", [], {})  # a whole file, from before ranges were kept
    new = [Shard("big.jsonl", 0, part=k, start=k * 150, end=k * 150 + 150) for k in range(2)]
    new += [Shard("small.jsonl", 1)]
    new[0] = Shard("big.jsonl", 0, part=0, start=0, end=100)  # unchanged
    done = _still_done(writer, new)
    assert sorted(done) == ["00000-0000", "00001-0000"]
    assert sorted(writer.done_shards()) == ["00000-0000", "00001-0000"]
