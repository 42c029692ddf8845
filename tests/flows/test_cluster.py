"""The text flow on a real two-node Ray cluster: `ray start --head` and a second
`ray start --address=...` on this machine, each node with one CPU, the flow run by the CLI
in its own process with `RAY_ADDRESS` set (as on a KubeRay cluster).

The session's local cluster (the `ray_cluster` fixture) is not used: the cluster, the flow
and the probe of the cluster all run in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from documents import english_documents

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))

# Waits until the cluster has `n` alive nodes, then prints {node id: custom resources}.
_PROBE = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.time() + 90
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= int(sys.argv[2]) or time.time() > deadline:
        break
    time.sleep(0.5)
print(json.dumps({n["NodeID"]: sorted(n["Resources"]) for n in alive}))
"""


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_ports() -> list[str]:
    """Ports that default to fixed numbers, chosen free, so that two nodes on one host (and
    other Ray clusters on it) do not collide."""
    agent, grpc, runtime_env, metrics = _free_ports(4)
    return [
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}",
    ]


def _descendants(pids: list[int]) -> list[int]:
    """Every process below `pids` (Ray workers start their own sessions, so killing the
    `ray start` process groups alone can leave them behind)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _stop(procs: list[subprocess.Popen]) -> None:
    workers = _descendants([p.pid for p in procs])
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head node (resource `node_a`) and a worker node (resource `node_b`), one CPU each;
    yields (address, {node id: resource names})."""
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
    }
    env.pop("RAY_ADDRESS", None)
    # Short: Ray's Unix socket paths live under the temp dir and must fit in 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="curate-ray-")
    (port,) = _free_ports(1)
    address = f"127.0.0.1:{port}"
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    common += ["--object-store-memory=100000000"]
    procs: list[subprocess.Popen] = []
    try:
        head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false"]
        head += [f"--temp-dir={temp_dir}", '--resources={"node_a": 1}']
        with open(tmp_path / "head.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    head + common + _node_ports(),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        _probe(address, 1, env, procs, tmp_path)
        # The second node joins through the head's GCS and shares its session directory.
        worker = [RAY, "start", f"--address={address}", '--resources={"node_b": 1}']
        with open(tmp_path / "worker.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    worker + common + _node_ports(),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        nodes = _probe(address, 2, env, procs, tmp_path)
        assert len(nodes) == 2, f"cluster did not reach two nodes: {nodes}"
        yield address, nodes
    finally:
        _stop(procs)


def _probe(
    address: str, n: int, env: dict, procs: list[subprocess.Popen], logs: Path
) -> dict[str, list[str]]:
    """Wait for `n` alive nodes; fail at once, with the node's log, if a node exits."""
    probe = subprocess.Popen(
        [sys.executable, "-c", _PROBE, address, str(n)],
        env={**env, "RAY_ADDRESS": address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 150
    while probe.poll() is None:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.time() > deadline:
            probe.kill()
            probe.wait()
            tails = {f.name: f.read_text()[-2000:] for f in sorted(logs.glob("*.log"))}
            pytest.fail(f"Ray node exited or cluster not up in time: {tails}")
        time.sleep(0.5)
    out, err = probe.communicate()
    assert probe.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _write_inputs(folder: Path) -> int:
    """Four JSONL files of 30 distinct English documents each (~15-20 KB per file)."""
    folder.mkdir()
    docs = english_documents(120, seed=3)
    for f in range(4):
        rows = [{"id": f"d{f}-{i}", "text": t} for i, t in enumerate(docs[f * 30 : (f + 1) * 30])]
        (folder / f"part{f}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(docs)


def test_text_flow_on_two_nodes_runs_stages_on_both(tmp_path, two_node_cluster):
    address, nodes = two_node_cluster
    node_a = next(n for n, res in nodes.items() if "node_a" in res)
    node_b = next(n for n, res in nodes.items() if "node_b" in res)
    assert node_a != node_b

    rows = _write_inputs(tmp_path / "in")
    output = tmp_path / "out"
    env = {
        **os.environ,
        "RAY_ADDRESS": address,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "text", "--input", str(tmp_path / "in")]
        + ["--output", str(output), "--shard-size-mb", "0.01", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    manifest = json.loads(Path(summary["manifest"]).read_text())

    assert manifest["rows"] == rows
    assert len(manifest["shards"]) >= 4  # enough shards for both nodes to get work
    used = {node for stage in manifest["extra"]["stages"] for node in stage.get("nodes", [])}
    assert used == {node_a, node_b}
