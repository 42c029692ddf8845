"""`curate`: the command line.

    curate text --input s3://raw/cc/*.jsonl.gz --output s3://curated/cc --filters default
    curate dedup --method fuzzy --input s3://curated/cc --output s3://curated/cc-dedup
    curate demo
    curate serve                    # every deployment, nightly schedules, API/UI triggers
    curate run text --param input=s3://raw/x.jsonl --param output=s3://curated/x
    curate lineage s3://curated/cc-dedup

Every command runs the same Prefect flow a deployment runs (against PREFECT_API_URL when
set, else Prefect's embedded API) on Ray (RAY_ADDRESS when set, else a local cluster).
On failure it exits non-zero with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.jsonl.gz"


def _quiet_environment(verbose: bool) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        logging.getLogger("curate").setLevel(logging.WARNING)
        # Ray's C++ core logs an error-level note about internals of Ray Data's actor
        # pools (restart of actors whose arguments live in the object store) that is no
        # failure of the run; -v shows everything.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


def _silence_prefect_console() -> None:
    """Prefect's console logs (tracebacks included) stay out of the terminal unless -v;
    the logs still reach the Prefect API and UI, and failures print one line here."""
    import prefect  # noqa: F401  (sets up Prefect's logging)
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in list(logging.root.manager.loggerDict) + ["prefect", ""]:
        logger = logging.getLogger(name)
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)


def _add_text_arguments(p: argparse.ArgumentParser, *, demo: bool = False) -> None:
    if not demo:
        p.add_argument("--input", required=True, help="input path, folder or glob (local/s3://)")
        p.add_argument("--output", required=True, help="output dataset folder (local/s3://)")
    p.add_argument("--filters", default="default", choices=["default", "english", "none"])
    p.add_argument(
        "--languages",
        default="en",
        help="comma-separated ISO 639-1 codes to keep; '' keeps every language",
    )
    p.add_argument("--no-clean", action="store_true", help="skip Unicode/whitespace cleaning")
    p.add_argument(
        "--dedup",
        default="exact",
        choices=["exact", "fuzzy", "semantic", "none"],
        help="remove exact or near-duplicates (default: %(default)s)",
    )
    p.add_argument("--no-dedup", action="store_true", help="same as --dedup none")
    p.add_argument("--keep-scores", action="store_true", help="keep score_* columns")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    p.add_argument("--shard-size-mb", type=float, default=32.0)
    p.add_argument("--strict", action="store_true", help="fail on the first bad input row")
    p.add_argument("--version", dest="data_version", help="output version name")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    text = sub.add_parser("text", help="curate a text corpus (clean, filter, dedup)")
    _add_text_arguments(text)
    dedup = sub.add_parser("dedup", help="remove exact or near-duplicate documents")
    dedup.add_argument("--input", required=True, help="any dataset curate reads (local/s3://)")
    dedup.add_argument("--output", required=True, help="output dataset folder (local/s3://)")
    dedup.add_argument("--method", default="fuzzy", choices=["exact", "fuzzy", "semantic"])
    dedup.add_argument("--column", default="text", help="the column compared")
    dedup.add_argument("--id-field", default="id")
    dedup.add_argument(
        "--threshold", type=float, default=0.8, help="fuzzy: Jaccard similarity of a duplicate pair"
    )
    dedup.add_argument(
        "--verify",
        default="exact",
        choices=["exact", "estimate", "none"],
        help="fuzzy: how candidate pairs are checked",
    )
    dedup.add_argument("--char-ngrams", type=int, default=24)
    dedup.add_argument("--word-ngrams", type=int, help="shingle words instead of characters")
    dedup.add_argument(
        "--normalize",
        action="store_true",
        help="fuzzy: ignore case, punctuation and spacing when shingling",
    )
    dedup.add_argument(
        "--preset",
        choices=["nemo", "high_recall"],
        help="fuzzy: a tuned configuration instead of the shingle/band options",
    )
    dedup.add_argument(
        "--clustering",
        default="components",
        choices=["components", "centers"],
        help="fuzzy: connected components, or centers (no chains)",
    )
    dedup.add_argument("--bands", type=int, default=20, help="fuzzy: LSH bands")
    dedup.add_argument("--rows", type=int, default=13, help="fuzzy: MinHash values per band")
    dedup.add_argument("--seed", type=int, default=42)
    dedup.add_argument(
        "--eps",
        type=float,
        default=0.01,
        help="semantic: duplicates have cosine similarity >= 1 - eps",
    )
    dedup.add_argument("--n-clusters", type=int, help="semantic: k-means clusters")
    dedup.add_argument("--semantic-keep", default="hard", choices=["hard", "easy", "random"])
    dedup.add_argument("--model", help="semantic: local sentence-transformers model folder")
    dedup.add_argument(
        "--keep",
        default="first",
        choices=["first", "longest", "score"],
        help="which document of a duplicate group survives",
    )
    dedup.add_argument("--score-column", help="--keep score: the column whose highest wins")
    dedup.add_argument("--partitions", type=int, default=16)
    dedup.add_argument("--shard-size-mb", type=float, default=32.0)
    dedup.add_argument("--strict", action="store_true")
    dedup.add_argument("--version", dest="data_version", help="output version name")
    dedup.add_argument("--json", action="store_true", help="print the run summary as JSON")
    dedup.add_argument("-v", "--verbose", action="store_true")
    demo = sub.add_parser("demo", help="run the text flow on the bundled sample")
    demo.add_argument(
        "--output", default="demo-output", help="where to write (default: %(default)s)"
    )
    _add_text_arguments(demo, demo=True)
    _add_deployment_commands(sub)
    lineage = sub.add_parser("lineage", help="print where a curate output came from, as a tree")
    lineage.add_argument("uri", help="a curate output: dataset or version folder (local/s3://)")
    lineage.add_argument("-v", "--verbose", action="store_true")
    return parser


def _add_deployment_commands(sub) -> None:
    only = {
        "help": "comma-separated deployment keys (default: all; see flows/deploy.py)",
        "default": "",
    }
    serve = sub.add_parser(
        "serve", help="serve every deployment (nightly schedules, API and UI triggers)"
    )
    serve.add_argument("--only", **only)
    serve.add_argument("--limit", type=int, help="most flow runs at the same time")
    serve.add_argument("--timezone", help="timezone of every schedule (default: UTC)")
    serve.add_argument("-v", "--verbose", action="store_true")
    deploy = sub.add_parser("deploy", help="register the deployments with a process work pool")
    deploy.add_argument("--only", **only)
    deploy.add_argument(
        "--pool",
        default=os.environ.get("CURATE_WORK_POOL", "curate-process"),
        help="process work pool, created if missing (default: %(default)s)",
    )
    deploy.add_argument(
        "--source", help="folder the worker loads the flows from (default: this repo)"
    )
    deploy.add_argument("--timezone", help="timezone of every schedule (default: UTC)")
    deploy.add_argument(
        "--write-yaml",
        metavar="PATH",
        help="write the deployments as a prefect.yaml to PATH instead of registering them",
    )
    deploy.add_argument("-v", "--verbose", action="store_true")
    run = sub.add_parser(
        "run",
        help="start a flow run of a deployment through the Prefect API",
        description="Start a flow run of a deployment. --param input=s3://raw/x is a field "
        "of the flow's parameter model (params.input); values parse as JSON when they can.",
    )
    run.add_argument("deployment", help="a key (text, dedup) or <flow>/<deployment>")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter (repeatable); dotted keys nest; values parse as JSON when they can",
    )
    run.add_argument("--idempotency-key", help="a second run with the same key is not created")
    run.add_argument("--wait", action="store_true", help="wait for the run to finish")
    run.add_argument("--timeout", type=float, help="--wait: seconds to wait at most")
    run.add_argument("--json", action="store_true", help="print the flow run as JSON")
    run.add_argument("-v", "--verbose", action="store_true")


def _text_params(args: argparse.Namespace, input_uri: str):
    from flows.text import TextParams

    return TextParams(
        input=input_uri,
        output=args.output,
        filters=args.filters,
        languages=[x.strip() for x in args.languages.split(",") if x.strip()],
        clean=not args.no_clean,
        dedup="none" if args.no_dedup else args.dedup,
        keep_scores=args.keep_scores,
        text_field=args.text_field,
        id_field=args.id_field,
        shard_size_mb=args.shard_size_mb,
        strict=args.strict,
        version=args.data_version,
    )


def _dedup_params(args: argparse.Namespace):
    from flows.dedup import DedupParams

    return DedupParams(
        input=args.input,
        output=args.output,
        method=args.method,
        column=args.column,
        id_field=args.id_field,
        threshold=args.threshold,
        verify=args.verify,
        char_ngrams=args.char_ngrams,
        word_ngrams=args.word_ngrams,
        normalize=args.normalize,
        preset=args.preset,
        clustering=args.clustering,
        num_bands=args.bands,
        hashes_per_band=args.rows,
        seed=args.seed,
        eps=args.eps,
        n_clusters=args.n_clusters,
        semantic_keep=args.semantic_keep,
        model=args.model,
        keep=args.keep,
        score_column=args.score_column,
        partitions=args.partitions,
        shard_size_mb=args.shard_size_mb,
        strict=args.strict,
        version=args.data_version,
    )


def _run_flow(flow, params, as_json: bool, verbose: bool) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.runtime import passes

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("shards"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
        disable=not console.is_terminal and not os.environ.get("CURATE_PROGRESS"),
    ) as progress:
        tasks: dict[str, int] = {}

        def hook(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)
            if not console.is_terminal and done and (done == total or done % 10 == 0):
                console.print(f"{phase}: {done}/{total} shards")

        passes.set_progress_hook(hook)
        if not verbose:
            _silence_prefect_console()
        try:
            return flow(params)
        finally:
            passes.set_progress_hook(None)


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from flows.runtime.engine import RunReport, StageMetrics
    from flows.reports.tables import stage_table

    report = RunReport()
    for s in summary["report"]["stages"]:
        report.stages[s["stage"]] = StageMetrics(
            s["stage"], s["rows_in"], s["rows_out"], s["seconds"]
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title="Per-stage counts")
    for col in ("stage", "rows_in", "rows_out", "removed", "removed_%", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for row in stage_table(report):
        table.add_row(
            *(
                str(row[c])
                for c in ("stage", "rows_in", "rows_out", "removed", "removed_%", "seconds")
            )
        )
    console.print(table)
    for stage in summary["report"]["stages"]:
        eps = stage.get("details", {}).get("eps_table")
        if eps:
            choices = Table(title="How many documents each eps would remove")
            for col in ("eps", "similarity >=", "removed", "removed_%"):
                choices.add_column(col, justify="right")
            for row in eps:
                choices.add_row(
                    str(row["eps"]),
                    f"{row['threshold']:.3f}",
                    str(row["removed"]),
                    f"{100 * row['removed_fraction']:.2f}",
                )
            console.print(choices)
    r = summary["report"]
    state = " (already committed: nothing to do)" if summary.get("already_committed") else ""
    console.print(
        f"rows read {r['rows_read']}, quarantined {r['rows_quarantined']}, "
        f"written {r['rows_written']}{state}"
    )
    # Plain prints: paths must stay whole (no wrapping) to be copied.
    print(f"output:   {summary['output']}")
    print(f"manifest: {summary['manifest']}")
    if summary.get("report_uri"):
        print(f"report:   {summary['report_uri']}")
    if summary.get("report_html"):
        print(f"html:     {summary['report_html']}")


def _deployment_command(args: argparse.Namespace) -> int:
    from flows import deploy

    keys = [k.strip() for k in getattr(args, "only", "").split(",") if k.strip()]
    if args.command == "serve":
        specs = deploy.select(deploy.configured(timezone=args.timezone), keys)
        try:
            deploy.serve(specs, limit=args.limit)
        except KeyboardInterrupt:
            print("curate serve: stopped", file=sys.stderr)
        return 0
    if args.command == "deploy":
        specs = deploy.select(deploy.configured(timezone=args.timezone), keys)
        if args.write_yaml:
            print(f"wrote {deploy.write_prefect_yaml(args.write_yaml, specs, args.pool)}")
            return 0
        ids = deploy.deploy(specs, work_pool=args.pool, source=args.source or deploy.REPO_ROOT)
        for name, deployment_id in ids.items():
            print(f"{name}: {deployment_id}")
        print(f"start a worker: prefect worker start --pool {args.pool}")
        return 0
    flow_run = deploy.run(
        args.deployment,
        args.param,
        idempotency_key=args.idempotency_key,
        wait=args.wait,
        timeout=args.timeout,
    )
    state = flow_run.state.type.value if flow_run.state else "UNKNOWN"
    if args.json:
        print(json.dumps({"id": str(flow_run.id), "name": flow_run.name, "state": state}))
    else:
        print(f"flow run {flow_run.name} ({flow_run.id}): {state}")
    return 0 if not args.wait or state == "COMPLETED" else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_environment(args.verbose)
    try:
        if args.command in ("serve", "deploy", "run"):
            return _deployment_command(args)
        if args.command == "lineage":
            from flows.lineage import print_lineage

            print_lineage(args.uri)
            return 0
        if args.command == "dedup":
            from flows.dedup import curate_dedup

            flow, params = curate_dedup, _dedup_params(args)
        else:
            from flows.text import curate_text

            if args.command == "demo" and not SAMPLE.exists():
                raise FileNotFoundError(f"bundled sample missing: {SAMPLE}")
            source = str(SAMPLE) if args.command == "demo" else args.input
            flow, params = curate_text, _text_params(args, source)
        summary = _run_flow(flow, params, args.json, args.verbose)
        _print_summary(summary, args.json)
        return 0
    except KeyboardInterrupt:
        print(
            "curate: interrupted; committed shards are kept and a re-run resumes", file=sys.stderr
        )
        return 130
    except Exception as exc:  # one line for users; the traceback with -v
        if args.verbose:
            raise
        from flows.runtime.passes import root_cause

        cause = root_cause(exc)
        lines = str(cause).strip().splitlines()
        reason = lines[0] if lines else type(cause).__name__
        print(f"curate: error: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
