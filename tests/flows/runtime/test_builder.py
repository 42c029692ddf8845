"""The flow kit: a flow declared here, in a few lines (parameters, a reader, two toy stages),
runs through Prefect with retries, commits, resumes after a kill, writes its report, and is
a `curate` subcommand and a deployment."""

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
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pydantic import Field

from flows.runtime.builder import FlowSpec, build_flow, register, unregister
from flows.runtime.params import FlowParams
from stages.base import Filter, Stage
from stages.io.commit import dataset_files, read_manifest
from stages.io.read import ShardReader


class ToyParams(FlowParams):
    suffix: str = Field("!", description="Appended to every text.")
    min_length: int = Field(3, ge=0, description="Shortest text kept.")
    slow: float = Field(0.0, description="Seconds each shard takes (to be killed mid-run).")
    fail_once: str | None = Field(None, description="A file: the first shard fails if absent.")


class Shout(Stage):
    """Upper-cases the text and appends a suffix; fails once when asked (an infrastructure
    failure, which Prefect retries)."""

    def __init__(self, suffix: str, slow: float, fail_once: str | None):
        self.suffix, self.slow, self.fail_once = suffix, slow, fail_once

    def process(self, batch: pa.Table) -> pa.Table:
        if self.fail_once and not os.path.exists(self.fail_once):
            Path(self.fail_once).write_text("failed once")
            raise RuntimeError("lost a worker (on purpose)")
        time.sleep(self.slow)
        text = pc.binary_join_element_wise(pc.utf8_upper(batch["text"]), self.suffix, "")
        return batch.set_column(batch.schema.get_field_index("text"), "text", text)


class ShortTextFilter(Filter):
    """Drops texts shorter than `min_length` characters."""

    def __init__(self, min_length: int):
        self.min_length = min_length

    def score(self, batch: pa.Table):
        return pc.utf8_length(batch["text"]).to_numpy(zero_copy_only=False)

    def keep(self, scores):
        return scores >= self.min_length


TOY = FlowSpec(
    key="toy",
    params=ToyParams,
    description="Shout every text, drop the short ones.",
    reader=lambda p: ShardReader(id_field=p.id_field, strict=p.strict),
    stages=lambda p: [Shout(p.suffix, p.slow, p.fail_once), ShortTextFilter(p.min_length)],
    cron="0 3 * * *",
    deployment={"suffix": "?"},
)

curate_toy = build_flow(TOY, __name__, register_flow=False)

if __name__ != "__main__":
    from ray import cloudpickle

    # Ray workers cannot import this test module: ship its stages by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

TEXTS = ["a", "bb", "ccc", "dddd", "hello", "hi", "curate", "x"]


@pytest.fixture
def toy_registered():
    register(TOY, __name__)
    yield
    unregister("toy")


def _input(folder: Path, files: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        rows = [{"id": f"f{f}-{i}", "text": t} for i, t in enumerate(TEXTS)]
        (folder / f"part-{f:02d}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_a_declared_flow_runs_through_prefect_retries_commits_and_reports(
    tmp_path, ray_cluster, prefect_harness
):
    source = _input(tmp_path / "in")
    marker = tmp_path / "failed-once"
    params = ToyParams(input=str(source), output=str(tmp_path / "out"), fail_once=str(marker))

    summary = curate_toy(params)

    assert marker.exists()  # the first attempt failed; Prefect's retry of the step succeeded
    manifest = read_manifest(str(tmp_path / "out"))
    table = pa.concat_tables([pq.read_table(f) for f in dataset_files(str(tmp_path / "out"))])
    expected = sorted(t.upper() + "!" for t in TEXTS if len(t) + 1 >= 3)
    assert sorted(table.column("text").to_pylist()) == expected
    assert manifest["rows"] == len(expected) == summary["report"]["rows_written"]
    assert manifest["extra"]["flow"] == "curate-toy"
    stages = {s["stage"]: (s["rows_in"], s["rows_out"]) for s in manifest["extra"]["stages"]}
    assert stages["Shout"] == (8, 8)
    assert stages["ShortTextFilter"] == (8, len(expected))
    report = Path(manifest["uri"], "report.md").read_text()
    assert "ShortTextFilter" in report and "curate-toy" in report
    assert Path(manifest["uri"], "report.html").exists()
    # The whole run's seconds, not one pass's.
    assert manifest["extra"]["seconds"] >= sum(s["seconds"] for s in manifest["extra"]["stages"])


def test_a_declared_flow_is_a_curate_subcommand_with_options_from_its_model(toy_registered):
    from flows.cli import build_parser, model_params

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    toy = commands.choices["toy"]
    options = {o for a in toy._actions for o in a.option_strings}
    assert {"--input", "--output", "--suffix", "--min-length", "--strict", "--no-strict"} <= options
    assert "Appended to every text. (default: !)" in toy.format_help().replace("\n", " ") or (
        "(default: !)" in toy.format_help()
    )
    args = parser.parse_args(["toy", "--input", "a", "--output", "b", "--min-length", "5"])
    params = model_params(ToyParams, args)
    assert params == ToyParams(input="a", output="b", min_length=5)


def test_a_declared_flow_is_a_deployment_with_its_schedule_and_defaults(toy_registered):
    from flows import deploy

    (spec,) = deploy.select(deploy.configured(env={}), ["toy"])
    assert spec.flow == f"{__name__}:curate_toy"
    deployment = deploy.to_deployment(spec)
    assert deployment.parameters == {"params": {"suffix": "?"}}
    assert deployment.schedules[0].schedule.cron == "0 3 * * *"
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(spec.load_flow()).model_dump()
    assert "min_length" in json.dumps(schema["definitions"])  # the UI form is the model
    assert deploy.prefect_yaml([spec])["deployments"][0]["entrypoint"].endswith(":curate_toy")


def _curate_toy(*args: str, tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["CURATE_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])
    return subprocess.Popen(
        [sys.executable, __file__, "toy", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )


def test_a_declared_flow_killed_mid_run_resumes_to_the_same_output(tmp_path):
    source = _input(tmp_path / "in", files=6)
    out = tmp_path / "out"
    args = ["--input", str(source), "--output", str(out), "--version", "v1", "--slow", "1"]
    proc = _curate_toy(*args, tmp_path=tmp_path)
    markers = out / "v1" / "_shards"
    deadline = time.monotonic() + 300
    while not (markers.exists() and len(list(markers.glob("*.json"))) >= 2):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no shard committed in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "v1" / "_manifest.json").exists(), "killed too late to test resume"

    proc = _curate_toy(*args, "--json", tmp_path=tmp_path)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    summary = json.loads(output[output.index("{") :])
    assert summary["report"]["shards_skipped"] >= 2
    table = pa.concat_tables([pq.read_table(f) for f in dataset_files(str(out))])
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 6 * sum(len(t) + 1 >= 3 for t in TEXTS)


if __name__ == "__main__":  # the CLI with this file's flow registered (the kill test)
    from flows.cli import main

    register(TOY, __name__)
    sys.exit(main())
