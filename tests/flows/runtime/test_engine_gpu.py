"""A pipeline that starts and ends on a GPU: reading and writing run in CPU operators of
their own, so the GPU workers only run their stages.

The session's Ray cluster (the `ray_cluster` fixture) has no GPU, so the pipeline runs in a
subprocess on a local cluster of its own that declares one (Ray hands out GPU ids without
checking for a device, which is all the engine's scheduling needs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Runs `read -> Embed (GPU, a model: actors) -> Tag (CPU) -> Caption (GPU: tasks) -> write`
# over 6 shards; each step records the GPU ids Ray gave its worker. Prints
# {"operators": plan_operators(...), "results": [sink results]}.
_PIPELINE = """
import json, sys

import pyarrow as pa
import ray

from flows.runtime.engine import plan_operators, run_pipeline
from stages.base import Resources, Stage


def gpu_ids():
    return json.dumps([str(i) for i in ray.get_gpu_ids()])


class Embed(Stage):
    resources = Resources(gpus=0.5)

    def setup(self):
        self.model = "loaded"

    def process(self, batch):
        return batch.append_column("embed_gpus", pa.array([gpu_ids()] * batch.num_rows))


class Tag(Stage):
    def process(self, batch):
        return batch.append_column("tag_gpus", pa.array([gpu_ids()] * batch.num_rows))


class Caption(Stage):
    resources = Resources(gpus=0.5)

    def process(self, batch):
        return batch.append_column("caption_gpus", pa.array([gpu_ids()] * batch.num_rows))


def read(n):
    ids = [f"{n}-{i}" for i in range(1 + n % 3)]
    table = pa.table({"id": ids, "read_gpus": [gpu_ids()] * len(ids)})
    return table, pa.table({"reason": pa.array([], pa.string())})


def sink(n, table, quarantine, metrics):
    columns = ("read_gpus", "embed_gpus", "tag_gpus", "caption_gpus")
    return {
        "shard": n,
        "ids": table["id"].to_pylist(),
        **{c: sorted(set(table[c].to_pylist())) for c in columns},
        "sink_gpus": gpu_ids(),
        "stages": [m["stage"] for m in metrics],
    }


ray.init(
    address="local",
    num_cpus=2,
    num_gpus=1,
    include_dashboard=False,
    object_store_memory=256 << 20,
    _temp_dir=sys.argv[1],
    log_to_driver=False,
    configure_logging=False,
)
stages = [Embed(), Tag(), Caption()]
results = list(
    run_pipeline(
        list(range(6)),
        read,
        stages,
        sink,
        item_to_dict=lambda n: {"n": n},
        item_from_dict=lambda d: d["n"],
    )
)
print(json.dumps({"operators": plan_operators(stages), "results": results}))
"""


def _on_fake_gpu(script: str, *args: str) -> str:
    """Run `script` in a subprocess (it starts its own one-GPU Ray cluster in the folder
    given as its first argument); returns the last line it printed."""
    # A short folder: Ray's socket paths under it must fit in 107 bytes.
    ray_dir = tempfile.mkdtemp(prefix="ray-gpu-")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, "-c", script, ray_dir, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"GPU subprocess: {time.perf_counter() - start:.1f}s")
    return run.stdout.strip().splitlines()[-1]


def test_gpu_stages_first_and_last_run_without_reading_or_writing():
    out = json.loads(_on_fake_gpu(_PIPELINE))

    assert [(op["stages"], op["gpus"], op["kind"]) for op in out["operators"]] == [
        (["read"], 0.0, "tasks"),
        (["Embed"], 0.5, "actors"),
        (["Tag"], 0.0, "tasks"),
        (["Caption"], 0.5, "tasks"),
        (["write"], 0.0, "tasks"),
    ]
    assert all(op["cpus"] == 1.0 for op in out["operators"])

    results = sorted(out["results"], key=lambda r: r["shard"])
    assert [r["shard"] for r in results] == list(range(6))
    for r in results:
        assert r["ids"] == [f"{r['shard']}-{i}" for i in range(1 + r["shard"] % 3)]
        assert r["stages"] == ["read", "Embed", "Tag", "Caption"]
        # The GPU stages saw a GPU; reading, the CPU stage and writing did not.
        assert [json.loads(v) for v in r["embed_gpus"]] == [["0"]]
        assert [json.loads(v) for v in r["caption_gpus"]] == [["0"]]
        assert r["read_gpus"] == r["tag_gpus"] == ["[]"]
        assert r["sink_gpus"] == "[]"


# A declared flow whose first stage asks for half a GPU, run without Prefect on a local
# cluster with one (fake) GPU; prints the output manifest's path.
_FLOW = """
import json, sys
from pathlib import Path

import pyarrow as pa
import ray

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.params import FlowParams
from stages.base import Resources, Stage
from stages.io.read import ShardReader


class Embed(Stage):
    resources = Resources(gpus=0.5)

    def setup(self):
        self.model = "loaded"

    def process(self, batch):
        gpus = json.dumps([str(i) for i in ray.get_gpu_ids()])
        return batch.append_column("embed_gpus", pa.array([gpus] * batch.num_rows))


SPEC = FlowSpec(
    key="gpu-first",
    params=FlowParams,
    description="A GPU stage first.",
    reader=lambda p: ShardReader(),
    stages=lambda p: [Embed()],
)
build_flow(SPEC, __name__, register_flow=False)

ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
         object_store_memory=256 << 20, _temp_dir=sys.argv[1], log_to_driver=False,
         configure_logging=False)
folder = Path(sys.argv[2])
(folder / "in").mkdir()
for f in range(3):
    (folder / "in" / f"{f}.jsonl").write_text(json.dumps({"id": str(f), "text": "x"}) + "\\n")
summary = run_flow(SPEC, FlowParams(input=str(folder / "in"), output=str(folder / "out")))
print(summary["manifest"])
"""


def test_a_flow_with_a_gpu_stage_first_records_cpu_read_and_write_in_its_manifest(tmp_path):
    import pyarrow.parquet as pq

    from stages.io.commit import dataset_files

    manifest = json.loads(Path(_on_fake_gpu(_FLOW, str(tmp_path))).read_text())
    layout = [(op["stages"], op["gpus"]) for op in manifest["extra"]["operators"]]
    assert layout == [(["read"], 0.0), (["Embed"], 0.5), (["write"], 0.0)]
    table = pq.read_table(dataset_files(str(tmp_path / "out"))[0])
    assert table["embed_gpus"].to_pylist() == ['["0"]']  # the stage ran on the GPU
