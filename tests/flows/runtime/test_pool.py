"""The one-operator worker pool: every shard once, workers set up once, a dead worker
replaced and its shard run again, both workers used, CPUs given back at the end."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from flows.runtime.engine import _ShardOp
from flows.runtime.pool import run_pool
from stages.base import Stage


@pytest.fixture(autouse=True)
def _stages_by_value():
    """Ray workers cannot import this test module: its stages travel by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class DiesOnce(Stage):
    """Kills its worker process on the shard `victim`, the first time only (a marker file
    remembers), as a lost node or an out-of-memory kill would."""

    is_stateful = True

    def __init__(self, folder: str, victim: int):
        self.folder, self.victim = folder, victim

    def setup(self):
        Path(self.folder, f"setup-{os.getpid()}").touch()

    def process(self, batch):
        shard = batch["shard"][0].as_py()
        marker = Path(self.folder, "died")
        if shard == self.victim and not marker.exists():
            marker.touch()
            os._exit(1)
        return batch.append_column("pid", pa.array([os.getpid()] * batch.num_rows))


class Pid(Stage):
    def process(self, batch):
        return batch.append_column("pid", pa.array([os.getpid()] * batch.num_rows))


def _read(n: int):
    return pa.table({"shard": [n]}), pa.table({"reason": pa.array([], pa.string())})


def _sink(n, table, quarantine, metrics):
    return {"shard": n, "pid": table["pid"][0].as_py()}


def _rows(n: int) -> list[dict]:
    return [{"item": json.dumps(i), "metrics": ""} for i in range(n)]


def _run(stage: Stage, shards: int, workers: int = 2) -> list[dict]:
    op = _ShardOp([stage], _read, _sink, lambda d: d)
    out = run_pool(
        _rows(shards),
        op,
        stateful=stage.is_stateful,
        ray_args={"num_cpus": 1},
        workers=workers,
        min_ready=workers,
        start_timeout=120,
    )
    results = []
    for row in out:
        assert not row["error"], row["error"]
        results.append(json.loads(row["result"]))
    return results


def test_tasks_run_every_shard_once(ray_cluster):
    results = _run(Pid(), 7)
    assert sorted(r["shard"] for r in results) == list(range(7))


def test_actors_set_up_once_each_and_share_the_shards(ray_cluster, tmp_path):
    results = _run(DiesOnce(str(tmp_path), victim=-1), 6)
    assert sorted(r["shard"] for r in results) == list(range(6))
    setups = list(tmp_path.glob("setup-*"))
    assert len(setups) == 2
    # Both workers were up before the first shard went out, so both took part.
    assert {r["pid"] for r in results} == {int(p.name.split("-")[1]) for p in setups}


def test_a_worker_that_dies_is_replaced_and_its_shard_runs_again(ray_cluster, tmp_path):
    results = _run(DiesOnce(str(tmp_path), victim=3), 6)
    assert (tmp_path / "died").exists()
    assert sorted(r["shard"] for r in results) == list(range(6))
    # Shard 3 ran once more, on a worker that lived (the survivor or the replacement).
    assert [r["shard"] for r in results].count(3) == 1
    assert len(list(tmp_path.glob("setup-*"))) in (2, 3)


def test_closing_the_pool_gives_its_cpus_back(ray_cluster, tmp_path):
    import ray

    total = ray.cluster_resources()["CPU"]
    op = _ShardOp([DiesOnce(str(tmp_path), victim=-1)], _read, _sink, lambda d: d)
    out = run_pool(
        _rows(4), op, stateful=True, ray_args={"num_cpus": 1}, workers=2, min_ready=2,
        start_timeout=120,
    )  # fmt: skip
    next(out)
    out.close()  # as a stopped run closes it
    for _ in range(100):
        if ray.available_resources().get("CPU", 0) == total:
            break
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == total


def test_a_pool_that_cannot_start_says_so(ray_cluster):
    op = _ShardOp([DiesOnce("/nonexistent", victim=-1)], _read, _sink, lambda d: d)
    out = run_pool(
        _rows(1), op, stateful=True, ray_args={"num_cpus": 64}, workers=1, min_ready=1,
        start_timeout=2,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="could start in 2 s"):
        next(out)
