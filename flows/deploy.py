"""Prefect deployments of the curate flows: one registry, three ways to run it.

`deployments()` lists one `DeploymentSpec` per declared flow (its `FlowSpec` gives the
schedule, description and default parameters). Everything else is built from it:

- `serve()`: every deployment served from one process (`curate serve`); the process polls
  the Prefect API for scheduled or triggered runs and starts each in a subprocess.
- `deploy()`: the deployments registered with a process work pool (`curate deploy`),
  whose runs a `prefect worker start --pool curate-process` executes.
- `prefect_yaml()`: the same deployments as `deployments/prefect.yaml`, for
  `prefect deploy --all` (a test keeps the file in step with the registry).

Inputs are configured per deployment with environment variables named after its key:
`CURATE_TEXT_INPUT` / `CURATE_TEXT_OUTPUT` set the default `input` / `output` of the text
deployment, `CURATE_TEXT_CRON` and `CURATE_TEXT_TIMEZONE` (or `CURATE_TIMEZONE` for all)
its schedule. A deployment whose input or output is not configured keeps its schedule but
inactive (Prefect's `active: false`): it runs only when triggered with parameters.

Declaring a flow (`build_flow` in `flows/<modality>.py`) adds its deployment; then
`curate deploy --write-yaml deployments/prefect.yaml` (a test keeps the file in step).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO_ROOT / "deployments" / "prefect.yaml"
DEFAULT_WORK_POOL = "curate-process"
DEFAULT_TIMEZONE = "UTC"
# The parameter of every curate flow: one pydantic model holding input, output and options.
MODEL_PARAMETER = "params"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of one flow.

    key: short name (`curate run text`) and the prefix of its environment variables.
    flow: "module:attribute" of the flow object.
    defaults: default values of the flow's parameter model besides input and output.
    input/output: configured locations; the schedule is active only when both are set.
    """

    key: str
    flow: str
    name: str = "nightly"
    cron: str = "0 2 * * *"
    timezone: str = DEFAULT_TIMEZONE
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    input: str | None = None
    output: str | None = None

    @property
    def entrypoint(self) -> str:
        """The flow as a file path entrypoint relative to the repository root."""
        module, attr = self.flow.split(":")
        return f"{module.replace('.', '/')}.py:{attr}"

    @property
    def active(self) -> bool:
        return bool(self.input and self.output)

    @property
    def parameters(self) -> dict[str, Any]:
        """Default flow-run parameters: the model's fields under `params`."""
        values = dict(self.defaults)
        if self.input:
            values["input"] = self.input
        if self.output:
            values["output"] = self.output
        return {MODEL_PARAMETER: values}

    @property
    def tags(self) -> list[str]:
        return ["curate", self.key]

    def load_flow(self):
        module, attr = self.flow.split(":")
        return getattr(importlib.import_module(module), attr)

    def full_name(self) -> str:
        """`<flow name>/<deployment name>`, as Prefect names a deployment."""
        return f"{self.load_flow().name}/{self.name}"


def deployments() -> list[DeploymentSpec]:
    """One deployment per declared flow (`flows.runtime.builder.registered`), with the
    flow's nightly schedule, description and default parameters."""
    from flows.runtime.builder import registered

    return [
        DeploymentSpec(
            key=key,
            flow=f"{module}:{spec.attribute}",
            cron=spec.cron,
            defaults=dict(spec.deployment),
            description=f"Nightly: {spec.description[0].lower()}{spec.description[1:]}",
        )
        for key, (spec, module) in registered().items()
    ]


DEPLOYMENTS: list[DeploymentSpec] = deployments()


def configured(
    specs: Sequence[DeploymentSpec] | None = None,
    env: Mapping[str, str] | None = None,
    timezone: str | None = None,
) -> list[DeploymentSpec]:
    """The registry with inputs, outputs and schedules from the environment applied."""
    env = os.environ if env is None else env
    result = []
    for spec in deployments() if specs is None else specs:
        prefix = f"CURATE_{spec.key.upper()}_"
        result.append(
            replace(
                spec,
                input=env.get(prefix + "INPUT") or spec.input,
                output=env.get(prefix + "OUTPUT") or spec.output,
                cron=env.get(prefix + "CRON") or spec.cron,
                timezone=timezone
                or env.get(prefix + "TIMEZONE")
                or env.get("CURATE_TIMEZONE")
                or spec.timezone,
            )
        )
    return result


def select(specs: Sequence[DeploymentSpec], keys: Sequence[str] | None) -> list[DeploymentSpec]:
    """The specs named by key (all when keys is empty); unknown keys are an error."""
    if not keys:
        return list(specs)
    known = {s.key: s for s in specs}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown deployment {', '.join(unknown)}: known {', '.join(known)}")
    return [known[k] for k in keys]


def schedules(spec: DeploymentSpec) -> list:
    """The nightly cron schedule, in its timezone, active only when inputs are configured."""
    from prefect.schedules import Cron

    return [Cron(spec.cron, timezone=spec.timezone, active=spec.active)]


def to_deployment(spec: DeploymentSpec):
    """A `RunnerDeployment` for `prefect.serve`: runs import the flow by module path, so
    the served process may start in any folder where curate is installed."""
    from prefect.deployments.runner import EntrypointType

    return spec.load_flow().to_deployment(
        name=spec.name,
        entrypoint_type=EntrypointType.MODULE_PATH,
        schedules=schedules(spec),
        parameters=spec.parameters,
        description=spec.description or None,
        tags=spec.tags,
    )


def api_url() -> str:
    """The Prefect API deployments live in; an error when none is configured (Prefect's
    temporary in-process API would forget them on exit)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise RuntimeError(
            "PREFECT_API_URL is not set: start a server (prefect server start) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, or use Prefect Cloud"
        )
    return url


def serve(specs: Sequence[DeploymentSpec], limit: int | None = None) -> None:
    """Serve the deployments from this process until interrupted."""
    from prefect import serve as prefect_serve

    api_url()

    prefect_serve(*[to_deployment(s) for s in specs], limit=limit)


def ensure_work_pool(name: str) -> bool:
    """Create a process work pool named `name` unless it exists; True if created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            return True


def deploy(
    specs: Sequence[DeploymentSpec],
    work_pool: str = DEFAULT_WORK_POOL,
    source: str | Path = REPO_ROOT,
) -> dict[str, str]:
    """Register the deployments with a process work pool (created if missing).

    The flow code is loaded from `source` (this repository by default) by the worker, so
    the worker must run where that folder and curate's dependencies are. Returns
    {deployment full name: deployment id}.
    """
    from prefect import Flow

    api_url()
    ensure_work_pool(work_pool)
    ids = {}
    for spec in specs:
        flow = Flow.from_source(source=str(source), entrypoint=spec.entrypoint)
        deployment_id = flow.deploy(
            name=spec.name,
            work_pool_name=work_pool,
            schedules=schedules(spec),
            parameters=spec.parameters,
            description=spec.description or None,
            tags=spec.tags,
            print_next_steps=False,
            ignore_warnings=True,
        )
        ids[f"{flow.name}/{spec.name}"] = str(deployment_id)
    return ids


# --------------------------------------------------------------------------- prefect.yaml


def prefect_yaml(specs: Sequence[DeploymentSpec], work_pool: str = DEFAULT_WORK_POOL) -> dict:
    """The registry as a prefect.yaml document (`prefect deploy --all`, from the repo root)."""
    from prefect import __version__

    return {
        "name": "curate",
        "prefect-version": __version__,
        "build": None,
        "push": None,
        "deployments": [
            {
                "name": s.name,
                "entrypoint": s.entrypoint,
                "description": s.description,
                "tags": s.tags,
                "parameters": s.parameters,
                "schedules": [{"cron": s.cron, "timezone": s.timezone, "active": s.active}],
                "work_pool": {"name": work_pool, "work_queue_name": None, "job_variables": {}},
            }
            for s in specs
        ],
    }


_YAML_HEADER = """\
# Prefect deployments of the curate flows, generated from their declarations (FlowSpec in
# flows/<flow>.py, listed by flows/deploy.py):
#   curate deploy --write-yaml deployments/prefect.yaml
#
# Register from the repository root (the worker runs the flows from that folder):
#   prefect work-pool create curate-process --type process
#   prefect deploy --prefect-file deployments/prefect.yaml --all
#   prefect worker start --pool curate-process
# Schedules are inactive until a deployment's input and output are set (parameters.params),
# then `active: true`. `curate deploy` does the same with CURATE_<KEY>_INPUT/OUTPUT.
"""


def render_prefect_yaml(specs: Sequence[DeploymentSpec], work_pool: str = DEFAULT_WORK_POOL) -> str:
    import yaml

    body = yaml.safe_dump(prefect_yaml(specs, work_pool), sort_keys=False, width=100)
    return _YAML_HEADER + "\n" + body


def write_prefect_yaml(
    path: str | Path = PREFECT_YAML,
    specs: Sequence[DeploymentSpec] | None = None,
    work_pool: str = DEFAULT_WORK_POOL,
) -> Path:
    path = Path(path)
    path.write_text(render_prefect_yaml(DEPLOYMENTS if specs is None else specs, work_pool))
    return path


# --------------------------------------------------------------------------- curate run


def parse_value(text: str) -> Any:
    """A `--param` value: JSON when it parses (numbers, booleans, lists, objects), else the
    string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_parameters(
    pairs: Sequence[str],
    flow_parameters: Sequence[str] = (MODEL_PARAMETER,),
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Flow-run parameters from `key=value` pairs, merged into the deployment's defaults.

    Dotted keys nest (`params.input=x` -> {"params": {"input": x}}). When the flow takes a
    single parameter (curate flows take `params`, their model), a key that is not a flow
    parameter is a field of it: `input=x` means `params.input=x`. The result keeps every
    default not overridden: the Prefect API replaces a top-level parameter whole, so the
    merge of nested fields happens here.
    """
    result: dict[str, Any] = json.loads(json.dumps(dict(defaults or {})))
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r}: expected key=value")
        path = key.split(".")
        if len(flow_parameters) == 1 and path[0] not in flow_parameters:
            path = [flow_parameters[0], *path]
        _set_path(result, path, parse_value(raw), pair)
    return result


def _set_path(target: dict, path: list[str], value: Any, pair: str) -> None:
    for part in path[:-1]:
        node = target.get(part)
        if node is None:
            node = target[part] = {}
        if not isinstance(node, dict):
            raise ValueError(f"--param {pair!r}: {part!r} is not an object")
        target = node
    last = path[-1]
    if isinstance(value, dict) and isinstance(target.get(last), dict):
        target[last] = {**target[last], **value}
    else:
        target[last] = value


def resolve_name(name: str, specs: Sequence[DeploymentSpec] | None = None) -> str:
    """A registry key (`text`) or a full `<flow>/<deployment>` name -> the full name."""
    if "/" in name:
        return name
    specs = deployments() if specs is None else specs
    for spec in specs:
        if spec.key == name:
            return spec.full_name()
    known = ", ".join(s.key for s in specs)
    raise ValueError(f"deployment {name!r}: use <flow>/<deployment> or one of {known}")


def run(
    name: str,
    pairs: Sequence[str] = (),
    idempotency_key: str | None = None,
    wait: bool = False,
    timeout: float | None = None,
):
    """Create a flow run of a deployment through the API; return the `FlowRun` (finished
    when `wait`)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    run_parameters(pairs)  # malformed pairs fail before any API call
    full_name = resolve_name(name)
    url = api_url()
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            raise LookupError(
                f"deployment {full_name} not found at {url}: start `curate serve` or run "
                "`curate deploy` first"
            ) from None
    schema = deployment.parameter_openapi_schema or {}
    flow_parameters = list((schema.get("properties") or {}).keys()) or [MODEL_PARAMETER]
    parameters = run_parameters(pairs, flow_parameters, deployment.parameters)
    return run_deployment(
        deployment.id,
        parameters=parameters,
        idempotency_key=idempotency_key,
        timeout=timeout if wait else 0,
        as_subflow=False,
    )
