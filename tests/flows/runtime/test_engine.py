"""The Ray engine: shards stay whole, stages run in order, setup runs once per worker."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flows.runtime.engine import RunReport, group_stages, plan_operators, run_pipeline, run_stage
from stages.base import Filter, FilterChain, Resources, Stage, Validator


class Shout(Stage):
    def process(self, batch):
        return batch.set_column(1, "text", pc.utf8_upper(batch["text"]))


class Cores(Stage):
    """Adds the CPUs the stage was granted."""

    def process(self, batch):
        return batch.append_column("cpus", pa.array([self.resources.cpus] * batch.num_rows))


class LongOnly(Filter):
    def score(self, batch):
        return pc.utf8_length(batch["text"])

    def keep(self, scores):
        return scores >= 4


class CountsSetups(Stage):
    """Records each setup() in a folder, to count them."""

    def __init__(self, folder: str):
        self.folder = folder

    def setup(self):
        Path(self.folder, f"{os.getpid()}-{id(self)}").touch()

    def process(self, batch):
        return batch


class OnGpu(Stage):
    resources = Resources(cpus=1, gpus=0.5)

    def process(self, batch):
        return batch


def _read(n: int) -> tuple[pa.Table, pa.Table]:
    texts = ["tiny", "hi", "a longer text"][: 1 + n % 3]
    table = pa.table({"id": [f"{n}-{i}" for i in range(len(texts))], "text": texts})
    return table, pa.table({"reason": pa.array([], pa.string())})


def _sink(n, table, quarantine, metrics):
    return {
        "shard": n,
        "ids": table["id"].to_pylist(),
        "texts": table["text"].to_pylist(),
        "metrics": metrics,
        "rows_written": table.num_rows,
    }


def test_group_stages_splits_where_resources_change():
    a, b, c, d = Shout(), LongOnly(), OnGpu(), Shout()
    assert group_stages([a, b, c, d]) == [[a, b], [c], [d]]
    assert group_stages([]) == []


def test_every_shard_goes_through_every_stage_in_order(ray_cluster, tmp_path):
    import sys

    from ray import cloudpickle

    # Ray workers cannot import this test module: ship its classes by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    results = list(
        run_pipeline(
            list(range(12)),
            _read,
            [LongOnly(), Shout(), CountsSetups(str(tmp_path))],
            _sink,
            item_to_dict=lambda n: {"n": n},
            item_from_dict=lambda d: d["n"],
        )
    )
    assert sorted(r["shard"] for r in results) == list(range(12))
    for r in results:
        expected = [t.upper() for t in ["tiny", "hi", "a longer text"][: 1 + r["shard"] % 3]]
        assert r["texts"] == [t for t in expected if len(t) >= 4]
        assert r["ids"] == [f"{r['shard']}-{i}" for i, t in enumerate(expected) if len(t) >= 4]
    report = RunReport()
    for r in results:
        report.add_shard(r)
    stages = report.stages
    assert stages["read"].rows_out == sum(1 + n % 3 for n in range(12))
    assert stages["LongOnly"].removed == 8  # "hi", in the 8 shards with 2 or 3 rows
    assert stages["LongOnly"].removed_sample[0]["text"] == "hi"
    assert len(stages["Shout"].nodes) == 1
    # The stage with setup() ran in a pool of long-lived workers: setup once per worker.
    setups = list(tmp_path.iterdir())
    assert 1 <= len(setups) <= 2 < 12


def _bad_read(n: int):
    from stages.io.errors import InputError

    if n == 3:
        raise InputError(f"shard-{n}.jsonl: line 7: expected a JSON object")
    return _read(n)


def test_bad_input_in_a_worker_reaches_the_driver_as_the_same_error(ray_cluster):
    import sys

    import pytest
    from ray import cloudpickle

    from stages.io.errors import InputError

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.raises(InputError, match=r"^shard-3\.jsonl: line 7: expected a JSON object$"):
        list(
            run_pipeline(
                list(range(6)),
                _bad_read,
                [Shout()],
                _sink,
                item_to_dict=lambda n: {"n": n},
                item_from_dict=lambda d: d["n"],
            )
        )


class Heavy(Stage):
    """A stage with its own worker pool and its own memory need."""

    resources = Resources(cpus=1, memory_gb=0.5)

    def setup(self):
        self.ready = True

    def process(self, batch):
        return batch


class Model(Stage):
    def setup(self):
        self.ready = True

    def process(self, batch):
        return batch


def test_memory_needs_do_not_split_a_pipeline_into_more_pools():
    from flows.runtime.engine import _actor_cpus, _group_resources

    shout, heavy, model = Shout(), Heavy(), Model()
    groups = group_stages([shout, heavy, model])
    assert groups == [[shout, heavy, model]]
    assert _group_resources(groups[0]).memory_gb == 0.5
    assert _actor_cpus(groups, 2) is None


def test_worker_pools_that_would_take_every_cpu_share_them():
    from flows.runtime.engine import _actor_cpus

    class Gpu(Model):
        resources = Resources(cpus=1, gpus=0.5)

    groups = group_stages([Shout(), Model(), Gpu()])
    assert len(groups) == 2  # a task-free CPU pool and a GPU pool
    assert _actor_cpus(groups, 2) is None
    groups = group_stages([Shout(), Gpu(), Model(), Gpu()])
    # Three pools of one CPU each on two CPUs: they share, so none starves another.
    assert 0 < _actor_cpus(groups, 2) * 3 <= 2


class Embed(Stage):
    """A model on a GPU fraction: an actor pool."""

    resources = Resources(gpus=0.5)

    def setup(self):
        self.ready = True

    def process(self, batch):
        return batch


class Decode(Stage):
    """A many-CPU stage without a model: Ray tasks."""

    resources = Resources(cpus=4)

    def process(self, batch):
        return batch


def _layout(stages) -> list[tuple]:
    return [(op["stages"], op["cpus"], op["gpus"], op["kind"]) for op in plan_operators(stages)]


def test_one_cpu_stages_read_and_write_in_their_own_operator():
    assert plan_operators([Shout(), LongOnly()]) == [
        {
            "operator": 0,
            "stages": ["read", "Shout", "LongOnly", "write"],
            "cpus": 1.0,
            "gpus": 0.0,
            "kind": "tasks",
        }
    ]
    assert _layout([Model()]) == [(["read", "Model", "write"], 1.0, 0.0, "actors")]
    assert _layout([]) == [(["read", "write"], 1.0, 0.0, "tasks")]


def test_a_gpu_stage_first_leaves_reading_to_a_cpu_operator():
    assert _layout([Embed(), Shout()]) == [
        (["read"], 1.0, 0.0, "tasks"),
        (["Embed"], 1.0, 0.5, "actors"),
        (["Shout", "write"], 1.0, 0.0, "tasks"),
    ]
    assert [op["operator"] for op in plan_operators([Embed(), Shout()])] == [0, 1, 2]


def test_a_gpu_stage_last_leaves_writing_to_a_cpu_operator():
    assert _layout([Shout(), Embed()]) == [
        (["read", "Shout"], 1.0, 0.0, "tasks"),
        (["Embed"], 1.0, 0.5, "actors"),
        (["write"], 1.0, 0.0, "tasks"),
    ]
    assert _layout([Embed()]) == [
        (["read"], 1.0, 0.0, "tasks"),
        (["Embed"], 1.0, 0.5, "actors"),
        (["write"], 1.0, 0.0, "tasks"),
    ]


def test_a_gpu_stage_in_the_middle_keeps_reading_and_writing_fused():
    assert _layout([Shout(), Embed(), LongOnly()]) == [
        (["read", "Shout"], 1.0, 0.0, "tasks"),
        (["Embed"], 1.0, 0.5, "actors"),
        (["LongOnly", "write"], 1.0, 0.0, "tasks"),
    ]


def test_a_many_cpu_stage_first_leaves_reading_to_a_one_cpu_operator():
    assert _layout([Decode(), Shout()]) == [
        (["read"], 1.0, 0.0, "tasks"),
        (["Decode"], 4.0, 0.0, "tasks"),
        (["Shout", "write"], 1.0, 0.0, "tasks"),
    ]


def test_operators_name_the_filters_of_a_chain_and_the_memory_declared():
    layout = plan_operators([FilterChain([LongOnly()]), Heavy()])
    assert layout == [
        {
            "operator": 0,
            "stages": ["read", "LongOnly", "Heavy", "write"],
            "cpus": 1.0,
            "gpus": 0.0,
            "kind": "actors",
            "memory_gb": 0.5,
        }
    ]


def test_the_run_report_carries_the_operator_layout():
    assert RunReport().to_dict()["operators"] == []
    report = RunReport(operators=plan_operators([Embed()]))
    assert [op["stages"] for op in report.to_dict()["operators"]] == [
        ["read"],
        ["Embed"],
        ["write"],
    ]


def test_removed_rows_are_sampled_by_the_stage_that_removed_them():
    class Described(LongOnly):
        def describe_removed(self, rows, limit):
            rows = rows.slice(0, limit).to_pylist()
            return [{"id": row["id"], "length": len(row["text"])} for row in rows]

    table = pa.table({"id": ["a", "b", "c"], "text": ["hi", "a longer text", "yo"]})
    out, [record] = run_stage(Described(), table)
    assert out["id"].to_pylist() == ["b"]
    assert record["removed_sample"] == [{"id": "a", "length": 2}, {"id": "c", "length": 2}]
    _, records = run_stage(FilterChain([Described()]), table)
    assert records[0]["removed_sample"] == [{"id": "a", "length": 2}, {"id": "c", "length": 2}]


def test_a_missing_input_or_model_folder_is_a_user_error():
    from flows.runtime.engine import USER_ERRORS
    from stages.io.errors import InputError, InputNotFound

    for error in (InputError("x"), InputNotFound("x"), FileNotFoundError("model/"), KeyError("k")):
        assert isinstance(error, USER_ERRORS)
    assert not isinstance(RuntimeError("node died"), USER_ERRORS)


class NonEmpty(Validator):
    """Quarantines rows whose text is empty: unusable input, not a quality decision."""

    batch_size = 2

    def check(self, batch):
        from stages.io.quarantine import quarantine_table

        empty = pc.equal(pc.utf8_length(batch["text"]), 0)
        bad = batch.filter(empty)
        records = [(r["source"], 0, f"{r['source']}: empty text", None) for r in bad.to_pylist()]
        return batch.filter(pc.invert(empty)), quarantine_table(records)


def test_a_validator_sends_bad_rows_to_the_quarantine_not_to_the_removed_count():
    from flows.runtime.passes import shard_result

    table = pa.table(
        {"id": list("abcde"), "source": ["f.jsonl"] * 5, "text": ["x", "", "y", "", "zz"]}
    )
    found: list[pa.Table] = []
    out, [record] = run_stage(NonEmpty(), table, None, found)
    assert out["id"].to_pylist() == ["a", "c", "e"]
    assert record["rows_quarantined"] == 2 and record["rows_out"] == 3
    quarantine = pa.concat_tables(found)
    assert quarantine["reason"].to_pylist() == ["f.jsonl: empty text"] * 2

    read = {"stage": "read", "rows_in": 5, "rows_out": 5, "seconds": 0.0}
    result = shard_result(type("S", (), {"key": "k"})(), out, quarantine, [read, record], files=[])
    assert result["rows_read"] == 5 and result["rows_quarantined"] == 2
    report = RunReport()
    report.add_shard(result)
    assert report.rows_removed == 0 and report.unaccounted == 0
    assert report.to_dict()["stages"][1]["quarantined"] == 2


def test_a_validator_in_a_pipeline_puts_its_records_in_the_shard_quarantine(ray_cluster):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def read(item):
        from stages.io.quarantine import empty_quarantine

        texts = ["", "keep", ""] if item == "s1" else ["one", "two"]
        ids = [f"{item}-{i}" for i in range(len(texts))]
        return pa.table({"id": ids, "source": [item] * len(texts), "text": texts}), (
            empty_quarantine()
        )

    def sink(item, table, quarantine, metrics):
        return {"item": item, "rows": table.num_rows, "bad": quarantine.num_rows}

    results = list(
        run_pipeline(
            ["s1", "s2"],
            read,
            [NonEmpty()],
            sink,
            item_to_dict=lambda i: {"i": i},
            item_from_dict=lambda d: d["i"],
        )
    )
    assert sorted((r["item"], r["rows"], r["bad"]) for r in results) == [
        ("s1", 1, 2),
        ("s2", 2, 0),
    ]


_ONE_SHARD_HERE = """
import sys
from tests.flows.runtime.test_engine import Cores, LongOnly, Shout, _read, _sink
from flows.runtime.engine import planned_workers, run_pipeline, uses_ray

assert not uses_ray(1) and uses_ray(2)
granted = []
def sink(n, table, quarantine, metrics):
    granted.extend(table["cpus"].to_pylist())
    return _sink(n, table, quarantine, metrics)
stage = Cores()
results = list(run_pipeline([8], _read, [Shout(), LongOnly(), stage], sink,
                            item_to_dict=lambda n: {"n": n}, item_from_dict=lambda d: d["n"]))
assert "ray" not in sys.modules, "a one-shard pass imported Ray"
# the only worker: its stages may use every core (the caller's stage is left as it was)
assert set(granted) == {float(planned_workers())} and stage.resources.cpus == 1.0
print(results[0]["texts"], sorted({m["node"] for m in results[0]["metrics"]}))
"""


def test_a_one_shard_pass_runs_in_the_driver_without_starting_ray():
    """Nothing to spread: the stages run here, as a worker would run them, and Ray (its
    start-up, about 8 s of a short run on 2 cores) is never imported."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CURATE_EXECUTOR")}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run(
        [sys.executable, "-c", _ONE_SHARD_HERE],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['TINY', 'A LONGER TEXT'] ['local']"


def test_the_executor_follows_curate_executor_and_ray_address(monkeypatch):
    from flows.runtime import engine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(engine, "ray_running", lambda: False)
    monkeypatch.setenv("CURATE_EXECUTOR", "ray")
    assert engine.uses_ray(1)
    monkeypatch.setenv("CURATE_EXECUTOR", "local")
    assert not engine.uses_ray(5)
    monkeypatch.setenv("CURATE_EXECUTOR", "auto")
    assert not engine.uses_ray(1) and engine.uses_ray(2)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # a cluster: always on it
    assert engine.uses_ray(1)
    monkeypatch.setenv("CURATE_EXECUTOR", "threads")
    try:
        engine.uses_ray(1)
    except ValueError as exc:
        assert "CURATE_EXECUTOR='threads'" in str(exc)
    else:
        raise AssertionError("an unknown executor was accepted")
