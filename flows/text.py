"""`curate_text`: the text curation flow.

    plan shards -> [read -> clean -> heuristic filters -> language -> hash] on Ray
                -> exact dedup (global pass over hash partitions) -> write -> commit -> publish

Each step is a Prefect task with retries; every step is idempotent through the commit
protocol (see `stages.io.commit`): a shard committed by an earlier, interrupted run is not
processed again, and the output version only becomes visible when `_manifest.json` is
written, last.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from flows.runtime import storage
from flows.runtime.engine import RunReport, StageMetrics
from flows.runtime.passes import (
    DUPLICATES,
    EMPTY_QUARANTINE,
    STAGING,
    FinalSink,
    StagingSink,
    commit_and_publish,
    current_progress_hook,
    describe_inputs,
    report_from_manifest,
    run_phase,
    set_progress_hook,
    summary,
    task_options,
    write_all_columns,
    write_reports,
)
from stages.base import FilterChain, Stage
from stages.io.commit import VersionWriter, read_manifest
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards

log = logging.getLogger("curate.text")


class TextParams(BaseModel):
    """Parameters of the text curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="Input files: a path, folder or glob, local or s3:// (JSONL, .jsonl.gz, "
        ".jsonl.zst, Parquet), or the output folder of another curate flow.",
        examples=["s3://raw/cc/*.jsonl.gz", "data/docs.jsonl"],
    )
    output: str = Field(
        description="Output dataset folder, local or s3://. Each run writes a version "
        "folder inside it.",
        examples=["s3://curated/cc", "curated/"],
    )
    filters: Literal["default", "english", "none"] = Field(
        "default",
        description="Heuristic filter recipe: 'default' is NeMo Curator's English recipe.",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="Keep only documents in these languages (ISO 639-1); empty keeps all.",
    )
    clean: bool = Field(True, description="Repair Unicode, normalise whitespace, drop URL lines.")
    dedup: Literal["exact", "fuzzy", "semantic", "none"] = Field(
        "exact",
        description="Remove duplicates, keeping the first: exact (identical text), fuzzy "
        "(near-duplicates: MinHash + LSH on normalised word 5-grams, each removal a "
        "near-duplicate of a kept document) or semantic (MiniLM embeddings, cosine "
        "similarity >= 0.99 within k-means clusters).",
    )
    keep_scores: bool = Field(False, description="Keep each filter's score as a column.")
    text_field: str = Field("text", description="Input field holding the document text.")
    id_field: str = Field("id", description="Input field holding a document id, if any.")
    shard_size_mb: float = Field(32.0, gt=0, description="Target input bytes per shard.")
    dedup_partitions: int = Field(16, ge=1, description="Hash partitions of the dedup pass.")
    strict: bool = Field(False, description="Fail on the first bad input row.")
    version: str | None = Field(
        None, description="Output version name; default: derived from inputs and parameters."
    )


@dataclass
class TextPlan:
    shards: list[Shard]
    inputs: list[dict]
    version: str
    output: str
    parameters: dict


# --------------------------------------------------------------------------- stages


def build_stages(params: TextParams) -> list[Stage]:
    """The stages of one text run, cheapest first: decisions do not depend on the order
    (each filter looks at one document), only the "removed by" counts do."""
    from stages.text.recipes import build_recipe, recipe_spec

    stages: list[Stage] = []
    if params.clean:
        from stages.text.clean import TextCleaner

        stages.append(TextCleaner())
    filters = build_recipe(recipe_spec(params.filters))
    for f in filters:
        f.keep_score = params.keep_scores
    if filters:
        stages.append(FilterChain(filters))
    if params.languages:
        from stages.text.language import LanguageFilter

        stages.append(LanguageFilter(languages=list(params.languages)))
    if params.dedup == "exact":
        from stages.dedup.exact import ExactDedupHash

        stages.append(ExactDedupHash(num_partitions=params.dedup_partitions))
    elif params.dedup in ("fuzzy", "semantic"):
        from flows.dedup import identify_stage

        stages.append(identify_stage(dedup_params(params)))
    return stages


def dedup_params(params: TextParams):
    """The dedup flow's parameters for the fuzzy or semantic step of a text run."""
    from flows.dedup import DedupParams

    if params.dedup == "semantic":
        return DedupParams(
            input=params.input,
            output=params.output,
            method="semantic",
            eps=0.01,
            partitions=params.dedup_partitions,
        )
    return DedupParams(
        input=params.input,
        output=params.output,
        method="fuzzy",
        preset="high_recall",
        verify="estimate",
        clustering="centers",
        partitions=params.dedup_partitions,
    )


def _dedup_plan(plan: TextPlan):
    from flows.dedup import DedupPlan

    return DedupPlan(plan.shards, plan.inputs, plan.version, plan.output, plan.parameters)


class _SidecarStagingSink:
    """Pass 1 of a fuzzy or semantic deduplicated run: the dedup flow's sidecars (LSH keys
    or embeddings, by partition), then the staged rows without them. The staged marker
    comes last, so a shard counted as done always has its sidecars."""

    def __init__(self, params: TextParams, plan: TextPlan, options: dict):
        from flows.dedup import SidecarSink

        self.sidecars = SidecarSink(_dedup_plan(plan).work, dedup_params(params), options)
        self.staging = StagingSink(_staging_root(plan), options)

    def __call__(self, shard, table, quarantine, metrics) -> dict:
        self.sidecars(shard, table, quarantine.slice(0, 0), metrics)
        keys = [c for c in ("_minhash", "_bands", "embedding") if c in table.column_names]
        return self.staging(shard, table.drop_columns(keys), quarantine, metrics)


# --------------------------------------------------------------------------- plan


def plan_text(params: TextParams) -> TextPlan:
    options = storage.storage_options()
    output = storage.normalize_uri(params.output)
    source = (
        params.input if storage.is_remote(params.input) else storage.normalize_uri(params.input)
    )
    shards = plan_shards(source, shard_size_mb=params.shard_size_mb, storage_options=options)
    inputs = describe_inputs(shards, options)
    parameters = params.model_dump(exclude={"version"})
    version = params.version or storage.version_id(inputs, parameters)
    return TextPlan(shards, inputs, version, output, params.model_dump())


def filter_pass(params: TextParams, plan: TextPlan) -> RunReport:
    """Pass 1: read, clean, filter (and hash, for dedup) every shard not yet committed."""
    options = storage.storage_options()
    stages = build_stages(params)
    reader = ShardReader(
        text_field=params.text_field,
        id_field=params.id_field,
        storage_options=options,
        strict=params.strict,
    )
    if params.dedup != "none":
        root = _staging_root(plan)
        sink = (
            StagingSink(root, options)
            if params.dedup == "exact"
            else _SidecarStagingSink(params, plan, options)
        )
        writer = VersionWriter(root, STAGING, storage_options=options)
    else:
        sink = FinalSink(plan.output, plan.version, options)
        writer = VersionWriter(plan.output, plan.version, storage_options=options)
    report = RunReport(shards_total=len(plan.shards))
    done = writer.done_shards()
    for marker in done.values():
        report.add_shard(marker["stats"])
    pending = [s for s in plan.shards if s.key not in done]
    report.shards_skipped = len(plan.shards) - len(pending)

    def read(shard: Shard) -> tuple[pa.Table, pa.Table]:
        result = reader.read(shard)
        return result.table, result.quarantine

    start = time.perf_counter()
    run_phase("filter", pending, read, stages, sink, report)
    report.seconds = time.perf_counter() - start
    return report


def _staging_root(plan: TextPlan) -> str:
    return storage.join(plan.output, plan.version, "_work")


def dedup_pass(params: TextParams, plan: TextPlan) -> tuple[pa.Table, StageMetrics]:
    """Pass 2: find exact duplicates across the whole dataset, one hash partition at a
    time (each partition is one Ray task). Returns the removed rows (`id`, `duplicate_of`,
    `_hash`, `_order`) and the metrics of the dedup step."""
    import ray

    from flows.runtime.engine import init_ray
    from stages.dedup.exact import select_exact_duplicates

    options = storage.storage_options()
    writer = VersionWriter(_staging_root(plan), STAGING, storage_options=options)
    files = [
        storage.join(writer.uri, f["path"])
        for marker in writer.done_shards().values()
        for f in marker["files"]
    ]
    rows_in = 0
    start = time.perf_counter()

    @ray.remote(num_cpus=1)
    def partition_duplicates(partition: int) -> pa.Table:
        parts = []
        for uri in files:
            fs, path = fsspec.core.url_to_fs(uri, **options)
            with fs.open(path, "rb") as f:
                t = pq.read_table(f, columns=["id", "_hash", "_order", "_partition"])
            parts.append(t.filter(pc.equal(t["_partition"], partition)))
        table = pa.concat_tables(parts) if parts else None
        if table is None or table.num_rows == 0:
            return pa.table({"id": pa.array([], pa.string())})
        return select_exact_duplicates(table.drop_columns(["_partition"]))

    init_ray()
    removed_parts = ray.get(
        [partition_duplicates.remote(p) for p in range(params.dedup_partitions)]
    )
    removed_parts = [t for t in removed_parts if t.num_rows]
    removed = (
        pa.concat_tables(removed_parts).sort_by("_order")
        if removed_parts
        else pa.table(
            {
                "id": pa.array([], pa.string()),
                "duplicate_of": pa.array([], pa.string()),
                "_hash": pa.array([], pa.string()),
                "_order": pa.array([], pa.int64()),
            }
        )
    )
    for marker in writer.done_shards().values():
        rows_in += marker["stats"]["rows_written"]
    metrics = StageMetrics(
        "ExactDedup",
        rows_in=rows_in,
        rows_out=rows_in - removed.num_rows,
        seconds=time.perf_counter() - start,
        shards=len(files),
    )
    metrics.removed_sample = [
        {"id": r["id"], "duplicate_of": r["duplicate_of"]}
        for r in removed.slice(0, 10).select(["id", "duplicate_of"]).to_pylist()
    ]
    return removed, metrics


def find_text_duplicates(params: TextParams, plan: TextPlan) -> tuple[pa.Table, StageMetrics]:
    """The global dedup step of a text run: removed rows (with `_order`) and metrics."""
    if params.dedup in ("fuzzy", "semantic"):
        from flows.dedup import find_duplicates

        return find_duplicates(dedup_params(params), _dedup_plan(plan))
    return dedup_pass(params, plan)


def write_pass(params: TextParams, plan: TextPlan, removed: pa.Table) -> RunReport:
    """Pass 3 of a deduplicated run: copy each staged shard into the output version
    without its duplicates, and commit it."""
    options = storage.storage_options()
    staging = VersionWriter(_staging_root(plan), STAGING, storage_options=options)
    staged = staging.done_shards()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    done = final.done_shards()
    report = RunReport(shards_total=len(plan.shards))
    for marker in done.values():
        report.add_shard(marker["stats"])
    pending = [s for s in plan.shards if s.key not in done]
    report.shards_skipped = len(plan.shards) - len(pending)
    drop = pa.array(removed.column("_order").to_numpy(), pa.int64())
    staging_uri = staging.uri

    def read(shard: Shard) -> tuple[pa.Table, pa.Table]:
        marker = staged[shard.key]
        tables = []
        for f in marker["files"]:
            fs, path = fsspec.core.url_to_fs(storage.join(staging_uri, f["path"]), **options)
            with fs.open(path, "rb") as fh:
                tables.append(pq.read_table(fh))
        table = pa.concat_tables(tables)
        table = table.filter(pc.invert(pc.is_in(table["_order"], value_set=drop)))
        quarantine = []
        for f in marker.get("quarantine", []):
            fs, path = fsspec.core.url_to_fs(storage.join(staging_uri, f["path"]), **options)
            with fs.open(path, "rb") as fh:
                quarantine.append(pq.read_table(fh))
        q = pa.concat_tables(quarantine) if quarantine else EMPTY_QUARANTINE
        return table.drop_columns([c for c in table.column_names if c.startswith("_")]), q

    run_phase("write", pending, read, [], FinalSink(plan.output, plan.version, options), report)
    return report


def run_text(params: TextParams, flow_run_id: str | None = None) -> dict:
    """The whole text job without Prefect (the flow below runs the same steps as tasks);
    returns the run summary, as the flow does."""
    plan = plan_text(params)
    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    if final.is_committed():
        manifest = read_manifest(final.uri, storage_options=options)
        return summary(manifest, report_from_manifest(manifest), final.uri, True)
    start = time.perf_counter()
    report = filter_pass(params, plan)
    removed = None
    if params.dedup != "none":
        removed, metrics = find_text_duplicates(params, plan)
        write_report = write_pass(params, plan, removed)
        report.stages[metrics.name] = metrics
        report.rows_written = write_report.rows_written
        report.bytes_written = write_report.bytes_written
    report.seconds = time.perf_counter() - start
    manifest = commit_text(params, plan, report, flow_run_id, removed)
    return summary(manifest, report, final.uri, False)


def commit_text(params, plan, report, flow_run_id, removed) -> dict:
    """Write the side files (duplicates audit, reports), then the manifest, last."""
    from flows.reports.html import score_histograms

    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    extra: dict[str, Any] = {
        "flow": "curate-text",
        "stages": [m.to_dict() for m in report.stages.values()],
    }
    side = []
    if removed is not None:
        columns = [
            c for c in ("id", "cluster", "duplicate_of", "_hash") if c in removed.column_names
        ]
        audit = removed.select(columns).rename_columns([c.lstrip("_") for c in columns])
        nbytes = write_all_columns(audit, storage.join(final.uri, DUPLICATES), options)
        side.append({"path": DUPLICATES, "rows": audit.num_rows, "bytes": nbytes})
    histograms = score_histograms(final.uri, options) if params.keep_scores else None
    side += write_reports(
        "curate-text", report, plan.version, final.uri, flow_run_id, options, histograms
    )
    manifest = final.commit(
        inputs=plan.inputs,
        parameters=plan.parameters,
        code_version=storage.code_version(),
        flow_run_id=flow_run_id,
        extra=extra,
        extra_files=side,
    )
    fs, path = fsspec.core.url_to_fs(_staging_root(plan), **options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    return manifest


# --------------------------------------------------------------------------- Prefect


def _build_flow():
    from prefect import flow, task
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.runtime import flow_run

    retrying = task_options()

    @task(name="plan-shards", **retrying)
    def plan_task(params: TextParams) -> TextPlan:
        return plan_text(params)

    @task(name="filter-shards", **retrying)
    def filter_task(params: TextParams, plan: TextPlan) -> RunReport:
        progress_id = create_progress_artifact(
            progress=0.0, key="curate-text-progress", description="Shards filtered"
        )

        def hook(phase: str, done: int, total: int) -> None:
            if total and phase == "filter":
                update_progress_artifact(progress_id, 100.0 * done / total)
            if _outer_hook:
                _outer_hook(phase, done, total)

        _outer_hook = current_progress_hook()
        set_progress_hook(hook)
        try:
            return filter_pass(params, plan)
        finally:
            set_progress_hook(_outer_hook)

    @task(name="exact-dedup", **retrying)
    def dedup_task(params: TextParams, plan: TextPlan):
        return find_text_duplicates(params, plan)

    @task(name="write-shards", **retrying)
    def write_task(params: TextParams, plan: TextPlan, removed: pa.Table) -> RunReport:
        return write_pass(params, plan, removed)

    @flow(name="curate-text", description="Curate a text corpus: clean, filter, dedup.")
    def curate_text(params: TextParams) -> dict:
        """Clean, filter and deduplicate a text corpus; write Parquet with a manifest."""
        plan = plan_task(params)
        final = VersionWriter(plan.output, plan.version, storage_options=storage.storage_options())
        run_id = str(flow_run.id) if flow_run.id else None
        if final.is_committed():
            manifest = read_manifest(final.uri, storage_options=storage.storage_options())
            return summary(manifest, report_from_manifest(manifest), final.uri, True)
        report = filter_task(params, plan)
        removed = None
        if params.dedup != "none":
            removed, metrics = dedup_task(params, plan)
            written = write_task(params, plan, removed)
            report.stages[metrics.name] = metrics
            report.rows_written = written.rows_written
            report.bytes_written = written.bytes_written

        return commit_and_publish(
            "curate-text",
            "Curated text (Parquet) written by curate-text",
            params,
            plan.output,
            final.uri,
            report,
            lambda: commit_text(params, plan, report, run_id, removed),
            {
                "version": plan.version,
                "rows": report.rows_written,
                "bytes": report.bytes_written,
                "rows_read": report.rows_read,
                "rows_quarantined": report.rows_quarantined,
                "removed_by_stage": {m.name: m.removed for m in report.stages.values()},
            },
        )

    return curate_text


curate_text = _build_flow()
