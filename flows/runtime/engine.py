"""The Ray engine: runs a pipeline of stages over input shards with Ray Data.

A pipeline is `read -> stage ... -> write`, applied to every shard of the input. The engine
streams shards through Ray Data, one shard per row: a shard stays whole from reading to its
commit, which is what makes the per-shard commit protocol (and so resume) possible.

Consecutive stages with the same CPUs and GPUs run fused in one Ray operator, so their
batches never leave the worker's memory; a change of resources (a GPU stage, a 4-CPU stage)
starts a new operator with those resources. An operator with a stage that has `setup()` (a
model, a detector) runs as an autoscaling actor pool, so `setup()` runs once per worker;
otherwise as Ray tasks. Reading is fused into the first operator and writing into the last
when they run on one CPU (what keeps a text pipeline fast); when the first or last operator
asks for a GPU or another number of CPUs, reading or writing runs as a 1-CPU operator of
its own, so a GPU worker only runs its stages. `plan_operators` tells the layout. Between
operators a shard travels as Arrow IPC bytes. Each shard carries its own per-stage metrics
(rows in/out, seconds, node) to the driver, which folds them into a `RunReport`.

With `keep_removed` (off by default, and then nothing of what follows is done), the engine
collects every row a stage removes from a shard, as it was when removed, with `removed_by`
(the stage or filter) and `reason` (`removed_table`), and hands them to the sink with the
shard; between operators they travel as Arrow IPC bytes too.

`RAY_ADDRESS` set: `ray.init()` joins that cluster. Unset: a local cluster is started.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, FilterChain, Resources, Splitter, Stage, Validator
from stages.io.errors import InputError, InputNotFound

log = logging.getLogger("curate.engine")

USER_ERRORS: tuple[type[Exception], ...] = (
    InputError,
    InputNotFound,
    ValueError,
    KeyError,
    TypeError,
    FileNotFoundError,
)
"""Errors of the input or the parameters, not of the infrastructure: never worth a retry.
The one list: a worker sends them to the driver as data, and the flows do not retry them."""

ACTOR_START_TIMEOUT_S = 600  # a pool whose first workers cannot start by then is an error
REMOVED_SAMPLE_SIZE = 10  # removed rows described per filter and shard, for the report
REPORT_SAMPLE_SIZE = 10  # removed rows described per stage in the run report
REMOVED_BY, REASON = "removed_by", "reason"  # the columns a removed row gets


# --------------------------------------------------------------------------- Ray set-up


def init_ray() -> None:
    """Join the cluster at RAY_ADDRESS, or start a local one sized by CURATE_RAY_* vars."""
    import ray

    from flows.runtime import signals

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }
    started = time.perf_counter()
    try:
        _connect(signals, env)
    finally:
        ray_start_seconds[0] += time.perf_counter() - started


ray_start_seconds = [0.0]
"""Seconds this process spent starting or joining Ray (the fixed cost a report shows)."""


def _connect(signals, env: dict[str, str]) -> None:
    import ray

    if os.environ.get("RAY_ADDRESS"):
        with _quiet_core_start():
            ray.init(
                address=os.environ["RAY_ADDRESS"],
                runtime_env={"env_vars": env},
                log_to_driver=False,
            )
        signals.rearm()  # Ray's core worker took SIGTERM
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "runtime_env": {"env_vars": env},
        "configure_logging": False,
    }
    if os.environ.get("CURATE_RAY_NUM_CPUS"):
        kwargs["num_cpus"] = int(os.environ["CURATE_RAY_NUM_CPUS"])
    if os.environ.get("CURATE_RAY_OBJECT_STORE_MB"):
        kwargs["object_store_memory"] = int(os.environ["CURATE_RAY_OBJECT_STORE_MB"]) << 20
    if os.environ.get("CURATE_RAY_TMPDIR"):
        os.makedirs(os.environ["CURATE_RAY_TMPDIR"], exist_ok=True)
        kwargs["_temp_dir"] = os.environ["CURATE_RAY_TMPDIR"]
    with signals.ray_in_own_group(), _quiet_core_start():
        ray.init(**kwargs)  # in its own group: a Ctrl-C or SIGTERM of the CLI's group spares Ray
    signals.rearm()  # Ray's core worker took SIGTERM


@contextlib.contextmanager
def _quiet_core_start():
    """When the CLI asked Ray's C++ core for fatal errors only (`RAY_BACKEND_LOG_LEVEL=fatal`,
    its default without -v), the core still prints a line saying so as it starts: standard
    error is closed to it for the `ray.init` call alone (a failed start still raises)."""
    if os.environ.get("RAY_BACKEND_LOG_LEVEL") != "fatal":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_ray_errors() -> None:
    """Without -v, the failures Ray recovers from itself (a worker or node lost and its task
    retried) stay out of the terminal: Ray prints the raylet's notes to standard output (which
    would break `--json`) and Ray Data logs the error it re-raises; both go to curate's log,
    shown with -v, and a run that fails still ends in one line naming the cause."""
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    from ray._private import worker

    printer = getattr(worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "_curate_quiet", False):
        return

    def to_log(data, ignore_prefix: bool):
        if data.get("pid") != "raylet":
            return printer(data, ignore_prefix)
        for line in data.get("lines", []):
            log.info("ray: %s", line)

    to_log._curate_quiet = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log


def uses_ray(shards: int) -> bool:
    """Whether a pass over `shards` shards runs on Ray. A pass of one shard has nothing to
    spread, so it runs in the driver and a short run never starts Ray (about 8 s of
    fixed cost on 2 cores: the cluster's start, Ray Data's and the workers' start-up, and
    its shutdown); once Ray is up, or on a cluster (`RAY_ADDRESS`), every pass uses it.
    `CURATE_EXECUTOR=ray` always uses Ray, `local` never on a local machine."""
    mode = os.environ.get("CURATE_EXECUTOR", "auto")
    if mode not in ("auto", "ray", "local"):
        raise ValueError(f"CURATE_EXECUTOR={mode!r}: expected auto, ray or local")
    if mode == "ray" or os.environ.get("RAY_ADDRESS") or ray_running():
        return True
    return mode == "auto" and shards > 1


def planned_workers() -> int:
    """The workers a pass will have, to size the shards of few large files: the running
    cluster's CPUs, else those a local cluster would get (`CURATE_RAY_NUM_CPUS`, else this
    machine's)."""
    if ray_running():
        return _cluster_cpus()
    return int(os.environ.get("CURATE_RAY_NUM_CPUS") or os.cpu_count() or 1)


def ray_running() -> bool:
    """Ray is initialised in this process (checked without importing Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


# --------------------------------------------------------------------------- metrics


@dataclass
class StageMetrics:
    """What one stage did over the whole run."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    shards: int = 0
    nodes: set[str] = field(default_factory=set)
    removed_sample: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # step-specific figures for the report
    quarantined: int = 0  # rows a `Validator` sent to the quarantine (not removed)
    added: int = 0  # rows a `Splitter` added (a row split in three adds two)

    @property
    def removed(self) -> int:
        return self.rows_in + self.added - self.rows_out - self.quarantined

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def add(self, record: dict) -> None:
        self.rows_in += record["rows_in"]
        self.rows_out += record["rows_out"]
        self.seconds += record["seconds"]
        self.quarantined += record.get("rows_quarantined", 0)
        self.added += record.get("rows_added", 0)
        self.shards += 1
        if record.get("node"):
            self.nodes.add(record["node"])
        room = REPORT_SAMPLE_SIZE - len(self.removed_sample)
        if room > 0:
            self.removed_sample.extend(record.get("removed_sample", [])[:room])
        if record.get("counts"):  # a stage's own counts (`Stage.take_counts`), summed
            counts = self.details.setdefault("counts", {})
            for key, value in record["counts"].items():
                counts[key] = counts.get(key, 0) + value

    def to_dict(self) -> dict:
        return {
            "stage": self.name,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "removed": self.removed,
            **({"quarantined": self.quarantined} if self.quarantined else {}),
            **({"added": self.added} if self.added else {}),
            "seconds": round(self.seconds, 4),
            "rows_per_second": round(self.rows_per_second, 1),
            "shards": self.shards,
            "nodes": sorted(self.nodes),
            "removed_sample": self.removed_sample,
            **({"details": self.details} if self.details else {}),
        }


READ_STAGE = "read"  # the reader's line in the stage funnel: rows read in, good rows out


@dataclass
class RunReport:
    """Counts, timings and outputs of one pipeline run, per stage and in total.

    The counts add up, exactly: `rows_read` (every row the readers saw: lines, records,
    samples; an unreadable Parquet file counts the rows its footer declares) ==
    `rows_written` + `rows_removed` (by the stages) + `duplicates_removed` (by the dedup
    step, `dedup_stage`) + `rows_quarantined` (the rows of the quarantine records, of which
    there are `quarantine_records`); `unaccounted` is the difference (0). Blank lines are no
    rows: `blank_lines` counts them apart. `duplicate_ids`: ids shared by several written
    rows (`{"ids", "rows", "sample"}`); `skipped_inputs`: what the inputs' folders hold
    that was not read (`{"path", "reason"}`).
    """

    stages: dict[str, StageMetrics] = field(default_factory=dict)
    shards_total: int = 0
    shards_skipped: int = 0
    rows_read: int = 0
    rows_quarantined: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    quarantine: list[str] = field(default_factory=list)
    operators: list[dict] = field(default_factory=list)  # the layout, from plan_operators
    quarantine_records: int = 0
    blank_lines: int = 0
    duplicates_removed: int = 0
    dedup_stage: str = ""
    duplicate_ids: dict = field(default_factory=dict)
    skipped_inputs: list[dict] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds of each step
    removed_kept: int = 0  # removed rows written to the version's removed/ (--keep-removed)

    def add_shard(self, result: dict) -> None:
        """Fold the result of one committed shard (from a sink) into the report."""
        self.rows_read += result.get("rows_read", 0)
        self.rows_quarantined += result.get("rows_quarantined", 0)
        self.quarantine_records += result.get(
            "quarantine_records", result.get("rows_quarantined", 0)
        )
        self.blank_lines += result.get("blank_lines", 0)
        self.rows_written += result.get("rows_written", 0)
        self.bytes_written += result.get("bytes_written", 0)
        self.removed_kept += result.get("removed_kept", 0)
        for record in result.get("metrics", []):
            self.stages.setdefault(record["stage"], StageMetrics(record["stage"])).add(record)

    @property
    def rows_removed(self) -> int:
        """Rows the stages removed (not the reader's quarantine, not the dedup step)."""
        skip = (READ_STAGE, self.dedup_stage)
        return sum(m.removed for m in self.stages.values() if m.name not in skip)

    @property
    def rows_added(self) -> int:
        """Rows the `Splitter` stages added (clips beyond one per video)."""
        return sum(m.added for m in self.stages.values())

    @property
    def unaccounted(self) -> int:
        """Rows read or added that are neither written, removed, deduplicated nor
        quarantined."""
        return (
            self.rows_read
            + self.rows_added
            - (
                self.rows_written
                + self.rows_removed
                + self.duplicates_removed
                + self.rows_quarantined
            )
        )

    def to_dict(self) -> dict:
        return {
            "shards_total": self.shards_total,
            "shards_skipped": self.shards_skipped,
            "rows_read": self.rows_read,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_records": self.quarantine_records,
            "blank_lines": self.blank_lines,
            "rows_added": self.rows_added,
            "rows_removed": self.rows_removed,
            "duplicates_removed": self.duplicates_removed,
            "rows_written": self.rows_written,
            "unaccounted": self.unaccounted,
            "removed_kept": self.removed_kept,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 3),
            "phases": {name: round(t, 3) for name, t in self.phases.items()},
            "stages": [m.to_dict() for m in self.stages.values()],
            "outputs": self.outputs,
            "quarantine": self.quarantine,
            "operators": self.operators,
            "duplicate_ids": self.duplicate_ids,
            "skipped_inputs": self.skipped_inputs,
        }


# --------------------------------------------------------------------------- running stages


def run_stage(
    stage: Stage,
    table: pa.Table,
    node: str | None = None,
    quarantine: list | None = None,
    removed: list | None = None,
) -> tuple[pa.Table, list[dict]]:
    """Run one stage over a whole shard table, in `stage.batch_size` slices when set.

    Returns the output table and the metrics records for this shard: one for a stage, one
    per filter for a `FilterChain`. A `Validator`'s quarantine tables are appended to
    `quarantine` (required for one), its record counts their rows (`rows_quarantined`).
    With a `removed` list, the rows the stage removed are appended to it, each with
    `removed_by` and `reason` (`removed_table`): a filter's as they were when it removed
    them, a `Splitter`'s rows that became nothing, and, for another stage, the input rows
    whose `_order` is not in its output.
    """
    if isinstance(stage, FilterChain):
        return _run_chain(stage, table, node, removed)
    start = time.perf_counter()
    rows_in = table.num_rows
    sample: list[dict] = []
    size = stage.batch_size or max(rows_in, 1)
    outputs = []
    bad_rows = added = 0
    for offset in range(0, max(rows_in, 1), size):
        batch = table.slice(offset, size)
        if isinstance(stage, Validator):
            if quarantine is None:
                raise TypeError(f"{stage.stage_name}: a Validator needs a quarantine list")
            good, bad = stage.check(batch)
            if bad.num_rows:
                quarantine.append(bad)
                bad_rows += int(pa.compute.sum(bad.column("rows")).as_py() or 0)
            outputs.append(good)
        elif isinstance(stage, Splitter):
            parts, counts = stage.split(batch)
            counts = np.asarray(counts, dtype=np.int64)
            added += int(np.maximum(counts - 1, 0).sum())
            barren = np.flatnonzero(counts == 0)[: REMOVED_SAMPLE_SIZE - len(sample)]
            if barren.size:
                sample.extend(stage.describe_removed(batch.take(barren), barren.size))
            if removed is not None and (counts == 0).any():
                gone = batch.take(pa.array(np.flatnonzero(counts == 0)))
                why = f"{stage.stage_name}: split into no rows"
                removed.append(removed_table(gone, stage.stage_name, [why] * gone.num_rows))
            outputs.append(parts)
        elif isinstance(stage, Filter):
            if removed is None:
                kept, dropped, _ = stage.apply(batch)
            else:
                kept, dropped = _apply_keeping_removed(stage, batch, removed)
            if len(sample) < REMOVED_SAMPLE_SIZE and dropped.num_rows:
                sample.extend(stage.describe_removed(dropped, REMOVED_SAMPLE_SIZE - len(sample)))
            outputs.append(kept)
        else:
            out = stage.process(batch)
            if removed is not None and out.num_rows < batch.num_rows:
                removed.extend(_vanished(stage, batch, out))
            outputs.append(out)
    out = outputs[0] if len(outputs) == 1 else pa.concat_tables(outputs, promote_options="default")
    counts = stage.take_counts()
    record = {
        "stage": stage.stage_name,
        "rows_in": rows_in,
        "rows_out": out.num_rows,
        "seconds": time.perf_counter() - start,
        "node": node,
        "removed_sample": sample,
        **({"rows_quarantined": bad_rows} if isinstance(stage, Validator) else {}),
        **({"rows_added": added} if isinstance(stage, Splitter) else {}),
        **({"counts": counts} if counts else {}),
    }
    return out, [record]


def removed_table(rows: pa.Table, removed_by: str | list[str], reasons: list[str]) -> pa.Table:
    """`rows` with the columns `removed_by` (one name for every row, or one per row) and
    `reason` (one per row) last, replacing columns of those names."""
    if isinstance(removed_by, str):
        removed_by = [removed_by] * rows.num_rows
    rows = rows.drop_columns([c for c in (REMOVED_BY, REASON) if c in rows.column_names])
    rows = rows.append_column(REMOVED_BY, pa.array(removed_by, pa.string()))
    return rows.append_column(REASON, pa.array(reasons, pa.string()))


_POSITION = "_removed_position"  # a batch row's position, while a filter runs on the batch


def _apply_keeping_removed(f: Filter, batch: pa.Table, removed: list) -> tuple[pa.Table, pa.Table]:
    """`f.apply(batch)`'s kept and removed rows; the removed ones, with their reasons, are
    also appended to `removed`. Each row carries its position through `apply`, which tells
    the scores of the removed rows whatever the filter's own `apply` does."""
    if _POSITION in batch.column_names:
        batch = batch.drop_columns([_POSITION])
    marked = batch.append_column(_POSITION, pa.array(np.arange(batch.num_rows), pa.int64()))
    kept, dropped, scores = f.apply(marked)
    if _POSITION in kept.column_names:
        kept = kept.drop_columns([_POSITION])
    scores_of = None
    if _POSITION in dropped.column_names:
        positions = dropped.column(_POSITION).to_numpy()
        dropped = dropped.drop_columns([_POSITION])
        if isinstance(scores, pa.ChunkedArray | pa.Array):
            scores = scores.to_numpy(zero_copy_only=False)
        if scores is not None and len(scores) == batch.num_rows:
            scores_of = np.asarray(scores)[positions]
    if dropped.num_rows:
        reasons = f.removal_reasons(dropped, scores_of)
        removed.append(removed_table(f.kept_removed(dropped), f.stage_name, reasons))
    return kept, dropped


def _vanished(stage: Stage, batch: pa.Table, out: pa.Table) -> list[pa.Table]:
    """The rows of `batch` that a stage other than a filter left out of `out`, told by
    their `_order` (none found without one)."""
    if "_order" not in batch.column_names or "_order" not in out.column_names:
        return []
    orders = out.column("_order").combine_chunks()
    gone = batch.filter(pc.invert(pc.is_in(batch.column("_order"), value_set=orders)))
    if not gone.num_rows:
        return []
    return [removed_table(gone, stage.stage_name, [stage.stage_name] * gone.num_rows)]


def _run_chain(
    chain: FilterChain, table: pa.Table, node: str | None, removed: list | None = None
) -> tuple[pa.Table, list]:
    size = chain.batch_size or max(table.num_rows, 1)
    outputs, totals = [], {}
    if removed is not None and not chain.track_removed:
        chain = copy.copy(chain)  # the same filters, telling which rows each removed
        chain.track_removed = True
    for offset in range(0, max(table.num_rows, 1), size):
        batch = table.slice(offset, size)
        out, records = chain.run(batch)
        outputs.append(out)
        for f, r in zip(chain.filters, records, strict=True):
            rows, scores = r.pop("removed_rows", None), r.pop("removed_scores", None)
            if removed is not None and rows is not None and len(rows):
                gone = batch.take(pa.array(rows, pa.int64()))
                reasons = f.removal_reasons(gone, scores)
                removed.append(removed_table(f.kept_removed(gone), f.stage_name, reasons))
        for r in records:
            total = totals.setdefault(
                r["stage"], {**r, "rows_in": 0, "rows_out": 0, "seconds": 0.0, "removed_sample": []}
            )
            total["rows_in"] += r["rows_in"]
            total["rows_out"] += r["rows_out"]
            total["seconds"] += r["seconds"]
            room = REMOVED_SAMPLE_SIZE - len(total["removed_sample"])
            total["removed_sample"].extend(r["removed_sample"][: max(room, 0)])
    for total in totals.values():
        total["node"] = node
    for f in chain.filters:
        if (counts := f.take_counts()) and f.stage_name in totals:
            totals[f.stage_name]["counts"] = counts
    out = outputs[0] if len(outputs) == 1 else pa.concat_tables(outputs, promote_options="default")
    return out, list(totals.values())


def group_stages(stages: Sequence[Stage]) -> list[list[Stage]]:
    """Split a pipeline into runs of consecutive stages that need the same CPUs and GPUs
    (their memory needs add up to the largest of them): each run is one Ray operator."""
    groups: list[list[Stage]] = []
    for stage in stages:
        if groups and _slots(groups[-1][-1]) == _slots(stage):
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


def _slots(stage: Stage) -> tuple[float, float]:
    return (stage.resources.cpus, stage.resources.gpus)


def _group_resources(group: Sequence[Stage]) -> Resources:
    if not group:
        return Resources()
    memory = [s.resources.memory_gb for s in group if s.resources.memory_gb]
    first = group[0].resources
    return Resources(cpus=first.cpus, gpus=first.gpus, memory_gb=max(memory) if memory else None)


@dataclass
class _Operator:
    """One Ray operator of a pipeline: a group of stages, and whether it reads the shard
    (first) or writes it (last). A read-only or write-only operator has no stages."""

    stages: list[Stage]
    reads: bool = False
    writes: bool = False

    @property
    def resources(self) -> Resources:
        return _group_resources(self.stages)

    @property
    def stateful(self) -> bool:
        return any(stage.is_stateful for stage in self.stages)

    def describe(self, index: int) -> dict:
        res = self.resources
        names = [name for stage in self.stages for name in _stage_names(stage)]
        return {
            "operator": index,
            "stages": ["read"] * self.reads + names + ["write"] * self.writes,
            "cpus": float(res.cpus),
            "gpus": float(res.gpus),
            "kind": "actors" if self.stateful else "tasks",
            **({"memory_gb": res.memory_gb} if res.memory_gb else {}),
        }


def _plan(stages: Sequence[Stage]) -> list[_Operator]:
    groups = group_stages(stages) or [[]]
    read_fused = _runs_on_one_cpu(groups[0])
    write_fused = _runs_on_one_cpu(groups[-1])
    last = len(groups) - 1
    operators = [] if read_fused else [_Operator([], reads=True)]
    for index, group in enumerate(groups):
        reads = read_fused and index == 0
        operators.append(_Operator(group, reads=reads, writes=write_fused and index == last))
    if not write_fused:
        operators.append(_Operator([], writes=True))
    return operators


def plan_operators(stages: Sequence[Stage]) -> list[dict]:
    """The Ray operators `run_pipeline` runs `stages` as, in pipeline order; no Ray needed.

    One dict per operator: `operator` (its position), `stages` (the stage names it runs,
    a `FilterChain` as its filters' names, with `"read"` first and `"write"` last where the
    operator reads or writes the shard), `cpus` and `gpus` (declared, per worker), `kind`
    (`"actors"`: a pool of long-lived workers; `"tasks"`: Ray tasks), and `memory_gb` when a
    stage declares it. For example, a GPU stage between reading and writing:

        [{"operator": 0, "stages": ["read"], "cpus": 1.0, "gpus": 0.0, "kind": "tasks"},
         {"operator": 1, "stages": ["Embed"], "cpus": 1.0, "gpus": 0.5, "kind": "actors"},
         {"operator": 2, "stages": ["write"], "cpus": 1.0, "gpus": 0.0, "kind": "tasks"}]
    """
    return [operator.describe(index) for index, operator in enumerate(_plan(stages))]


def _runs_on_one_cpu(group: Sequence[Stage]) -> bool:
    """True when reading or writing may share the group's workers: the group needs what a
    reader or a writer needs, one CPU and no GPU."""
    res, default = _group_resources(group), Resources()
    return (res.cpus, res.gpus) == (default.cpus, default.gpus)


def _stage_names(stage: Stage) -> list[str]:
    if isinstance(stage, FilterChain):
        return [f.stage_name for f in stage.filters]
    return [stage.stage_name]


def _actor_cpus(groups: Sequence[Sequence[Stage]], cluster_cpus: float) -> float | None:
    """CPUs per actor when the pipeline's actor pools, one actor each, would take every
    CPU of the cluster and leave none for its task operators (a deadlock on a small
    cluster): the CPUs are shared instead. None when the declared CPUs fit."""
    stateful = [g for g in groups if any(s.is_stateful for s in g)]
    tasks = len(groups) - len(stateful)
    wanted = sum(_group_resources(g).cpus for g in stateful) + (1 if tasks else 0)
    if not stateful or wanted <= cluster_cpus:
        return None
    return max(0.01, (cluster_cpus - (0.5 if tasks else 0)) / len(stateful))


def _pool_size(
    cpus_each: float, gpus_each: float, cluster_cpus: float, cluster_gpus: float, tasks: bool
) -> int:
    """Most workers of one actor pool: the CPUs the cluster has, less one for the task
    operators when there are any (actors hold their CPUs while alive: a pool that took every
    CPU would leave a separate reader or writer none), and no more than the GPUs allow."""
    size = int((cluster_cpus - (1 if tasks else 0)) // max(cpus_each, 0.01))
    if gpus_each and cluster_gpus:
        size = min(size, int(cluster_gpus // gpus_each))
    return max(1, size)


def table_to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_bytes(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


Reader = Callable[[Any], tuple[pa.Table, ...]]
"""read(item) -> (rows, quarantined rows) for one shard; a reader may add a third table,
rows it removed itself (with `removed_by` and `reason`), kept when removed rows are."""

Sink = Callable[..., dict]
"""sink(item, rows, quarantined rows, metrics) -> a small JSON-able result for the driver;
when removed rows are kept, called with `removed=` the shard's removed rows too."""


class _ShardOp:
    """One Ray operator of a pipeline: optionally reads, runs a group of stages, optionally
    writes. Used as a Ray task function (stateless groups) or as an actor class (stateful).
    With `keep_removed`, the rows its stages remove travel with the shard to the sink."""

    def __init__(
        self,
        stages: Sequence[Stage],
        reader: Reader | None,
        sink: Sink | None,
        item_from_dict: Callable[[dict], Any],
        keep_removed: bool = False,
    ):
        self.stages = list(stages)
        self.reader = reader
        self.sink = sink
        self.item_from_dict = item_from_dict
        self.keep_removed = keep_removed
        self._ready = False

    def _setup(self) -> None:
        if not self._ready:
            for stage in self.stages:
                stage.setup()
            self._ready = True

    def __call__(self, row: dict) -> dict:
        if row.get("error"):  # failed in an earlier operator: pass the failure on
            return self._output(row, error=row["error"])
        try:
            return self._process(row)
        except USER_ERRORS as exc:
            # Bad input or parameters: sent to the driver as data, so it raises the same
            # kind of error with the same message (Ray would wrap it in its own exception
            # types, and a retry would fail the same way).
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return self._output(
                row, error=json.dumps({"type": type(exc).__name__, "message": str(message)})
            )

    def _output(self, row: dict, error: str = "", **values) -> dict:
        if self.sink is not None:
            return {"item": row["item"], "result": values.get("result", ""), "error": error}
        return {
            "item": row["item"],
            "table": values.get("table", b""),
            "quarantine": values.get("quarantine", b""),
            "removed": values.get("removed", b""),
            "metrics": values.get("metrics", ""),
            "error": error,
        }

    def _process(self, row: dict) -> dict:
        self._setup()
        node = _node_id()
        item = self.item_from_dict(json.loads(row["item"]))
        metrics = json.loads(row["metrics"]) if row.get("metrics") else []
        gone: list[pa.Table] | None = [] if self.keep_removed else None
        if self.reader is not None:
            start = time.perf_counter()
            table, quarantine, *extra = self.reader(item)
            if gone is not None and extra and extra[0] is not None and extra[0].num_rows:
                gone.append(extra[0])
            metrics.append(
                {
                    "stage": "read",
                    "rows_in": table.num_rows + quarantine.num_rows,
                    "rows_out": table.num_rows,
                    "seconds": time.perf_counter() - start,
                    "node": node,
                    "removed_sample": [],
                }
            )
        else:
            table = table_from_bytes(row["table"])
            quarantine = table_from_bytes(row["quarantine"])
            if gone is not None and row.get("removed"):
                gone.append(table_from_bytes(row["removed"]))
        found: list[pa.Table] = []  # quarantine records of Validator stages
        for stage in self.stages:
            try:
                table, records = run_stage(stage, table, node, found, gone)
            except USER_ERRORS as exc:
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                raise type(exc)(f"stage {stage.stage_name} on {item}: {message}") from exc
            except Exception as exc:
                raise RuntimeError(f"stage {stage.stage_name} failed on {item}: {exc}") from exc
            metrics.extend(records)
        if found:
            quarantine = pa.concat_tables([quarantine, *found], promote_options="default")
        removed = _concat_removed(gone) if gone is not None else None
        if self.sink is not None:
            if removed is None:
                result = self.sink(item, table, quarantine, metrics)
            else:
                result = self.sink(item, table, quarantine, metrics, removed=removed)
            return self._output(row, result=json.dumps(result))
        return self._output(
            row,
            table=table_to_bytes(table),
            quarantine=table_to_bytes(quarantine),
            removed=table_to_bytes(removed) if removed is not None and removed.num_rows else b"",
            metrics=json.dumps(metrics),
        )


def _concat_removed(tables: list[pa.Table]) -> pa.Table:
    """A shard's removed rows in one table (columns that some stages added are null in the
    rows of the others); an empty table when no row was removed."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({REMOVED_BY: pa.array([], pa.string()), REASON: pa.array([], pa.string())})
    return pa.concat_tables(tables, promote_options="permissive")


def _node_id() -> str:
    """The Ray node this runs on; `LOCAL_NODE` in a driver without Ray."""
    if not ray_running():
        return LOCAL_NODE
    import ray

    return ray.get_runtime_context().get_node_id()


LOCAL_NODE = "local"


def _actor_class(args: tuple) -> type:
    """An actor-pool flavour of `_ShardOp` with its stages bound in the class, so that
    `setup()` of every stage runs once, when the actor starts."""

    class _ShardActor(_ShardOp):
        def __init__(self) -> None:
            super().__init__(*args)
            self._setup()

    return _ShardActor


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def run_pipeline(
    items: Sequence[Any],
    reader: Reader,
    stages: Sequence[Stage],
    sink: Sink,
    *,
    item_to_dict: Callable[[Any], dict],
    item_from_dict: Callable[[dict], Any],
    max_workers: int | None = None,
    keep_removed: bool = False,
) -> Iterator[dict]:
    """Run `read -> stages -> sink` over every item (shard); yield each sink result as its
    shard completes (in completion order). On Ray when `uses_ray(len(items))`, else in
    this process, the stages' `setup()` once, item after item. With `keep_removed`, the
    sink also gets each shard's removed rows (`sink(..., removed=table)`)."""
    if not items:
        return
    if not uses_ray(len(items)):
        yield from _run_here(
            items, reader, stages, sink, item_to_dict, item_from_dict, keep_removed
        )
        return
    import ray

    init_ray()
    if not log.isEnabledFor(logging.INFO):
        _quiet_ray_errors()
    operators = _plan(stages)
    if len(operators) == 1:  # nothing to stream between operators: no Ray Data
        yield from _run_one_operator(items, operators[0], reader, sink, item_to_dict,
                                     item_from_dict, max_workers, keep_removed)  # fmt: skip
        return
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    # A shard is one row: never split or merge it.
    ctx.target_max_block_size = 1 << 40
    # Actor pools start their first workers before any shard is dispatched: provisioned
    # asynchronously (Ray Data's default), the first worker to finish `setup()` takes every
    # shard of a short run and the other nodes never take part.
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S

    cpus, gpus = _cluster_cpus(), _cluster_gpus()
    ds = ray.data.from_items(
        [{"item": json.dumps(item_to_dict(item)), "metrics": ""} for item in items],
        override_num_blocks=len(items),
    )
    shared_cpus = _actor_cpus([op.stages for op in operators], cpus)
    if shared_cpus is not None:
        log.warning(
            "the pipeline's %d worker pools need more CPUs than the cluster's %d: "
            "each pool's workers get %.2f CPUs",
            sum(op.stateful for op in operators),
            cpus,
            shared_cpus,
        )
    has_tasks = any(not op.stateful for op in operators)
    for op in operators:
        res = op.resources
        op_reader = reader if op.reads else None
        op_sink = sink if op.writes else None
        args = (op.stages, op_reader, op_sink, item_from_dict, keep_removed)
        op_cpus = shared_cpus if op.stateful and shared_cpus is not None else res.cpus
        ray_args: dict[str, Any] = {"num_cpus": op_cpus}
        if res.gpus:
            ray_args["num_gpus"] = res.gpus
        if res.memory_gb:
            ray_args["memory"] = int(res.memory_gb * (1 << 30))
        if op.stateful:
            workers = max_workers or _pool_size(op_cpus, res.gpus, cpus, gpus, has_tasks)
            # Start with enough workers for the whole cluster to take part when there is
            # work for them (two shards per worker); the pool grows to max_size as input
            # queues up, and a one-shard run starts a single worker.
            max_size = min(workers, len(items))
            min_size = min(max_size, max(1, len(items) // 2))
            ds = ds.map(
                _actor_class(args),
                compute=ray.data.ActorPoolStrategy(min_size=min_size, max_size=max_size),
                **ray_args,
            )
        else:
            ds = ds.map(_ShardOp(*args), **ray_args)
    for row in ds.iter_rows():
        if row.get("error"):
            raise _user_error(json.loads(row["error"]))
        yield json.loads(row["result"])


def _run_one_operator(
    items, op: _Operator, reader, sink, item_to_dict, item_from_dict, max_workers, keep_removed
) -> Iterator[dict]:
    """A pipeline of one operator (reading, its stages and writing fused) on a pool of Ray
    workers (`flows.runtime.pool`), sized as Ray Data's actor pool would be."""
    from flows.runtime.pool import run_pool

    res = op.resources
    cpus, gpus = _cluster_cpus(), _cluster_gpus()
    ray_args: dict[str, Any] = {"num_cpus": res.cpus}
    if res.gpus:
        ray_args["num_gpus"] = res.gpus
    if res.memory_gb:
        ray_args["memory"] = int(res.memory_gb * (1 << 30))
    workers = min(max_workers or _pool_size(res.cpus, res.gpus, cpus, gpus, False), len(items))
    rows = [{"item": json.dumps(item_to_dict(item)), "metrics": ""} for item in items]
    for row in run_pool(
        rows,
        _ShardOp(op.stages, reader, sink, item_from_dict, keep_removed),
        stateful=op.stateful,
        ray_args=ray_args,
        workers=workers,
        min_ready=max(1, len(items) // 2),
        start_timeout=ACTOR_START_TIMEOUT_S,
    ):
        if row.get("error"):
            raise _user_error(json.loads(row["error"]))
        yield json.loads(row["result"])


def _run_here(
    items, reader, stages, sink, item_to_dict, item_from_dict, keep_removed=False
) -> Iterator[dict]:
    """The pipeline in this process: the same operator a Ray worker runs, reading, every
    stage and writing fused; a bad input or parameter raises as it would from Ray."""
    # The only worker: each stage may use every core (a model's threads follow its CPUs).
    cores = planned_workers()
    granted = [_with_cpus(stage, cores) for stage in stages]
    op = _ShardOp(granted, reader, sink, item_from_dict, keep_removed)
    for item in items:
        row = op({"item": json.dumps(item_to_dict(item)), "metrics": ""})
        if row.get("error"):
            raise _user_error(json.loads(row["error"]))
        yield json.loads(row["result"])


def _with_cpus(stage: Stage, cpus: int) -> Stage:
    """`stage`, or a copy of it granted `cpus` CPUs when it asks for fewer."""
    if stage.resources.cpus >= cpus:
        return stage
    granted = copy.copy(stage)
    granted.resources = dataclasses.replace(stage.resources, cpus=float(cpus))
    return granted


def _user_error(error: dict) -> Exception:
    """The driver-side twin of an input or parameter error raised in a worker."""
    kinds: dict[str, type[Exception]] = {
        "InputError": InputError,
        "InputNotFound": InputNotFound,
        "KeyError": KeyError,
        "TypeError": TypeError,
        "FileNotFoundError": FileNotFoundError,
    }
    return kinds.get(error["type"], ValueError)(error["message"])
