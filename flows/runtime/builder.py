"""The flow kit: a flow is a declaration, `FlowSpec` (its parameter model, reader, stages,
optional dedup step, writer); `build_flow` turns it into the Prefect flow and `run_flow`
runs the same step sequence without Prefect (benchmarks, notebooks).

    plan shards -> [already committed: return its summary]
                -> process pass on Ray: read -> stages [-> identify duplicates] -> sink
                -> [find duplicates: one Ray task per partition -> write pass]
                -> commit (side files, reports, manifest last) -> publish (asset, artifacts)

The sequence is written once, in `execute`; a `Runner` says how each step runs: as a
Prefect task with retries (the flow) or as a plain call. Every step is idempotent through
the commit protocol (`stages.io.commit`): shards committed by an interrupted run are not
processed again, and the output version becomes visible only with `_manifest.json`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flows.runtime import signals, storage
from flows.runtime.engine import RunReport, planned_workers, removed_table
from flows.runtime.params import UNVERSIONED, FlowParams
from flows.runtime.passes import (
    DUPLICATES,
    ShardSink,
    current_progress_hook,
    describe_inputs,
    report_from_manifest,
    run_phase,
    set_progress_hook,
    shard_result,
    summary,
    task_options,
    write_removed,
    write_reports,
)
from flows.steps.dedup import (
    METRIC_NAMES,
    SIDECAR_COLUMNS,
    Dedup,
    audit_table,
    write_by_partition,
)
from stages.base import Stage
from stages.io.commit import VersionWriter, read_manifest
from stages.io.fs import filesystem, read_parquet
from stages.io.ids import duplicate_ids
from stages.io.read import ShardReader, empty_quarantine
from stages.io.shards import Shard, plan_inputs
from stages.io.write import write_parquet

STAGED = "staged"  # the process pass's version folder under <version>/_work when deduplicating


def _none(params: Any) -> None:
    return None


def _no_stages(params: Any) -> list[Stage]:
    return []


def _parquet(params: Any) -> str:
    return "parquet"


def _no_histograms(params: Any) -> bool:
    return False


@dataclass(frozen=True)
class FlowSpec:
    """One flow, declared. Each callable takes the flow's parameters (an instance of
    `params`).

    - `key`: the `curate <key>` subcommand, the deployment key and its environment prefix.
    - `name`: the Prefect flow name (`curate-<key>`); `description`: one line for the CLI
      help and the Prefect UI; `asset`: what the output dataset is, for its Prefect asset.
    - `reader`: a `ShardReader`; `input_format`: the reader format for every input file
      (None: by extension); `stages`: the pipeline; `dedup`: an optional global dedup step;
      `writer`: the dataset writer's name (parquet, webdataset, manifest) or a writer.
    - `check(params, shards)`: parameter checks that need the planned input (a column that
      the input lacks), run before any work.
    - `histograms`: whether the HTML report draws score histograms.
    - `cron`, `deployment`: the nightly schedule and the deployment's default parameters.
    """

    key: str
    params: type[FlowParams]
    description: str
    reader: Callable[[Any], ShardReader]
    stages: Callable[[Any], list[Stage]] = _no_stages
    dedup: Callable[[Any], Dedup | None] = _none
    writer: Callable[[Any], Any] = _parquet
    input_format: Callable[[Any], str | None] = _none
    check: Callable[[Any, list[Shard]], None] | None = None
    histograms: Callable[[Any], bool] = _no_histograms
    asset: str = ""
    cron: str = "0 2 * * *"
    deployment: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"curate-{self.key}"

    @property
    def attribute(self) -> str:
        """The module attribute holding the built flow: `curate_<key>`."""
        return f"curate_{self.key.replace('-', '_')}"


@dataclass
class Plan:
    """What one run works on: its shards, their description, the output version, and
    what the inputs' folders hold that it does not read (`{"path", "reason"}` each)."""

    shards: list[Shard]
    inputs: list[dict]
    version: str
    output: str
    parameters: dict
    skipped_inputs: list[dict] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return storage.join(self.output, self.version)

    @property
    def work(self) -> str:
        """Intermediate files of a deduplicated run, removed at commit."""
        return storage.join(self.output, self.version, "_work")


# --------------------------------------------------------------------------- steps


def plan_run(spec: FlowSpec, params: FlowParams) -> Plan:
    """Shards of the input, the inputs' description and the output version's name. The
    locations are checked first, before any work: valid Prefect asset keys, an existing
    bucket, an output outside the input folder. The version hashes the locations as
    absolute URIs, so `big`, `./big` and `/abs/big/` name the same version."""
    options = storage.storage_options()
    source = (
        params.input if storage.is_remote(params.input) else storage.normalize_uri(params.input)
    )
    output = storage.normalize_uri(params.output)
    storage.check_asset_keys(source, output)
    storage.check_bucket(output, options, create=params.create_bucket)
    storage.check_output_outside_input(storage.normalize_uri(source), output, options)
    shards, skipped = plan_inputs(
        source,
        shard_size_mb=params.shard_size_mb,
        storage_options=options,
        parallelism=planned_workers(),
        index_dir=storage.join(output, "_index"),
        **_format_argument(spec.input_format(params)),
    )
    if spec.check is not None:
        spec.check(params, shards)
    inputs = describe_inputs(shards, options)
    locations = {"input": storage.normalize_uri(params.input), "output": output}
    parameters = {**params.model_dump(exclude=UNVERSIONED), **locations}
    version = params.version or storage.version_id(inputs, parameters)
    return Plan(shards, inputs, version, output, {**params.model_dump(), **locations}, skipped)


def _format_argument(name: str | None) -> dict:
    return {"format": name} if name else {}


def _writer(spec: FlowSpec, params: FlowParams):
    from stages.io.writers import DatasetWriter, dataset_writer

    writer = spec.writer(params)
    return writer if isinstance(writer, DatasetWriter) else dataset_writer(writer)


def process_pass(spec: FlowSpec, params: FlowParams, plan: Plan) -> RunReport:
    """Pass 1: read every shard not yet committed and run the flow's stages on it (and the
    dedup step's identify stage last); commit it to the output version, or, when the run
    deduplicates, to the work folder with the dedup step's sidecars. With `keep_removed`,
    the rows the stages removed are committed with the shard (`removed/`)."""
    options = storage.storage_options()
    stages = spec.stages(params)
    dedup = spec.dedup(params)
    if dedup is not None:
        identify = dedup.identify_stage()
        sink = DedupSink(plan.work, dedup, restage=bool(stages), options=options)
        stages = [*stages, *([identify] if identify else [])]
        writer = VersionWriter(plan.work, STAGED, storage_options=options)
    else:
        sink = ShardSink(plan.output, plan.version, _writer(spec, params), options)
        writer = VersionWriter(plan.output, plan.version, storage_options=options)
    read = _reading(spec.reader(params))
    return _run_pending("process", plan, writer, read, stages, sink, params.keep_removed)


def _reading(reader: ShardReader):
    def read(shard: Shard) -> tuple[pa.Table, pa.Table]:
        result = reader.read(shard)
        return result.table, result.quarantine

    return read


def _run_pending(
    phase, plan: Plan, writer: VersionWriter, read, stages, sink, keep_removed: bool = False
) -> RunReport:
    """Run `read -> stages -> sink` over the plan's shards that `writer` has not committed;
    the report counts the committed ones too."""
    report = RunReport(shards_total=len(plan.shards))
    done = _still_done(writer, plan.shards)
    for marker in done.values():
        report.add_shard(marker["stats"])
    pending = [s for s in plan.shards if s.key not in done]
    report.shards_skipped = len(plan.shards) - len(pending)
    start = time.perf_counter()
    try:
        run_phase(phase, pending, read, stages, sink, report, keep_removed)
    except signals.RunStopped as stop:
        stop.done = len(writer.done_shards())  # exact now: Ray is down, no shard in flight
        raise
    report.seconds = time.perf_counter() - start
    return report


def _still_done(writer: VersionWriter, shards: list[Shard]) -> dict[str, dict]:
    """The committed shards of `writer` that this plan has, with the same range. A file's
    ranges depend on the number of workers (`plan_inputs`' parallelism): a run resumed
    with another number re-runs the shards whose range changed (their files are
    overwritten, and files no marker lists go at commit)."""
    planned = {shard.key: [shard.start, shard.end] for shard in shards}
    done = writer.done_shards()
    for key, marker in list(done.items()):
        if marker.get("stats", {}).get("range", [0, None]) != planned.get(key):
            writer.forget_shard(key)
            del done[key]
    return done


class DedupSink:
    """The process pass of a deduplicated run: the dedup step's sidecars and, when the
    flow's stages changed the rows (`restage`), the rows themselves (with `_order`), then
    the shard's marker, last, so a shard counted as done always has its sidecars. Rows
    the stages removed, when the run keeps them, wait in `removed/` for the write pass."""

    def __init__(self, work: str, dedup: Dedup, restage: bool, options: dict):
        self.work, self.dedup, self.restage, self.options = work, dedup, restage, options

    def __call__(
        self,
        shard: Shard,
        table: pa.Table,
        quarantine: pa.Table,
        metrics: list,
        removed: pa.Table | None = None,
    ) -> dict:
        version = VersionWriter(self.work, STAGED, storage_options=self.options)
        files = self.dedup.write_sidecars(version.uri, shard.key, table, self.options)
        rows = table.drop_columns([c for c in SIDECAR_COLUMNS if c in table.column_names])
        if self.restage:
            rel = f"rows-{shard.key}.parquet"
            nbytes = write_by_partition(rows, storage.join(version.uri, rel), self.options)
            files.append({"path": rel, "rows": rows.num_rows, "bytes": nbytes})
        bad = [version.write_quarantine(shard.key, quarantine)] if quarantine.num_rows else []
        gone = write_removed(version, shard.key, removed)
        result = shard_result(shard, rows, quarantine, metrics, [], gone)
        version.commit_shard(shard.key, files, result, quarantine=bad, removed=gone)
        return result


def _staged_files(staged: dict[str, dict], plan: Plan, kind: str) -> dict[str, str]:
    """Relative path -> URI of every `kind` file ("docs", "keys" or "rows"), from the
    markers of the process pass (`staged`)."""
    root = storage.join(plan.work, STAGED)
    return {
        f["path"]: storage.join(root, f["path"])
        for _, marker in sorted(staged.items())
        for f in marker["files"]
        if f["path"].startswith(kind + "-")
    }


def find_duplicates(spec: FlowSpec, params: FlowParams, plan: Plan):
    """The global dedup step: (removed rows with `_order`, the step's metrics)."""
    dedup = spec.dedup(params)
    options = storage.storage_options()
    staged = VersionWriter(plan.work, STAGED, storage_options=options).done_shards()
    sidecars = {kind: _staged_files(staged, plan, kind) for kind in ("docs", "keys")}
    rows_in = sum(m["stats"]["rows_written"] for m in staged.values())
    rows = _staged_files(staged, plan, "rows")
    if rows:
        texts_of = _StagedTexts(list(rows.values()), dedup.column, options)
    else:
        texts_of = _InputTexts(spec.reader(params), plan.shards, dedup.column)
    try:
        return dedup.find(sidecars, rows_in, texts_of)
    except signals.RunStopped as stop:
        stop.phase, stop.done, stop.total = "find-duplicates", len(staged), len(plan.shards)
        raise


class _StagedTexts:
    """The compared column of some rows, from the staged rows."""

    def __init__(self, uris: list[str], column: str, options: dict):
        self.uris, self.column, self.options = uris, column, options

    def __call__(self, orders: pa.Array) -> dict[int, str]:
        texts: dict[int, str] = {}
        for uri in self.uris:
            table = read_parquet(uri, self.options, columns=["_order", self.column])
            table = table.filter(pc.is_in(table.column("_order"), value_set=orders))
            texts.update(_pairs(table))
        return texts


class _InputTexts:
    """The compared column of some rows, read again from their input shards."""

    def __init__(self, reader: ShardReader, shards: list[Shard], column: str):
        self.reader, self.shards, self.column = reader, shards, column

    def __call__(self, orders: pa.Array) -> dict[int, str]:
        wanted = set(pc.shift_right(orders, 32).to_numpy().tolist())
        texts: dict[int, str] = {}
        for shard in self.shards:
            if shard.file_index not in wanted:
                continue
            table = self.reader.read(shard).table.select(["_order", self.column])
            table = table.filter(pc.is_in(table.column("_order"), value_set=orders))
            texts.update(_pairs(table))
        return texts


def _pairs(table: pa.Table):
    """(`_order`, text) of a two-column table."""
    return zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)


def write_pass(spec: FlowSpec, params: FlowParams, plan: Plan, removed: pa.Table) -> RunReport:
    """Pass 2 of a deduplicated run: each shard without its duplicates (the staged rows, or
    the input read again when no stage changed it), written and committed. With
    `keep_removed`, the shard's `removed/` holds the rows its stages removed (staged by
    the process pass) and its duplicates, each `duplicate of <id>`."""
    options = storage.storage_options()
    drop = pa.array(removed.column("_order").to_numpy(), pa.int64())
    keep_removed = params.keep_removed
    found = _duplicates_found(removed) if keep_removed else None
    dedup_name = spec.dedup(params).name if keep_removed else ""
    staged = VersionWriter(plan.work, STAGED, storage_options=options).done_shards()
    root = storage.join(plan.work, STAGED)
    restaged = bool(_staged_files(staged, plan, "rows"))
    reader = spec.reader(params)

    def read(shard: Shard) -> tuple[pa.Table, ...]:
        marker = staged[shard.key]
        if restaged:
            parts = [
                read_parquet(storage.join(root, f["path"]), options)
                for f in marker["files"]
                if f["path"].startswith("rows-")
            ]
            table = pa.concat_tables(parts)
            quarantine = [
                read_parquet(storage.join(root, f["path"]), options)
                for f in marker.get("quarantine", [])
            ]
            quarantine = pa.concat_tables(quarantine) if quarantine else empty_quarantine()
        else:
            result = reader.read(shard)
            table, quarantine = result.table, result.quarantine
        duplicate = pc.is_in(table["_order"], value_set=drop)
        kept = table.filter(pc.invert(duplicate))
        if not keep_removed:
            return kept, quarantine
        gone = [
            read_parquet(storage.join(root, f["path"]), options) for f in marker.get("removed", [])
        ]
        gone = [*gone, _as_duplicates(table.filter(duplicate), found, dedup_name)]
        gone = [t for t in gone if t.num_rows]
        return (
            kept,
            quarantine,
            pa.concat_tables(gone, promote_options="permissive") if gone else None,
        )

    final = VersionWriter(plan.output, plan.version, storage_options=options)
    sink = ShardSink(plan.output, plan.version, _writer(spec, params), options)
    return _run_pending("write", plan, final, read, [], sink, keep_removed)


def _duplicates_found(removed: pa.Table) -> pa.Table:
    """What the write pass needs to say why each duplicate went: its `_order`, the id it
    duplicates, and the step (`method`) and `similarity` when the dedup step tells them."""
    wanted = ("_order", "duplicate_of", "method", "similarity")
    return removed.select([c for c in wanted if c in removed.column_names])


def _as_duplicates(rows: pa.Table, found: pa.Table, dedup_name: str) -> pa.Table:
    """`rows` (duplicates the write pass drops) as removed rows: `removed_by` the dedup
    step, `reason` "duplicate of <id>" (with the cosine similarity for semantic dedup)."""
    if not rows.num_rows:
        return rows
    where = pc.index_in(rows.column("_order"), value_set=found.column("_order"))
    of = found.column("duplicate_of").take(where).to_pylist()
    reasons = [f"duplicate of {kept}" for kept in of]
    if "similarity" in found.column_names:
        similar = found.column("similarity").take(where).to_pylist()
        reasons = [
            f"{why} (similarity {s:.4f})" if s is not None else why
            for why, s in zip(reasons, similar, strict=True)
        ]
    by: str | list[str] = dedup_name
    if "method" in found.column_names:
        methods = found.column("method").take(where).to_pylist()
        by = [METRIC_NAMES.get(m, dedup_name) for m in methods]
    return removed_table(rows, by, reasons)


def commit(spec: FlowSpec, params, plan: Plan, report: RunReport, removed, run_id) -> dict:
    """Write the side files (duplicates audit, reports), then the manifest, last; remove
    the work folder."""
    from flows.reports.html import score_histograms

    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    report.skipped_inputs = plan.skipped_inputs
    extra: dict[str, Any] = {
        "flow": spec.name,
        "stages": [m.to_dict() for m in report.stages.values()],
        "operators": report.operators,
        "rows_read": report.rows_read,
        "blank_lines": report.blank_lines,
        "seconds": round(report.seconds, 3),
        "phases": {name: round(t, 3) for name, t in report.phases.items()},
    }
    for metrics in report.stages.values():
        extra.update(metrics.details)  # step figures (an eps table) at the top, for users
    side = []
    if removed is not None:
        audit = audit_table(removed, plan.shards)
        path = storage.join(final.uri, DUPLICATES)
        side.append(
            {
                "path": DUPLICATES,
                "rows": audit.num_rows,
                "bytes": write_parquet(audit, path, options),
            }
        )
        dedup = spec.dedup(params)
        report.duplicates_removed, report.dedup_stage = audit.num_rows, dedup.name
        extra["duplicates_removed"] = audit.num_rows
        extra["dedup"] = dedup.method
        extra["dedup_stage"] = dedup.name
    # Ids are never changed, so ids shared by several rows are reported.
    markers = final.done_shards()
    data = [
        storage.join(final.uri, f["path"]) for k in sorted(markers) for f in markers[k]["files"]
    ]
    report.duplicate_ids = extra["duplicate_ids"] = duplicate_ids(data, options)
    histograms = score_histograms(final.uri, options) if spec.histograms(params) else None
    side += write_reports(spec.name, report, plan.version, final.uri, run_id, options, histograms)
    manifest = final.commit(
        inputs=plan.inputs,
        parameters=plan.parameters,
        code_version=storage.code_version(),
        flow_run_id=run_id,
        extra=extra,
        extra_files=side,
        skipped_inputs=plan.skipped_inputs,
    )
    fs, path = filesystem(plan.work, options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    return manifest


# --------------------------------------------------------------------------- the sequence


def execute(spec: FlowSpec, params: FlowParams, runner: Runner) -> dict:
    """Every flow's step sequence, written once; returns the run summary. The report's
    `phases` are the wall seconds of each step, `ray-start` those spent starting Ray (in
    the step that needed it first): the fixed costs apart from the work per row."""
    from flows.runtime import engine

    start = time.perf_counter()
    ray_before = engine.ray_start_seconds[0]
    phases: dict[str, float] = {}

    def timed(name: str, fn: Callable, *args):
        began = time.perf_counter()
        try:
            return runner.step(name, fn, *args)
        finally:
            phases[name] = time.perf_counter() - began

    plan = timed("plan-shards", plan_run, spec, params)
    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    if final.is_committed():
        manifest = read_manifest(final.uri, options)
        done = summary(manifest, report_from_manifest(manifest), final.uri, True)
        return check_written(done, params)
    report = timed("process-shards", process_pass, spec, params, plan)
    removed = None
    if spec.dedup(params) is not None:
        removed, metrics = timed("find-duplicates", find_duplicates, spec, params, plan)
        written = timed("write-shards", write_pass, spec, params, plan, removed)
        report.stages[metrics.name] = metrics
        report.rows_written = written.rows_written
        report.bytes_written = written.bytes_written
        report.removed_kept = written.removed_kept  # the stages' removed rows and duplicates
    report.operators = _operators(spec, params)
    report.seconds = time.perf_counter() - start
    report.phases = {**phases, "ray-start": engine.ray_start_seconds[0] - ray_before}
    signals.raise_if_stopped("commit", len(plan.shards), len(plan.shards))
    manifest = runner.commit(
        spec, params, plan, lambda run_id: commit(spec, params, plan, report, removed, run_id)
    )
    runner.publish(spec.name, report, manifest, final.uri)
    return check_written(summary(manifest, report, final.uri, False), params)


class NothingWritten(RuntimeError):
    """A committed run in which every input row was quarantined: the quarantine is published
    (it says why), and the run fails so that a schedule, Prefect and the CLI all see it."""


def check_written(done: dict, params: FlowParams) -> dict:
    """The run summary, or `NothingWritten` when every input row was quarantined and the
    params do not `allow_empty`."""
    report = done["report"]
    read = next((s for s in report["stages"] if s["stage"] == "read"), None)
    good = read["rows_out"] if read else report["rows_read"]  # rows that were not bad
    if params.allow_empty or good or report["rows_written"] or not report["rows_quarantined"]:
        return done
    raise NothingWritten(
        f"no row was written: every input row ({report['rows_quarantined']}) was "
        f"quarantined (reasons in {done['output']}/quarantine/); --allow-empty "
        "accepts such a run"
    )


def _operators(spec: FlowSpec, params: FlowParams) -> list[dict]:
    """How the process pass ran on Ray: the operators and what each ran."""
    from flows.runtime import engine

    plan_operators = getattr(engine, "plan_operators", None)
    if plan_operators is None:
        return []
    stages = spec.stages(params)
    dedup = spec.dedup(params)
    identify = dedup.identify_stage() if dedup is not None else None
    return plan_operators([*stages, *([identify] if identify else [])])


class Runner:
    """Runs the steps of `execute` as plain calls."""

    def step(self, name: str, fn: Callable, *args):
        return fn(*args)

    def commit(self, spec: FlowSpec, params, plan: Plan, fn: Callable[[str | None], dict]):
        return fn(None)

    def publish(self, flow_name: str, report: RunReport, manifest: dict, uri: str) -> None:
        pass


class PrefectRunner(Runner):
    """Runs each step as a Prefect task (retries on infrastructure failures); the commit
    materializes the output dataset as a Prefect asset; artifacts go with the run."""

    def __init__(self, tasks: dict[str, Callable]):
        self.tasks = tasks

    def step(self, name: str, fn: Callable, *args):
        return self.tasks[name](fn, *args)

    def commit(self, spec: FlowSpec, params, plan: Plan, fn: Callable[[str | None], dict]):
        from prefect.assets import Asset, AssetProperties, materialize
        from prefect.runtime import flow_run

        run_id = str(flow_run.id) if flow_run.id else None
        asset = Asset(
            key=storage.asset_key(plan.output),
            properties=AssetProperties(
                name=plan.output.rsplit("/", 1)[-1],
                description=spec.asset or f"Written by {spec.name}",
            ),
        )

        @materialize(asset, asset_deps=[storage.asset_key(params.input)], **task_options())
        def commit_dataset() -> dict:
            manifest = fn(run_id)
            extra = manifest.get("extra", {})
            asset.add_metadata(
                {
                    "version": manifest["version"],
                    "rows": manifest["rows"],
                    "bytes": manifest["bytes"],
                    "rows_read": extra.get("rows_read"),
                    "rows_quarantined": manifest.get("quarantined_rows"),
                    "removed_by_stage": {s["stage"]: s["removed"] for s in extra.get("stages", [])},
                }
            )
            return manifest

        return commit_dataset()

    def publish(self, flow_name: str, report: RunReport, manifest: dict, uri: str) -> None:
        from flows.reports.artifacts import publish_artifacts

        publish_artifacts(flow_name, report, manifest, uri)


def _step_task(name: str, flow_name: str):
    """A Prefect task running one step; the process step also keeps a progress artifact."""
    from prefect import task
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    def run_step(fn: Callable, *args):
        if name != "process-shards":
            return fn(*args)
        progress_id = create_progress_artifact(
            progress=0.0, key=f"{flow_name}-progress", description="Shards processed"
        )
        outer = current_progress_hook()

        def hook(phase: str, done: int, total: int) -> None:
            if total and phase == "process":
                update_progress_artifact(progress_id, 100.0 * done / total)
            if outer:
                outer(phase, done, total)

        set_progress_hook(hook)
        try:
            return fn(*args)
        finally:
            set_progress_hook(outer)

    return task(name=name, **task_options())(run_step)


STEPS = ("plan-shards", "process-shards", "find-duplicates", "write-shards")


def build_flow(spec: FlowSpec, module: str, register_flow: bool = True):
    """The Prefect flow of a declaration, named `curate-<key>`, taking one parameter,
    `params` (the model: the UI renders it as a form). `module` is the declaring module's
    `__name__`: deployments import the flow as `<module>:curate_<key>`. The flow is
    registered (a `curate` subcommand and a deployment) unless `register_flow` is False."""
    from prefect import flow

    tasks = {name: _step_task(name, spec.name) for name in STEPS}

    def run(params):
        from prefect.states import Cancelled

        signals.rearm()  # the CLI's Ctrl-C/SIGTERM handling, over the flow engine's
        try:
            return execute(spec, params, PrefectRunner(tasks))
        except signals.RunStopped as stop:
            # Asked for, not a crash: the run is Cancelled (the CLI raises `stop` again).
            return Cancelled(message=str(stop))

    run.__annotations__ = {"params": spec.params, "return": dict}
    run.__name__ = run.__qualname__ = spec.attribute
    run.__module__ = module
    run.__doc__ = spec.description
    built = flow(name=spec.name, description=spec.description)(run)
    if register_flow:
        register(spec, module)
    return built


def run_flow(spec: FlowSpec, params: FlowParams) -> dict:
    """The flow's steps without Prefect; returns the run summary, as the flow does."""
    return execute(spec, params, Runner())


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[FlowSpec, str]] = {}
BUILTIN = (
    "flows.text",
    "flows.dedup",
    "flows.image",
    "flows.video",
    "flows.audio",
    "flows.thresholds",
)


def register(spec: FlowSpec, module: str) -> None:
    """Make a declared flow a `curate` subcommand and a deployment."""
    _REGISTRY[spec.key] = (spec, module)


def unregister(key: str) -> None:
    _REGISTRY.pop(key, None)


def registered() -> dict[str, tuple[FlowSpec, str]]:
    """Every declared flow: key -> (spec, module), the built-in flows first, in order."""
    import importlib

    for module in BUILTIN:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(BUILTIN)}
    ordered = sorted(_REGISTRY.items(), key=lambda item: rank.get(item[1][1], len(rank)))
    return dict(ordered)
