"""What every flow does with shards: run a pass of stages over them into a dataset version
(skipping shards an earlier run committed), write and commit shards, describe inputs,
tell infrastructure failures (worth a retry) from bad input (not), and summarise a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from flows.runtime import signals, storage
from flows.runtime.engine import (
    USER_ERRORS,
    RunReport,
    StageMetrics,
    init_ray,
    run_pipeline,
    shutdown_ray,
    uses_ray,
)
from stages.base import Stage
from stages.io.commit import VersionWriter
from stages.io.fs import filesystem, write_bytes_atomic
from stages.io.shards import Shard

log = logging.getLogger("curate.passes")

ProgressHook = Callable[[str, int, int], None]
"""progress(phase, done, total): called as shards complete."""

_progress_hook: ProgressHook | None = None


def current_progress_hook() -> ProgressHook | None:
    return _progress_hook


def set_progress_hook(hook: ProgressHook | None) -> None:
    """Let a front end (the CLI's progress bar) follow long runs."""
    global _progress_hook
    _progress_hook = hook


def describe_inputs(shards: list[Shard], options: dict) -> list[dict]:
    """Each input file once, with its size (so a changed input makes a new version)."""
    described: dict[str, dict] = {}
    for uri in (u for shard in shards for u in shard.uris):  # a file collection has many
        if uri in described:
            continue
        fs, path = filesystem(uri, options)
        try:
            info = fs.info(path)
        except FileNotFoundError:  # a dangling link: its reader quarantines it
            info = {}
        entry = {"uri": uri, "size": int(info.get("size") or 0)}
        etag = info.get("ETag") or info.get("mtime")
        if etag is not None:
            entry["etag"] = str(etag)
        described[uri] = entry
    return list(described.values())


class ShardSink:
    """Writes a shard's rows (with the flow's dataset writer: Parquet, WebDataset, a JSONL
    manifest), its quarantined rows and, when the run keeps them, the rows its stages
    removed (`removed/`) into the output version, then commits the shard: its marker is
    written after its files."""

    def __init__(self, output: str, version: str, writer, options: dict):
        self.output, self.version, self.writer, self.options = output, version, writer, options

    def __call__(
        self,
        shard: Shard,
        table: pa.Table,
        quarantine: pa.Table,
        metrics: list,
        removed: pa.Table | None = None,
    ) -> dict:
        version = VersionWriter(self.output, self.version, storage_options=self.options)
        files = self.writer.write_shard(version, shard, table) if table.num_rows else []
        bad = [version.write_quarantine(shard.key, quarantine)] if quarantine.num_rows else []
        gone = write_removed(version, shard.key, removed)
        result = shard_result(shard, table, quarantine, metrics, files, gone)
        version.commit_shard(shard.key, files, result, quarantine=bad, removed=gone)
        return result


def write_removed(version: VersionWriter, shard_key: str, removed: pa.Table | None) -> list:
    """A shard's removed rows written to `removed/` of `version`: the entries for its
    marker (none when no row was removed or the run does not keep them)."""
    if removed is None or not removed.num_rows:
        return []
    return [version.write_removed(shard_key, removed)]


def shard_result(shard, table, quarantine, metrics, files, removed=()) -> dict:
    """A committed shard's counts. `rows_read`: every row its reader saw, the good ones
    and the quarantined ones (`rows_quarantined`: the rows the `quarantine_records` stand
    for); the read stage's `rows_in` says the same. Blank lines are counted apart.
    `removed_kept`: the removed rows written to `removed/` (the entries `removed`)."""
    from flows.runtime.engine import READ_STAGE
    from stages.io.quarantine import blank_lines, quarantine_counts

    quarantined, records = quarantine_counts(quarantine)
    read = next((m for m in metrics if m["stage"] == READ_STAGE), None)
    good = read["rows_out"] if read else table.num_rows
    # Rows a Validator stage quarantined were read as good rows: counted once.
    later = sum(m.get("rows_quarantined", 0) for m in metrics if m["stage"] != READ_STAGE)
    if read is not None:
        read["rows_in"] = good + quarantined - later
    return {
        "shard": shard.key,
        "range": [getattr(shard, "start", 0), getattr(shard, "end", None)],
        "rows_read": good + quarantined - later,
        "rows_quarantined": quarantined,
        "quarantine_records": records,
        "blank_lines": blank_lines(quarantine),
        "rows_written": table.num_rows,
        "bytes_written": sum(f["bytes"] for f in files),
        **({"removed_kept": sum(f["rows"] for f in removed)} if removed else {}),
        "metrics": metrics,
    }


def run_phase(
    phase: str,
    shards: list[Shard],
    reader,
    stages: list[Stage],
    sink,
    report: RunReport,
    keep_removed: bool = False,
) -> None:
    """Run `read -> stages -> sink` over `shards`, folding each committed shard into
    `report` (with `keep_removed`, the sink gets each shard's removed rows); progress
    goes to the Prefect run's log (the UI shows it) and to the front end's progress hook.
    A stop asked for by the CLI's Ctrl-C or SIGTERM handling (`flows.runtime.signals`)
    ends the pass between shards: Ray is shut down and `RunStopped` raised."""
    total = len(shards)
    done = 0
    logger = _run_logger()
    if _progress_hook:
        _progress_hook(phase, 0, total)
    if total:
        logger.info(
            "%s: %d shards to process (%d already committed)", phase, total, report.shards_skipped
        )
    committed = report.shards_skipped
    results = None
    try:
        signals.raise_if_stopped(phase, committed, committed + total)
        if total and uses_ray(total):
            init_ray()  # outside the wait below: a stop never lands in the middle of ray.init
        results = run_pipeline(
            shards,
            reader,
            stages,
            sink,
            item_to_dict=Shard.to_dict,
            item_from_dict=Shard.from_dict,
            keep_removed=keep_removed,
        )
        while True:
            with signals.waiting_for_shards():  # a Ctrl-C or SIGTERM stops the run here
                result = next(results, None)
            if result is None:
                break
            report.add_shard(result)
            done += 1
            if done == total or done % max(1, total // 20) == 0:
                funnel = ", ".join(
                    f"{m.name} {m.rows_in}->{m.rows_out} ({m.rows_per_second:.0f} rows/s)"
                    for m in report.stages.values()
                )
                logger.info("%s: %d/%d shards; %s", phase, done, total, funnel)
            if _progress_hook:
                _progress_hook(phase, done, total)
    except signals.RunStopped as stop:
        # No new shard starts: Ray goes down with the shards in flight, whose files a
        # re-run overwrites (their markers, written last, are missing).
        if results is not None:
            results.close()
        shutdown_ray()
        stop.phase, stop.done, stop.total = phase, committed + done, committed + total
        logger.warning("%s: stopped by a signal after %d/%d shards", phase, done, total)
        raise


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow or task run (its lines reach the API and
    the UI), this module's logger elsewhere."""
    try:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            return get_run_logger()
        except MissingContextError:
            return log
    except ImportError:
        return log


DUPLICATES = "duplicates.parquet"
REPORT = "report.md"


def write_reports(
    flow_name: str,
    report: RunReport,
    version: str,
    version_uri: str,
    flow_run_id: str | None,
    options: dict,
    histograms: dict | None = None,
) -> list[dict]:
    """Write `report.md` and `report.html` into a version before its manifest; returns
    their entries for the manifest's `extra_files`."""
    from flows.reports.html import REPORT_HTML, html_report
    from flows.reports.tables import markdown_report

    about = {"version": version, "code_version": storage.code_version(), "flow_run_id": flow_run_id}
    side = []
    for name, text in (
        (REPORT, markdown_report(flow_name, report, about, version_uri)),
        (REPORT_HTML, html_report(flow_name, report, about, version_uri, histograms=histograms)),
    ):
        nbytes = write_bytes_atomic(storage.join(version_uri, name), text.encode(), options)
        side.append({"path": name, "rows": 0, "bytes": nbytes})
    return side


def report_from_manifest(manifest: dict) -> RunReport:
    """The report of a committed version, from its manifest (a re-run prints it)."""
    extra = manifest.get("extra", {})
    report = RunReport(
        shards_total=len(manifest.get("shards", {})),
        rows_read=extra.get("rows_read", 0),
        rows_quarantined=manifest.get("quarantined_rows", 0),
        quarantine_records=manifest.get("quarantine_records", manifest.get("quarantined_rows", 0)),
        blank_lines=extra.get("blank_lines", 0),
        duplicates_removed=extra.get("duplicates_removed", 0),
        dedup_stage=extra.get("dedup_stage", ""),
        duplicate_ids=extra.get("duplicate_ids", {}),
        skipped_inputs=manifest.get("skipped_inputs", []),
        rows_written=manifest.get("rows", 0),
        bytes_written=manifest.get("bytes", 0),
        seconds=extra.get("seconds", 0.0),
        phases=extra.get("phases", {}),
        removed_kept=manifest.get("removed_rows", 0),
    )
    for record in extra.get("stages", []):
        m = StageMetrics(
            record["stage"],
            record["rows_in"],
            record["rows_out"],
            record["seconds"],
            record.get("shards", 0),
            set(record.get("nodes", [])),
        )
        m.quarantined = record.get("quarantined", 0)
        m.removed_sample = record.get("removed_sample", [])
        m.details = record.get("details", {})
        report.stages[m.name] = m
    return report


def task_options() -> dict:
    """Options of every flow step: retried on infrastructure failures (not on bad input);
    no result caching (each step is idempotent through the commit protocol instead)."""
    from prefect.cache_policies import NO_CACHE

    return {
        "retries": 2,
        "retry_delay_seconds": 5,
        "retry_condition_fn": retry_on_infrastructure,
        "cache_policy": NO_CACHE,
    }


def retry_on_infrastructure(task, task_run, state) -> bool:
    """Retry failures of the infrastructure (a lost worker, a storage hiccup), not bad
    input or bad parameters, which would fail the same way again."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - classifying, not handling
        return not isinstance(root_cause(exc), USER_ERRORS)
    return True


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of `exc`, through Ray's task-error wrappers too."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def summary(manifest: dict, report: RunReport, version_uri: str, already: bool) -> dict:
    """The run summary; `removed`: the folder of the removed rows, when the run kept them
    (`report.removed_kept` rows)."""
    from stages.io.commit import REMOVED_DIR

    kept = bool(manifest.get("removed"))
    return {
        "output": version_uri,
        "manifest": storage.join(version_uri, "_manifest.json"),
        "report_uri": storage.join(version_uri, REPORT),
        "report_html": storage.join(version_uri, "report.html"),
        **({"removed": storage.join(version_uri, REMOVED_DIR)} if kept else {}),
        "already_committed": already,
        "report": report.to_dict(),
    }
