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
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from flows.runtime.signals import RunStopped, stop_on_signals

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


def _display(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "''"
    return str(value)


def _comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_model_options(parser: argparse.ArgumentParser, model, optional=()) -> None:
    """One option per field of a flow's parameter model: `--shard-size-mb` for
    `shard_size_mb`, with the field's description and default as help, `--x/--no-x` for
    booleans, choices for Literal fields, lists comma-separated or repeated. Options not given stay
    unset, so the model's own defaults apply. A field's `json_schema_extra` may name extra
    `cli_flags`: {"--no-dedup": "none"} sets the field to "none"."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if get_origin(kind) in (Union, UnionType):  # `int | None`: the option takes an int
            kind = next(a for a in get_args(kind) if a is not type(None))
        flag = "--" + name.replace("_", "-")
        dest = "param_" + name
        required = field.is_required() and name not in optional
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        text = (field.description or "").rstrip(".")
        if not field.is_required() and "default:" not in text:
            text += f" (default: {_display(default)})"
        kwargs: dict = {"dest": dest, "help": text.replace("%", "%%"), "metavar": name.upper()}
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = argparse.SUPPRESS
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            del kwargs["metavar"]
        elif get_origin(kind) is Literal:
            kwargs["choices"] = list(get_args(kind))
            kwargs["metavar"] = "{" + ",".join(map(str, get_args(kind))) + "}"
        elif get_origin(kind) is list:  # comma-separated, or the option repeated
            kwargs["type"] = _comma_list
            kwargs["action"] = "extend"
            kwargs["metavar"] = "A,B"
        elif kind in (int, float):
            kwargs["type"] = kind
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        parser.add_argument(flag, *extra.get("cli_aliases", ()), **kwargs)
        for alias, value in (extra.get("cli_flags") or {}).items():
            parser.add_argument(
                alias,
                dest=dest,
                action="store_const",
                const=value,
                default=argparse.SUPPRESS,
                help=f"same as {flag} {value}",
            )


def model_params(model, args: argparse.Namespace, **given):
    """The flow's parameters from the options the user gave (the model fills the rest);
    raises `OptionError` when they are invalid."""
    from pydantic import ValidationError

    values = {k[len("param_") :]: v for k, v in vars(args).items() if k.startswith("param_")}
    try:
        return model(**{**given, **values})
    except ValidationError as exc:
        raise OptionError(model, exc.errors()) from exc


class OptionError(ValueError):
    """Invalid options: `lines(argv)` says, one line per error, the option as typed, its
    value and what is allowed."""

    def __init__(self, model, errors: list[dict]):
        super().__init__("; ".join(e["msg"] for e in errors))
        self.model, self.errors = model, errors

    def lines(self, argv: list[str]) -> list[str]:
        out = []
        for error in self.errors:
            message = error["msg"].removeprefix("Value error, ")
            field = self.model.model_fields.get(error["loc"][0]) if error["loc"] else None
            if field is None:  # a rule between fields: no single option to name
                out.append(message)
                continue
            name = error["loc"][0]
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            flags = ["--" + name.replace("_", "-"), *extra.get("cli_aliases", ())]
            flag, value = _typed(argv, flags) or (flags[0], _display(error.get("input")))
            out.append(f"{flag} {value}: {message}")
        return out


def _typed(argv: list[str], flags: list[str]) -> tuple[str, str] | None:
    """The last of `flags` in `argv` with the value given to it, as typed."""
    found = None
    for i, token in enumerate(argv):
        flag, eq, value = token.partition("=")
        if flag in flags:
            if eq:
                found = (flag, value)
            elif i + 1 < len(argv):
                found = (flag, argv[i + 1])
    return found


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show logs and tracebacks")


def build_parser() -> argparse.ArgumentParser:
    from flows.runtime.builder import registered
    from flows.text import TextParams

    parser = argparse.ArgumentParser(
        prog="curate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for key, (spec, _) in registered().items():
        p = sub.add_parser(key, help=spec.description, description=spec.description)
        add_model_options(p, spec.params)
        _add_common(p)
    demo = sub.add_parser("demo", help="run the text flow on the bundled sample")
    add_model_options(demo, TextParams, optional=("input", "output"))
    _add_common(demo)
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

    from flows.reports.tables import stage_table
    from flows.runtime.engine import RunReport, StageMetrics

    report = RunReport()
    for s in summary["report"]["stages"]:
        report.stages[s["stage"]] = StageMetrics(
            s["stage"],
            s["rows_in"],
            s["rows_out"],
            s["seconds"],
            quarantined=s.get("quarantined", 0),
            added=s.get("added", 0),
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
        f"rows read {r['rows_read']}, "
        + (f"added by splitting {r['rows_added']}, " if r.get("rows_added") else "")
        + f"quarantined {r['rows_quarantined']}, written {r['rows_written']}{state}"
    )
    phases = {k: v for k, v in r.get("phases", {}).items() if v >= 0.05}
    if phases:  # the fixed costs (planning, Ray's start) apart from the work per row
        console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    # Plain prints: paths must stay whole (no wrapping) to be copied.
    print(f"output:   {summary['output']}")
    print(f"manifest: {summary['manifest']}")
    if summary.get("report_uri"):
        print(f"report:   {summary['report_uri']}")
    if summary.get("report_html"):
        print(f"html:     {summary['report_html']}")
    if summary.get("removed"):
        kept = r.get("removed_kept", 0)
        print(f"removed:  {summary['removed']} ({kept} row{'s' * (kept != 1)})")


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


def _flow_and_params(args: argparse.Namespace):
    """The Prefect flow a subcommand runs (the one its deployment runs) and its params."""
    import importlib

    from flows.runtime.builder import registered

    if args.command == "demo":
        from flows.text import TEXT, curate_text

        if not SAMPLE.exists():
            raise FileNotFoundError(f"bundled sample missing: {SAMPLE}")
        # The demo shows the production path, local Ray included, even on one shard.
        os.environ.setdefault("CURATE_EXECUTOR", "ray")
        given = {"input": str(SAMPLE), "output": "demo-output"}
        return curate_text, model_params(TEXT.params, args, **given)
    spec, module = registered()[args.command]
    flow = getattr(importlib.import_module(module), spec.attribute)
    return flow, model_params(spec.params, args)


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
        flow, params = _flow_and_params(args)
        with stop_on_signals():  # Ctrl-C/SIGTERM: stop at a safe point, raise RunStopped
            summary = _run_flow(flow, params, args.json, args.verbose)
        _print_summary(summary, args.json)
        return 0
    except RunStopped as stopped:  # one line: what is committed, how to resume
        print(stopped, file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print(
            "curate: interrupted; committed shards are kept and a re-run resumes", file=sys.stderr
        )
        return 130
    except Exception as exc:  # one line for users; the traceback with -v
        if isinstance(exc, OptionError):  # one line per invalid option, as argparse does
            for line in exc.lines(sys.argv[1:] if argv is None else argv):
                print(f"curate: error: {line}", file=sys.stderr)
            return 2
        if args.verbose:
            raise
        from flows.runtime.passes import root_cause

        cause = root_cause(exc)
        lines = str(cause).strip().splitlines()
        reason = lines[0] if lines else type(cause).__name__
        print(f"curate: error: {reason}", file=sys.stderr)
        return 1


FLOW_COMMANDS = ("demo", "text", "dedup", "image", "video", "audio", "apply-thresholds")
"""The subcommands that run a flow (the built-in flows' keys, and `demo`)."""


def run() -> None:
    """The `curate` command: for a flow run, Prefect's embedded API starts first, so that
    it comes up while the flow's modules load."""
    argv = sys.argv[1:]
    if argv and argv[0] in FLOW_COMMANDS and not {"-h", "--help"} & set(argv):
        from flows.runtime.signals import start_prefect_api_early

        _quiet_environment(bool({"-v", "--verbose"} & set(argv)))  # the server's too

        start_prefect_api_early()
    sys.exit(main(argv))


if __name__ == "__main__":
    run()
