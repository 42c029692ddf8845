"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM stop a
run at a safe point: the shards committed so far stay committed, nothing is published, the
CLI says so in one line and exits 128 + the signal number; re-running the same command
resumes. A second Ctrl-C exits at once."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from documents import english_documents

from flows.runtime import signals
from stages.io.commit import dataset_files, read_manifest

SHARD_MB = 0.004  # ~4 KB shards: the input below makes ~40 of them
ROWS = 280


def _input(path: Path) -> Path:
    docs = english_documents(240, seed=7)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"copy{i}", "text": docs[i * 3]} for i in range(20)]  # exact duplicates
    rows += [{"id": f"junk{i}", "text": "buy now " * (i + 1)} for i in range(20)]
    assert len(rows) == ROWS
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


class Run:
    """`curate text` in a session of its own (so a signal to its group reaches only it and
    what it started), with its own Prefect home and Ray folder."""

    def __init__(self, source: Path, output: Path, home: Path, *extra: str):
        self.home = home
        self.ray_dir = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
        env = dict(os.environ)
        env["PREFECT_HOME"] = str(home)
        # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
        env["CURATE_RAY_TMPDIR"] = self.ray_dir
        env.pop("PREFECT_API_URL", None)
        cmd = [sys.executable, "-m", "flows.cli", "text", "--input", str(source)]
        cmd += ["--output", str(output), "--version", "v1", "--shard-size-mb", str(SHARD_MB)]
        self.proc = subprocess.Popen(
            [*cmd, *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )

    def signal_when(self, markers: Path, count: int, *signums: int, timeout: float = 300):
        """Send `signums` to the run's process group once `count` shard markers exist."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if markers.exists() and len(list(markers.glob("*.json"))) >= count:
                for signum in signums:
                    os.killpg(self.proc.pid, signum)
                    time.sleep(0.1)
                return time.monotonic()
            if self.proc.poll() is not None:
                pytest.fail(f"run ended before the signal:\n{self.output()}")
            time.sleep(0.02)
        self.kill()
        pytest.fail("no shard was committed in time")

    def wait(self, timeout: float) -> str:
        """The run's stdout and stderr, once it ended (within `timeout` seconds)."""
        try:
            self.stdout, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the run did not end within {timeout} s:\n{self.output()}")
        return self.stdout + err

    def output(self) -> str:
        out, err = self.proc.communicate()
        return out + err

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def leftovers(self) -> list[str]:
        """Processes the run started that are still alive: Ray's and Prefect's server."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:  # ended meanwhile, or not ours
                continue
            text = (cmdline + environ).decode(errors="replace")
            if self.ray_dir in text or str(self.home) in text:
                found.append(f"{pid} {cmdline.decode(errors='replace')[:120]}")
        return found

    def flow_run_states(self) -> list[str]:
        with sqlite3.connect(self.home / "prefect.db") as db:
            return [row[0] for row in db.execute("select state_type from flow_run")]


def _gone(run: Run, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := run.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _rows(output: Path) -> pa.Table:
    tables = [pq.read_table(f) for f in dataset_files(str(output))]
    return pa.concat_tables(tables).sort_by("id")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_keeping_committed_shards_and_a_rerun_resumes(tmp_path, signum):
    source = _input(tmp_path / "docs.jsonl")
    output = tmp_path / "out"
    markers = output / "v1" / "_work" / "staged" / "_shards"  # the process pass's

    run = Run(source, output, tmp_path / "prefect-home")
    sent = run.signal_when(markers, 2, signum)
    out = run.wait(timeout=60)
    print(f"stopped {time.monotonic() - sent:.1f} s after the signal")

    assert run.proc.returncode == 128 + signum, out
    lines = [line for line in out.splitlines() if line.startswith("curate:")]
    assert len(lines) == 1, out
    name = signal.Signals(signum).name
    said = re.search(rf"stopped by {name}: (\d+) of (\d+) shards committed", lines[0])
    assert said, lines[0]
    assert "run the same command again to resume" in lines[0]
    committed = int(said.group(1))
    assert committed >= 2
    assert committed == len(list(markers.glob("*.json")))  # no shard committed after the line
    assert "EventsWorker failed" not in out
    assert "Traceback" not in out
    assert not (output / "v1" / "_manifest.json").exists()
    assert run.flow_run_states() == ["CANCELLED"]
    assert not _gone(run), "Ray or the Prefect server outlived the run"

    rerun = Run(source, output, tmp_path / "prefect-home", "--json")
    out = rerun.wait(timeout=600)
    assert rerun.proc.returncode == 0, out
    summary = json.loads(rerun.stdout)
    resumed = _rows(output)
    ids = resumed.column("id").to_pylist()
    assert len(set(ids)) == len(ids)  # no shard written twice
    assert summary["report"]["rows_read"] == ROWS  # every input row read once over both runs
    assert summary["report"]["rows_written"] == resumed.num_rows
    assert read_manifest(str(output))["rows"] == resumed.num_rows
    assert not (output / "v1" / "_work").exists()


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    source = _input(tmp_path / "docs.jsonl")
    output = tmp_path / "out"
    markers = output / "v1" / "_work" / "staged" / "_shards"

    run = Run(source, output, tmp_path / "prefect-home")
    sent = run.signal_when(markers, 2, signal.SIGINT, signal.SIGINT)
    out = run.wait(timeout=10)
    print(f"exited {time.monotonic() - sent:.1f} s after the second signal")

    assert run.proc.returncode == 130, out
    assert "stopped at once" in out
    assert "Traceback" not in out
    assert not (output / "v1" / "_manifest.json").exists()
    assert not _gone(run), "Ray or the Prefect server outlived the run"


def test_a_stop_while_waiting_for_shards_raises_at_once_elsewhere_at_the_next_check(
    monkeypatch,
):
    monkeypatch.setattr(signals, "_stop", None)
    previous = signal.signal(signal.SIGINT, signals.request_stop)
    try:
        with pytest.raises(signals.RunStopped) as stopped:
            with signals.waiting_for_shards():
                signal.raise_signal(signal.SIGINT)
                pytest.fail("not stopped while waiting")
        assert stopped.value.exit_code == 130
        monkeypatch.setattr(signals, "_stop", None)

        signal.raise_signal(signal.SIGINT)  # not waiting: only asks for a stop
        assert signals.stop_requested() == signal.SIGINT
        with pytest.raises(signals.RunStopped):
            signals.raise_if_stopped("process", 3, 40)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_while_the_dedup_step_waits_for_ray_raises_at_once(monkeypatch, ray_cluster):
    import threading

    import ray

    from flows.steps.dedup import gather

    @ray.remote(num_cpus=0)
    def slow() -> int:
        time.sleep(60)
        return 1

    monkeypatch.setattr(signals, "_stop", None)
    previous = signal.signal(signal.SIGINT, signals.request_stop)
    ref = slow.remote()
    timer = threading.Timer(2, signal.raise_signal, (signal.SIGINT,))
    try:
        start = time.monotonic()
        timer.start()
        with pytest.raises(signals.RunStopped):
            gather([ref])
        assert time.monotonic() - start < 20, "the step ran on after the stop"
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        ray.cancel(ref, force=True)


def test_the_stop_line_says_what_is_committed_and_how_to_resume():
    stop = signals.RunStopped(signal.SIGTERM, "write", 7, 40)
    assert stop.exit_code == 143
    assert str(stop) == (
        "curate: stopped by SIGTERM: 7 of 40 shards committed (write pass); "
        "run the same command again to resume"
    )
    before_commit = signals.RunStopped(signal.SIGINT, "commit", 40, 40)
    assert "all 40 shards committed, not published" in str(before_commit)
    finding = signals.RunStopped(signal.SIGINT, "find-duplicates", 40, 40)
    assert "all 40 shards processed, duplicates not yet found" in str(finding)
