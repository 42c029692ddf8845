"""Deployments: nightly schedules from one registry, prefect.yaml in step with it, `curate
run` parameters, and a real Prefect server running a served flow triggered over REST."""

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
import yaml
from documents import english_documents

from flows import deploy
from flows.cli import main
from flows.deploy import DEPLOYMENTS, DeploymentSpec
from stages.io.commit import read_manifest

# --------------------------------------------------------------------------- registry


def test_every_registered_flow_has_a_deployment_with_an_inactive_nightly_utc_schedule():
    from prefect.client.schemas.schedules import CronSchedule

    specs = deploy.configured(env={})
    assert {s.flow for s in specs} == {
        "flows.text:curate_text",
        "flows.dedup:curate_dedup",
        "flows.image:curate_image",
        "flows.video:curate_video",
        "flows.audio:curate_audio",
        "flows.thresholds:curate_apply_thresholds",
    }
    for spec in specs:
        deployment = deploy.to_deployment(spec)
        assert deployment.name == "nightly"
        assert len(deployment.schedules) == 1
        schedule = deployment.schedules[0]
        assert isinstance(schedule.schedule, CronSchedule)
        assert schedule.schedule.cron == spec.cron
        minute, hour, *rest = spec.cron.split()
        assert rest == ["*", "*", "*"] and minute == "0"  # once a day
        assert schedule.schedule.timezone == "UTC"
        assert schedule.active is False  # no input configured
        assert deployment.parameters == {"params": dict(spec.defaults)}


def test_configured_input_and_output_activate_the_schedule_and_become_defaults():
    env = {
        "CURATE_TEXT_INPUT": "s3://raw/cc/*.jsonl.gz",
        "CURATE_TEXT_OUTPUT": "s3://curated/cc",
        "CURATE_TEXT_CRON": "30 1 * * *",
        "CURATE_TIMEZONE": "Europe/Paris",
    }
    text, dedup = deploy.select(deploy.configured(env=env), ["text", "dedup"])
    deployment = deploy.to_deployment(text)
    schedule = deployment.schedules[0]
    assert schedule.active is True
    assert schedule.schedule.cron == "30 1 * * *"
    assert schedule.schedule.timezone == "Europe/Paris"
    assert deployment.parameters["params"]["input"] == "s3://raw/cc/*.jsonl.gz"
    assert deployment.parameters["params"]["output"] == "s3://curated/cc"
    assert dedup.active is False and dedup.timezone == "Europe/Paris"


def test_default_parameters_are_valid_fields_of_each_flow_model():
    for spec in DEPLOYMENTS:
        flow = spec.load_flow()
        model = flow.fn.__annotations__["params"]
        if isinstance(model, str):  # postponed annotations
            model = flow.fn.__globals__[model]
        filled = {**spec.defaults, "input": "in", "output": "out"}
        assert model(**filled).model_dump(include=set(spec.defaults)) == dict(spec.defaults)


def test_prefect_yaml_agrees_with_the_registry():
    from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig

    on_disk = yaml.safe_load(deploy.PREFECT_YAML.read_text())
    assert on_disk == deploy.prefect_yaml(deploy.configured(env={})), (
        "deployments/prefect.yaml is out of date: "
        "curate deploy --write-yaml deployments/prefect.yaml"
    )
    model = PrefectYamlModel.model_validate(on_disk)
    for entry, spec in zip(model.deployments, DEPLOYMENTS, strict=True):
        assert entry.entrypoint == spec.entrypoint
        assert (deploy.REPO_ROOT / spec.entrypoint.split(":")[0]).is_file()
        assert entry.work_pool.name == deploy.DEFAULT_WORK_POOL
        (schedule,) = entry.schedules
        assert isinstance(schedule, RawScheduleConfig)
        assert (schedule.cron, schedule.timezone, schedule.active) == (spec.cron, "UTC", False)


def test_unknown_deployment_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="nope"):
        deploy.select(DEPLOYMENTS, ["text", "nope"])


# --------------------------------------------------------------------------- curate run


def test_run_parameters_put_model_fields_under_params_and_keep_the_defaults():
    defaults = {"params": {"filters": "default", "languages": ["en"]}}
    parameters = deploy.run_parameters(
        ["input=s3://raw/x.jsonl", "params.output=out", "languages=[]", "shard_size_mb=8"],
        ["params"],
        defaults,
    )
    assert parameters == {
        "params": {
            "filters": "default",
            "languages": [],
            "input": "s3://raw/x.jsonl",
            "output": "out",
            "shard_size_mb": 8,
        }
    }
    assert defaults == {"params": {"filters": "default", "languages": ["en"]}}  # not mutated


def test_run_parameter_values_parse_as_json_else_stay_strings():
    parameters = deploy.run_parameters(
        ["a=true", "b=1.5", 'c={"x": 1}', "d=not json", "e=", "f=null"],
        ["a", "b", "c", "d", "e", "f"],
    )
    assert parameters == {"a": True, "b": 1.5, "c": {"x": 1}, "d": "not json", "e": "", "f": None}


def test_run_parameter_without_equals_sign_is_an_error():
    with pytest.raises(ValueError, match="key=value"):
        deploy.run_parameters(["input"], ["params"])


def test_run_resolves_a_registry_key_to_the_full_deployment_name():
    assert deploy.resolve_name("text") == "curate-text/nightly"
    assert deploy.resolve_name("curate-dedup/nightly") == "curate-dedup/nightly"
    with pytest.raises(ValueError, match="unknown"):
        deploy.resolve_name("unknown", [DeploymentSpec(key="text", flow="flows.text:curate_text")])


# --------------------------------------------------------------------------- integration


_FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, with everything it started."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(check, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _request(client, method: str, url: str, **kwargs):
    """One API call, retried on 503 as Prefect's own client does (SQLite answers "busy"
    while the server's background services write)."""
    for _ in range(20):
        response = client.request(method, url, **kwargs)
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    return response


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 (SQLite, its own home); yields the API URL."""
    import httpx

    root = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        PREFECT_HOME=str(root / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    log = root / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_for(healthy, 120, "the Prefect server", [log])
        yield api, root
    finally:
        _stop(server)


def test_served_text_deployment_runs_when_triggered_over_rest_with_an_idempotency_key(
    prefect_server, capsys
):
    import httpx

    api, root = prefect_server
    work = root / "serve"
    work.mkdir()
    source = work / "docs.jsonl"
    docs = english_documents(12)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)] + [
        {"id": "dup", "text": docs[0]}
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = work / "out"

    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(work / "home"),
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
        CURATE_RAY_TMPDIR=tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"]),
    )
    for key in [k for k in env if k.startswith("CURATE_TEXT_") or k.startswith("CURATE_DEDUP_")]:
        env.pop(key)
    log = work / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve"],
            cwd=deploy.REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    logs = [log, root / "server.log"]
    try:
        client = httpx.Client(base_url=api, timeout=30)

        def deployment():
            if serve.poll() is not None:
                raise AssertionError(f"curate serve exited:\n{log.read_text()[-3000:]}")
            response = _request(client, "GET", "/deployments/name/curate-text/nightly")
            return response.json() if response.status_code == 200 else None

        found = _wait_for(deployment, 120, "the served deployment", logs)
        assert found["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
        assert found["schedules"][0]["schedule"]["timezone"] == "UTC"
        assert found["schedules"][0]["active"] is False

        body = {
            "parameters": {"params": {"input": str(source), "output": str(output)}},
            "idempotency_key": "test-nightly-1",
        }
        first = _request(client, "POST", f"/deployments/{found['id']}/create_flow_run", json=body)
        assert first.status_code in (200, 201), first.text
        again = _request(client, "POST", f"/deployments/{found['id']}/create_flow_run", json=body)
        assert again.status_code in (200, 201), again.text
        run_id = first.json()["id"]
        assert again.json()["id"] == run_id

        def finished():
            state = _request(client, "GET", f"/flow_runs/{run_id}").json()["state"]
            return (
                state if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None
            )

        state = _wait_for(finished, 300, "the flow run", logs)
        assert state["type"] == "COMPLETED", f"{state}\n{log.read_text()[-3000:]}"

        artifacts = _request(
            client,
            "POST",
            "/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        ).json()
        kinds = {(a["key"], a["type"]) for a in artifacts}
        assert ("curate-text-stages", "table") in kinds
        assert ("curate-text-report", "markdown") in kinds

        manifest = read_manifest(str(output))
        assert manifest["flow_run_id"] == run_id
        assert manifest["rows"] == len(docs)  # the planted duplicate is removed
        assert main(["lineage", str(output)]) == 0
        assert source.name in capsys.readouterr().out  # the raw input it came from
    finally:
        _stop(serve)


def test_curate_deploy_registers_with_a_process_pool_whose_worker_runs_a_curate_run(
    prefect_server, tmp_path
):
    import httpx

    api, _ = prefect_server
    env = dict(os.environ)
    env.update(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "home"))
    for key in [k for k in env if k.startswith("CURATE_TEXT_") or k.startswith("CURATE_DEDUP_")]:
        env.pop(key)

    def curate(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    deployed = curate("deploy", "--pool", "test-process-pool")
    assert "prefect worker start --pool test-process-pool" in deployed.stdout
    client = httpx.Client(base_url=api, timeout=30)
    pool = _request(client, "GET", "/work_pools/test-process-pool").json()
    assert pool["type"] == "process"
    for spec in DEPLOYMENTS:
        found = _request(client, "GET", f"/deployments/name/{spec.full_name()}").json()
        assert found["work_pool_name"] == "test-process-pool"
        assert found["entrypoint"] == spec.entrypoint
        (schedule,) = found["schedules"]
        assert schedule["schedule"]["cron"] == spec.cron
        assert schedule["schedule"]["timezone"] == "UTC"
        assert schedule["active"] is False

    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in english_documents(5)))
    output = tmp_path / "out"
    args = ["run", "text", "--param", f"input={source}", "--param", f"params.output={output}"]
    args += ["--param", "languages=[]", "--idempotency-key", "cli-1", "--json"]
    first = json.loads(curate(*args).stdout)
    second = json.loads(curate(*args).stdout)
    assert first["id"] == second["id"]
    assert first["state"] == "SCHEDULED"  # no worker polls the pool yet
    run = _request(client, "GET", f"/flow_runs/{first['id']}").json()
    params = run["parameters"]["params"]
    assert params["input"] == str(source) and params["output"] == str(output)
    assert params["languages"] == []
    assert params["filters"] == "default"  # the deployment's default is kept

    # A process worker of the pool picks the run up and runs the flow from the repository.
    env.update(
        PREFECT_WORKER_QUERY_SECONDS="2",
        CURATE_RAY_TMPDIR=tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"]),
    )
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "test-process-pool",
             "--run-once"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        # --wait with the same idempotency key follows the same run to its end.
        waited = subprocess.run(
            [sys.executable, "-m", "flows.cli", *args, "--wait", "--timeout", "300"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=330,
        )  # fmt: skip
        report = waited.stdout + waited.stderr + "\n--- worker\n" + log.read_text()[-3000:]
        assert waited.returncode == 0, report
        assert json.loads(waited.stdout) == {**first, "state": "COMPLETED"}
        assert read_manifest(str(output))["flow_run_id"] == first["id"]
    finally:
        _stop(worker)
