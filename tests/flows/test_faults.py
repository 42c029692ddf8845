"""Faults on purpose (issue 8): each fault is a test, and the output of a run that met it
equals an uninterrupted run's, row for row.

- a Ray worker process of the run is SIGKILLed mid-run;
- the worker node of a two-node Ray cluster is SIGKILLed mid-run;
- the S3 endpoint answers 503 SlowDown to some requests and stalls others (a faulty
  proxy in front of moto); then it goes down for good;
- the `curate serve` process of a real Prefect server's deployment is SIGKILLed while its
  flow run runs; the server marks the run CRASHED and a new run resumes.

Every run is the CLI (or `curate serve`) in its own process, as users run it; each fault
test is slow (tens of seconds: a whole run and more) and bounded by timeouts; every process
it starts is killed, with all its descendants, in a `finally`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from documents import english_documents
from test_deployments import prefect_server  # noqa: F401  (a fixture, asked for by name)

from stages.io.commit import dataset_files, read_manifest
from stages.io.fs import read_parquet

ROOT = Path(__file__).resolve().parents[2]
SHARD_MB = 0.004  # ~4 KB shards: the input below makes 40 of them
VERSION = "v1"


# --------------------------------------------------------------------------- runs


def _write_documents(path: Path) -> Path:
    """test_resume's input: 240 documents, 20 exact copies, 20 junk lines."""
    docs = english_documents(240, seed=7)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"copy{i}", "text": docs[i * 3]} for i in range(20)]
    rows += [{"id": f"junk{i}", "text": "buy now " * (i + 1)} for i in range(20)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PYTHONPATH=str(ROOT),
        # The embedded Prefect API starts slowly on a busy machine (default: 20 s).
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
        CURATE_RAY_TMPDIR=tempfile.mkdtemp(prefix="f", dir=os.environ["CURATE_RAY_TMPDIR"]),
    )
    env.update(extra)
    return env


def _curate(
    source: str, output: str, env: dict[str, str], log: Path, shard_mb: float = SHARD_MB
) -> subprocess.Popen:
    """`curate text` in its own process group, its output to `log`."""
    cmd = [sys.executable, "-m", "flows.cli", "text", "--input", source, "--output", output]
    cmd += ["--version", VERSION, "--shard-size-mb", str(shard_mb)]
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _finish(proc: subprocess.Popen, log: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        pytest.fail(f"run did not finish in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _no_ray_lines(log: Path) -> None:
    """Without -v, the failures Ray recovers from stay out of the terminal."""
    text = log.read_text()
    leaked = [
        line for line in text.splitlines() if "(raylet)" in line or "Dataset execution" in line
    ]
    assert not leaked, text[-3000:]


def _rows(output: str) -> pa.Table:
    """The committed rows of a dataset (local or s3://), sorted by id."""
    tables = [read_parquet(uri) for uri in dataset_files(output)]
    return pa.concat_tables(tables).sort_by("id")


def _with_source(table: pa.Table, source: str) -> pa.Table:
    """`table` with its `source` column (where each row was read from) set to `source`."""
    index = table.column_names.index("source")
    return table.set_column(index, "source", pa.array([source] * table.num_rows, pa.string()))


def _markers(output: Path) -> int:
    """Shards committed so far, by either pass (the staged pass, then the write pass)."""
    staged = output / VERSION / "_work" / "staged" / "_shards"
    return _count(staged) + _count(output / VERSION / "_shards")


def _count(folder: Path) -> int:
    """Shard markers in `folder` (the commit removes the staged ones: none then)."""
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(".json"))
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pa.Table]:
    """The input and the rows of an uninterrupted run over it."""
    tmp = tmp_path_factory.mktemp("faults")
    source = _write_documents(tmp / "docs.jsonl")
    log = tmp / "reference.log"
    proc = _curate(str(source), str(tmp / "reference"), _env(tmp), log)
    try:
        assert _finish(proc, log, 300) == 0, log.read_text()[-3000:]
    finally:
        _kill_tree(proc)
    return source, _rows(str(tmp / "reference"))


# --------------------------------------------------------------------------- processes


def _tree(pid: int) -> list[int]:
    """Every process below `pid` (Ray workers start sessions of their own, so a process
    group does not hold them)."""
    from test_cluster import _descendants

    return _descendants([pid])


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process started in its own session, its group and every descendant."""
    below = _tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def _wait_for(check, timeout: float, what: str, log: Path, every: float = 0.1):
    """`check()`'s first true value, asked every `every` seconds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


# --------------------------------------------------------------------------- a Ray worker


def _busy_worker(proc: subprocess.Popen) -> int | None:
    """A Ray worker of the run running a shard: `ray::ShardWorker.run` (an actor of a
    one-operator pass at work), `ray::run_shard` (a task of the write pass), or Ray Data's
    `ray::MapWorker(...).submit` and `ray::Map(...)` (a pass of several operators)."""
    workers = [(pid, _title(pid)) for pid in _tree(proc.pid)]
    busy = [pid for pid, title in workers if title.startswith("ray::ShardWorker.run")]
    busy += [
        pid for pid, title in workers if title.startswith("ray::MapWorker") and ".submit" in title
    ]
    busy += [pid for pid, title in workers if title.startswith(("ray::run_shard", "ray::Map("))]
    return busy[0] if busy else None


def test_a_killed_ray_worker_is_replaced_and_the_output_is_unchanged(reference, tmp_path):
    """Slow (a whole run): SIGKILL one Ray worker process once two shards are committed."""
    source, expected = reference
    output = tmp_path / "out"
    log = tmp_path / "run.log"
    proc = _curate(str(source), str(output), _env(tmp_path), log)
    try:

        def ready():
            if proc.poll() is not None:
                pytest.fail(f"run ended before a worker was killed:\n{log.read_text()[-3000:]}")
            return _markers(output) >= 2 and _busy_worker(proc)

        victim = _wait_for(ready, 240, "two committed shards and a busy Ray worker", log)
        title = _title(victim)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: not _alive(victim), 10, f"{title} to die", log)
        assert not (output / VERSION / "_manifest.json").exists(), "killed after the commit"

        assert _finish(proc, log, 300) == 0, f"killed {title}:\n{log.read_text()[-3000:]}"
    finally:
        _kill_tree(proc)
    _no_ray_lines(log)
    assert _rows(str(output)).equals(expected)
    assert read_manifest(str(output))["rows"] == expected.num_rows


# --------------------------------------------------------------------------- a Ray node


@pytest.fixture
def two_nodes(tmp_path):
    """test_cluster's two-node cluster (a head and a worker node, one CPU each, on this
    machine); yields (address, the head's `ray start` process, the worker node's)."""
    from test_cluster import RAY, _free_ports, _node_ports, _probe

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="curate-ray-")  # short: Unix socket paths
    (port,) = _free_ports(1)
    address = f"127.0.0.1:{port}"
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    common += ["--object-store-memory=100000000"]
    head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false"]
    head += [f"--temp-dir={temp_dir}"]
    worker = [RAY, "start", f"--address={address}"]
    procs: list[subprocess.Popen] = []
    try:
        for name, cmd in (("head", head), ("worker", worker)):
            with open(tmp_path / f"{name}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        cmd + common + _node_ports(),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            _probe(address, len(procs), env, procs, tmp_path)
        yield address, procs[0], procs[1]
    finally:
        for proc in reversed(procs):
            _kill_tree(proc)


def test_a_killed_worker_node_leaves_the_run_to_the_head_node_with_the_same_output(
    reference, two_nodes, tmp_path
):
    """Slow (a cluster start and a whole run): SIGKILL the worker node's `ray start` group
    and every process below it (raylet, workers) once two shards are committed and one of
    its workers runs a shard."""
    address, _, node = two_nodes
    source, expected = reference
    output = tmp_path / "out"
    log = tmp_path / "run.log"
    env = _env(tmp_path, RAY_ADDRESS=address)
    proc = _curate(str(source), str(output), env, log)
    try:

        def ready():
            if proc.poll() is not None:
                pytest.fail(f"run ended before the node was killed:\n{log.read_text()[-3000:]}")
            return _markers(output) >= 2 and _busy_worker(node)

        _wait_for(ready, 240, "two committed shards and a busy worker on the worker node", log)
        _kill_tree(node)
        assert not (output / VERSION / "_manifest.json").exists(), "killed after the commit"
        code = _finish(proc, log, 300)
    finally:
        _kill_tree(proc)
    assert code == 0, log.read_text()[-3000:]
    _no_ray_lines(log)
    assert _rows(str(output)).equals(expected)


# --------------------------------------------------------------------------- a faulty S3

_ERRORS = {  # S3's own 503 answers: throttling, and an endpoint that is down
    "fail": ("Slow Down", b"SlowDown", b"Please reduce your request rate."),
    "down": ("Service Unavailable", b"ServiceUnavailable", b"Service is unable to handle request."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "expect"}


class FaultyS3:
    """An HTTP proxy on 127.0.0.1 in front of an S3 endpoint, failing on purpose and
    deterministically by request number n (from 1): n % fail_every == 0 gets a
    503 SlowDown, n % stall_every == 0 waits `stall` seconds before it is forwarded, and
    every request after `down_after` gets a 503 ServiceUnavailable (the endpoint is down)."""

    def __init__(
        self,
        upstream: str,
        fail_every: int = 0,
        stall_every: int = 0,
        stall: float = 0.0,
        down_after: int | None = None,
    ):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fail_every, self.stall_every, self.stall = fail_every, stall_every, stall
        self.down_after = down_after
        self.requests = self.failed = self.stalled = 0
        self.down_since: float | None = None  # time.monotonic() of the first "down"
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultyS3:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(self) -> str:
        """What happens to the next request: "fail" (503 SlowDown), "down" (503
        ServiceUnavailable), "stall" or "" (forwarded)."""
        with self._lock:
            self.requests += 1
            n = self.requests
            if self.down_after is not None and n > self.down_after:
                self.failed += 1
                self.down_since = self.down_since or time.monotonic()
                return "down"
            if self.fail_every and n % self.fail_every == 0:
                self.failed += 1
                return "fail"
            if self.stall_every and n % self.stall_every == 0:
                self.stalled += 1
                return "stall"
            return ""


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        proxy: FaultyS3 = self.server.proxy
        body = self._body()
        fault = proxy.fault()
        if fault in _ERRORS:
            reason, code, message = _ERRORS[fault]
            error = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>' % code
            error += b"<Message>%s</Message></Error>" % message
            self.send_response_only(503, reason)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(error)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(error)
            return
        if fault == "stall":
            time.sleep(proxy.stall)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        length = response.getheader("Content-Length", "0") if self.command == "HEAD" else len(data)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


S3_SHARD_MB = 0.02  # 8 shards: each S3 run makes ~450 requests


@pytest.fixture
def s3_input(reference, s3_bucket) -> str:
    """The reference input, uploaded to the moto endpoint directly (not through a proxy)."""
    import s3fs

    source, _ = reference
    s3fs.S3FileSystem(use_listings_cache=False).put(str(source), f"{s3_bucket}/raw/docs.jsonl")
    return f"s3://{s3_bucket}/raw/docs.jsonl"


def test_s3_errors_and_stalls_slow_the_run_but_do_not_change_its_output(
    reference, s3_endpoint, s3_bucket, s3_input, tmp_path
):
    """Slow (a run with ~50 retried requests and ~17 stalls): every 10th request gets a
    503 SlowDown and every 15th (but not 10th) waits 1 s; botocore and s3fs retry with
    their defaults."""
    source, expected = reference
    output = f"s3://{s3_bucket}/out"
    log = tmp_path / "run.log"
    with FaultyS3(s3_endpoint, fail_every=10, stall_every=15, stall=1.0) as proxy:
        env = _env(tmp_path, AWS_ENDPOINT_URL=proxy.url)
        proc = _curate(s3_input, output, env, log, shard_mb=S3_SHARD_MB)
        try:
            assert _finish(proc, log, 300) == 0, log.read_text()[-3000:]
        finally:
            _kill_tree(proc)
    assert proxy.failed >= 10 and proxy.stalled >= 10, vars(proxy)
    rows = _rows(output)
    assert set(rows.column("source").to_pylist()) == {s3_input}
    assert _with_source(rows, str(source)).equals(expected)  # 8 shards here, 40 there


def test_an_s3_outage_fails_the_run_in_one_line_and_publishes_nothing(
    reference, s3_endpoint, s3_bucket, s3_input, tmp_path
):
    """Slow (a run until the outage, then the retries): from the 61st request on, every
    request gets a 503 ServiceUnavailable; the default retries (botocore's 5 attempts per
    request, the flow steps' 2 retries) give up within a bounded time."""
    output = f"s3://{s3_bucket}/out"
    log = tmp_path / "run.log"
    with FaultyS3(s3_endpoint, down_after=60) as proxy:
        proc = _curate(
            s3_input, output, _env(tmp_path, AWS_ENDPOINT_URL=proxy.url), log, S3_SHARD_MB
        )
        try:
            code = _finish(proc, log, 300)
        finally:
            _kill_tree(proc)
        assert proxy.down_since is not None, "the run made fewer than 60 requests"
        down_for = time.monotonic() - proxy.down_since
    text = log.read_text()
    assert code == 1, text[-3000:]
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("curate: error:")]
    assert errors == [lines[-1]], text[-3000:]
    assert re.search(r"when calling the \w+ operation|127\.0\.0\.1", errors[0]), errors[0]
    assert "Traceback" not in text and "Unhandled error" not in text, text[-3000:]
    _no_ray_lines(log)
    assert down_for < 150, f"{down_for:.0f} s from the outage to the exit"

    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)  # straight to moto, not the proxy
    assert not fs.exists(f"{s3_bucket}/out/{VERSION}/_manifest.json")
    assert not fs.exists(f"{s3_bucket}/out/_latest")


# --------------------------------------------------------------------------- the flow process

HEARTBEAT_S = 30  # Prefect's shortest flow run heartbeat
ZOMBIE_AFTER_S = 60  # no heartbeat for this long: the run is marked CRASHED


def _api(client, method: str, url: str, **kwargs):
    """One API call, retried while SQLite answers "busy" (503), as Prefect's client does."""
    for _ in range(20):
        response = client.request(method, url, **kwargs)
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    return response


def _crash_zombies(client) -> None:
    """The automation Prefect documents for self-hosted servers ("detect zombie flows"):
    a flow run whose heartbeats stop for ZOMBIE_AFTER_S seconds is marked CRASHED."""
    events = ["prefect.flow-run.heartbeat"]
    events += [f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed")]
    automation = {
        "name": "crash zombie flow runs",
        "trigger": {
            "type": "event",
            "posture": "Proactive",
            "after": ["prefect.flow-run.heartbeat"],
            "expect": events,
            "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
            "for_each": ["prefect.resource.id"],
            "threshold": 1,
            "within": ZOMBIE_AFTER_S,
        },
        "actions": [
            {"type": "change-flow-run-state", "state": "CRASHED", "message": "no heartbeat"}
        ],
    }
    response = _api(client, "POST", "/automations/", json=automation)
    assert response.status_code in (200, 201), response.text


def _serve(api: str, tmp: Path, log: Path) -> subprocess.Popen:
    """`curate serve` against the server at `api`, in its own process group."""
    env = _env(tmp, PREFECT_API_URL=api, PREFECT_RUNNER_POLL_FREQUENCY="2")
    env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(HEARTBEAT_S)
    for key in [k for k in env if k.startswith(("CURATE_TEXT_", "CURATE_DEDUP_"))]:
        env.pop(key)
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _run_of_deployment(client, serve: subprocess.Popen, log: Path, parameters: dict) -> str:
    """Wait for `curate serve` to register the text deployment; start a run of it."""

    def deployment():
        if serve.poll() is not None:
            pytest.fail(f"curate serve exited:\n{log.read_text()[-3000:]}")
        response = _api(client, "GET", "/deployments/name/curate-text/nightly")
        return response.json()["id"] if response.status_code == 200 else None

    deployment_id = _wait_for(deployment, 120, "the served deployment", log, every=1)
    body = {"parameters": {"params": parameters}}
    response = _api(client, "POST", f"/deployments/{deployment_id}/create_flow_run", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def _state(client, run_id: str) -> str:
    return _api(client, "GET", f"/flow_runs/{run_id}").json()["state"]["type"]


def test_a_killed_flow_process_is_marked_crashed_and_a_new_run_resumes(
    reference, request, tmp_path
):
    """Slow (a server, two `curate serve`s, a run and a half, a heartbeat timeout):
    SIGKILL the `curate serve` process group, and everything below it, while its flow run
    writes shards; the server marks the run CRASHED when its heartbeats stop (an
    automation), and a run of the same parameters from a new `curate serve` resumes: the
    shards committed before the kill are kept as they are."""
    import httpx

    api, _ = request.getfixturevalue("prefect_server")  # a real `prefect server start`
    source, expected = reference
    output = tmp_path / "out"
    parameters = {"input": str(source), "output": str(output), "shard_size_mb": SHARD_MB}
    parameters["version"] = VERSION
    client = httpx.Client(base_url=api, timeout=30)
    _crash_zombies(client)
    committed = output / VERSION / "_shards"  # the write pass's markers: kept by the commit

    first_log, second_log = tmp_path / "serve-1.log", tmp_path / "serve-2.log"
    serve = _serve(api, tmp_path / "one", first_log)
    second = None
    try:
        killed_run = _run_of_deployment(client, serve, first_log, parameters)

        def writing():
            if _state(client, killed_run) in _FINAL:
                pytest.fail(f"run ended before the kill:\n{first_log.read_text()[-3000:]}")
            # One marker is enough: the write pass of 40 small shards on a pool of Ray
            # workers takes a few seconds, so waiting for more risks killing after the commit.
            return _count(committed) >= 1

        _wait_for(writing, 240, "a shard written by the flow run", first_log, every=0.1)
        below = _tree(serve.pid)
        _kill_tree(serve)
        _wait_for(lambda: not any(map(_alive, below)), 15, "the flow run's processes", first_log)
        assert not (output / VERSION / "_manifest.json").exists(), "killed after the commit"
        kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in committed.glob("*.json")}
        assert _state(client, killed_run) == "RUNNING"  # nothing told the server yet

        # A new `curate serve` and a run of the same parameters, while the server waits
        # for the killed run's next heartbeat.
        second = _serve(api, tmp_path / "two", second_log)
        new_run = _run_of_deployment(client, second, second_log, parameters)

        def crashed():
            return _state(client, killed_run) == "CRASHED"

        limit = ZOMBIE_AFTER_S + HEARTBEAT_S + 60
        _wait_for(crashed, limit, "the CRASHED state", first_log, every=1)

        def finished():
            state = _state(client, new_run)
            return state if state in _FINAL else None

        state = _wait_for(finished, 300, "the new run", second_log, every=1)
        assert state == "COMPLETED", second_log.read_text()[-3000:]
    finally:
        _kill_tree(serve)
        if second is not None:
            _kill_tree(second)

    manifest = read_manifest(str(output))
    assert manifest["flow_run_id"] == new_run
    for name, (inode, mtime) in kept.items():  # committed before the kill, not written again
        marker = (committed / name).stat()
        assert (marker.st_ino, marker.st_mtime_ns) == (inode, mtime), name
    assert _rows(str(output)).equals(expected)


_FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
