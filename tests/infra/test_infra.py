"""infra/: the compose file, the Kubernetes manifests and the Dockerfile, checked offline.

- docker-compose.yml: against the Compose Specification's JSON schema (the copy that
  check-jsonschema ships), and with `docker compose config` / `docker-compose config` where
  one is installed (CI installs Debian's docker-compose).
- k8s/: core objects against Kubernetes' OpenAPI schemas (kubernetes-validate, strict);
  the RayCluster against a schema of the ray.io/v1 fields this project uses, written from
  KubeRay's API reference (not KubeRay's CRD), its pod templates against Kubernetes'
  PodTemplateSpec schema, and through Ray's own reading of a RayCluster (the code its
  KubeRay autoscaler runs); `kubectl kustomize` builds the whole where kubectl exists.
- Dockerfile: parsed (stages, install command, user, entry point).
- Every environment variable handed to a curate process is one that curate, Prefect, Ray
  or the AWS SDK reads.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"


# --------------------------------------------------------------------------- helpers


def _pins() -> dict[str, str]:
    """name -> version of every `name==version` dependency in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for dep in project["dependencies"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", dep.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, over a loaded document."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _INTERPOLATION.sub(substitute, value)


def _compose_raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _compose() -> dict:
    return _interpolate(_compose_raw(), _env_example())


def _uses_curate_image(service: dict) -> bool:
    return str(service.get("image", "")).startswith("curate:")


def _k8s_docs() -> list[dict]:
    docs = []
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _by_kind(kind: str) -> list[dict]:
    return [d for d in _k8s_docs() if d["kind"] == kind]


def _raycluster() -> dict:
    (cluster,) = _by_kind("RayCluster")
    return cluster


def _ray_groups(cluster: dict) -> list[dict]:
    return [cluster["spec"]["headGroupSpec"], *cluster["spec"].get("workerGroupSpecs", [])]


def _curate_containers() -> list[dict]:
    """Every Kubernetes container that runs the curate image."""
    containers = []
    for doc in _k8s_docs():
        if doc["kind"] == "RayCluster":
            templates = [g["template"] for g in _ray_groups(doc)]
        elif doc["kind"] == "Deployment":
            templates = [doc["spec"]["template"]]
        else:
            continue
        for template in templates:
            pod = template["spec"]
            for c in [*pod.get("initContainers", []), *pod["containers"]]:
                if c["image"].split(":")[0] == "curate":
                    containers.append(c)
    return containers


# --------------------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_specification_schema():
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(schema_file.joinpath("compose-spec.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_cls(schema).iter_errors(_compose())
    )
    assert errors == []


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_compose_file_with_the_example_env():
    command = _compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed "
            "(apt-get install -y docker-compose)"
        )
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=INFRA,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_rejects_an_unknown_service_key(tmp_path):
    # The check above can fail: a misspelt key is refused.
    command = _compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed "
            "(apt-get install -y docker-compose)"
        )
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: busybox\n    helthcheck: {}\n")
    result = subprocess.run([*command, "-f", str(broken), "config", "-q"], capture_output=True)
    assert result.returncode != 0


def test_every_required_compose_variable_is_in_the_env_example():
    env = _env_example()
    required = {
        m.group(1)
        for m in _INTERPOLATION.finditer(COMPOSE.read_text())
        if m.group(1) and m.group(2) not in (":-", "-")
    }
    assert sorted(required - env.keys()) == []


def test_compose_holds_no_literal_credentials():
    for name, service in _compose_raw()["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"


def test_services_waited_on_as_healthy_have_a_healthcheck():
    services = _compose()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "test" in services[dependency].get("healthcheck", {}), dependency


def test_flow_server_waits_for_prefect_ray_and_the_bucket():
    depends = _compose()["services"]["flows"]["depends_on"]
    assert depends["prefect-server"]["condition"] == "service_healthy"
    assert depends["ray-head"]["condition"] == "service_healthy"
    assert depends["minio-init"]["condition"] == "service_completed_successfully"


def test_prefect_server_runs_the_project_prefect_version_on_postgres():
    services = _compose()["services"]
    server = services["prefect-server"]
    assert server["image"].startswith(f"prefecthq/prefect:{_pins()['prefect']}-python3.11")
    url = server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    env = _env_example()
    assert url == (
        f"postgresql+asyncpg://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{env['POSTGRES_DB']}"
    )
    assert services["postgres"]["image"] == "postgres:16"


def test_flow_server_reaches_the_ray_head_gcs_and_the_prefect_api():
    services = _compose()["services"]
    env = services["flows"]["environment"]
    head_command = services["ray-head"]["command"]
    assert "--head" in head_command and "--port=6379" in head_command
    assert env["RAY_ADDRESS"] == "ray-head:6379"
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert "4200" in services["prefect-server"]["command"]
    assert services["flows"].get("entrypoint") is None  # the image's: joins Ray first


def test_ray_workers_join_the_head_and_every_ray_container_has_shared_memory():
    services = _compose()["services"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]
    for name in ("ray-head", "ray-worker", "flows"):
        assert re.fullmatch(r"\d+[gm]b", services[name]["shm_size"]), name


def test_every_process_that_touches_data_gets_the_minio_endpoint_and_credentials():
    services = _compose()["services"]
    env = _env_example()
    for name in ("ray-head", "ray-worker", "flows"):
        service_env = services[name]["environment"]
        assert service_env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert service_env["AWS_ACCESS_KEY_ID"] == env["MINIO_ROOT_USER"], name
        assert service_env["AWS_SECRET_ACCESS_KEY"] == env["MINIO_ROOT_PASSWORD"], name


def test_bucket_job_creates_the_configured_bucket():
    init = _compose()["services"]["minio-init"]
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing" in script and '"local/$S3_BUCKET"' in script
    assert init["environment"]["S3_BUCKET"] == _env_example()["S3_BUCKET"]


def test_ray_start_flags_in_compose_are_ray_start_options():
    from ray.scripts.scripts import start

    options = {opt for param in start.params for opt in param.opts}
    services = _compose()["services"]
    for name in ("ray-head", "ray-worker"):
        command = services[name]["command"]
        assert services[name]["entrypoint"] == ["ray"] and command[0] == "start"
        for arg in command[1:]:
            assert arg.split("=")[0] in options, f"{name}: {arg}"


# --------------------------------------------------------------------------- Kubernetes

# The ray.io/v1 RayCluster fields this project uses, with their types, written from
# KubeRay's API reference. Unknown keys are refused, so a misspelt field fails here
# instead of being dropped by the API server. Pod templates are checked separately against
# Kubernetes' own PodTemplateSpec schema.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_QUANTITY = {"type": ["string", "integer"]}
_REPLICAS = {"type": "integer", "minimum": 0}
RAYCLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"}},
        },
        "spec": {
            "type": "object",
            "required": ["headGroupSpec"],
            "additionalProperties": False,
            "properties": {
                "rayVersion": {"type": "string"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "autoscalerOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
                        "version": {"enum": ["v1", "v2"]},
                        "resources": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "requests": {"type": "object", "additionalProperties": _QUANTITY},
                                "limits": {"type": "object", "additionalProperties": _QUANTITY},
                            },
                        },
                    },
                },
                "headGroupSpec": {
                    "type": "object",
                    "required": ["template"],
                    "additionalProperties": False,
                    "properties": {
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "rayStartParams": _STRING_MAP,
                        "template": {"type": "object"},
                    },
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["groupName", "template"],
                        "additionalProperties": False,
                        "properties": {
                            "groupName": {"type": "string"},
                            "replicas": _REPLICAS,
                            "minReplicas": _REPLICAS,
                            "maxReplicas": _REPLICAS,
                            "rayStartParams": _STRING_MAP,
                            "template": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}


def _kubernetes_validate(doc: dict) -> None:
    from kubernetes_validate.utils import latest_version, validate

    validate(doc, latest_version(), strict=True)


def test_core_kubernetes_objects_match_the_kubernetes_openapi_schemas():
    kinds = set()
    for doc in _k8s_docs():
        if doc["apiVersion"].startswith("ray.io/"):
            continue
        _kubernetes_validate(doc)
        kinds.add(doc["kind"])
    assert kinds >= {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment"}


def test_kubernetes_schema_check_refuses_a_misspelt_field():
    from kubernetes_validate.utils import ValidationError

    (deployment,) = _by_kind("Deployment")
    deployment["spec"]["replica"] = 1
    with pytest.raises(ValidationError):
        _kubernetes_validate(deployment)


def test_raycluster_matches_the_ray_io_v1_fields_we_use():
    jsonschema.validate(_raycluster(), RAYCLUSTER_SCHEMA)


def test_raycluster_schema_refuses_a_misspelt_worker_group_field():
    cluster = _raycluster()
    cluster["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cluster, RAYCLUSTER_SCHEMA)


def test_raycluster_pod_templates_match_the_kubernetes_pod_template_schema():
    for group in _ray_groups(_raycluster()):
        _kubernetes_validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": group.get("groupName", "head")},
                "template": group["template"],
            }
        )


def test_ray_reads_the_raycluster_as_a_head_and_autoscaled_cpu_and_gpu_groups():
    # The function Ray's KubeRay autoscaler runs on the RayCluster it manages.
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    cluster = _raycluster()
    cluster["metadata"]["namespace"] = "curate"
    types = _derive_autoscaling_config_from_ray_cr(cluster)["available_node_types"]
    head, cpu, gpu = types["headgroup"], types["cpu"], types["gpu"]
    assert head["resources"]["CPU"] == 0
    assert cpu["resources"]["CPU"] == 4 and "GPU" not in cpu["resources"]
    assert cpu["min_workers"] >= 1 and cpu["max_workers"] > cpu["min_workers"]
    assert gpu["resources"]["GPU"] == 1
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1


def test_raycluster_runs_the_project_ray_version_with_images_per_group():
    cluster = _raycluster()
    assert cluster["spec"]["rayVersion"] == _pins()["ray"]
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    images = {
        group.get("groupName", "head"): group["template"]["spec"]["containers"][0]["image"]
        for group in _ray_groups(cluster)
    }
    assert images == {"head": "curate:cpu", "cpu": "curate:cpu", "gpu": "curate:cuda"}
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_every_ray_pod_mounts_a_memory_backed_dev_shm():
    pod_specs = [g["template"]["spec"] for g in _ray_groups(_raycluster())]
    pod_specs += [d["spec"]["template"]["spec"] for d in _by_kind("Deployment")]
    for spec in pod_specs:
        memory_volumes = {
            v["name"] for v in spec["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"
        }
        mounts = {m["name"] for m in spec["containers"][0]["volumeMounts"]}
        shm = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm and shm[0]["name"] in memory_volumes & mounts


def test_gpu_group_asks_kubernetes_for_gpus():
    (gpu,) = [g for g in _raycluster()["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    resources = gpu["template"]["spec"]["containers"][0]["resources"]
    assert int(resources["limits"]["nvidia.com/gpu"]) >= 1


def test_ray_start_params_are_ray_start_options():
    from ray.scripts.scripts import start

    options = {opt for param in start.params for opt in param.opts}
    for group in _ray_groups(_raycluster()):
        for key in group["rayStartParams"]:
            assert f"--{key}" in options, key


def _configmap_env(container: dict) -> dict[str, str]:
    """A container's environment: env entries plus the ConfigMaps and Secrets it loads."""
    sources = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_docs()}
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            doc = sources[("ConfigMap", source["configMapRef"]["name"])]
            env.update(doc["data"])
        else:
            doc = sources[("Secret", source["secretRef"]["name"])]
            env.update(doc["stringData"])
    return env


def test_prefect_worker_joins_the_raycluster_head_service_gcs_port():
    cluster = _raycluster()
    (deployment,) = _by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _configmap_env(container)
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    gcs_port = {p["name"]: p["containerPort"] for p in head["ports"]}["gcs"]
    # KubeRay names the head's Service <cluster>-head-svc.
    assert env["RAY_ADDRESS"] == f"{cluster['metadata']['name']}-head-svc:{gcs_port}"
    assert env["PREFECT_API_URL"].endswith("/api")
    assert container["command"][:4] == ["curate-entrypoint", "prefect", "worker", "start"]


def test_prefect_worker_command_uses_options_prefect_knows():
    from prefect.cli import worker

    (deployment,) = _by_kind("Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--pool") + 1] == "curate-process"
    assert command[command.index("--type") + 1] == "process"
    # The CLI spells some parameters differently: --pool is work_pool_name, --type
    # worker_type.
    parameters = set(inspect.signature(worker.start).parameters) | {"pool", "type"}
    for flag in (a for a in command if a.startswith("--")):
        assert flag[2:].replace("-", "_") in parameters, flag


def test_init_container_registers_the_deployments_with_the_worker_pool():
    from flows.cli import build_parser

    (deployment,) = _by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    worker_command = pod["containers"][0]["command"]
    args = build_parser().parse_args(init["command"][1:])
    assert init["command"][0] == "curate" and args.command == "deploy"
    assert args.pool == worker_command[worker_command.index("--pool") + 1]
    assert args.source == "/app"
    assert "WORKDIR /app" in DOCKERFILE.read_text()


def test_every_configmap_and_secret_a_container_loads_is_in_the_kustomization():
    for container in _curate_containers():
        _configmap_env(container)  # raises KeyError on a missing source


def test_secret_template_holds_placeholders_only():
    for secret in _by_kind("Secret"):
        assert set(secret["stringData"].values()) == {"replace-me"}


def test_kustomize_builds_the_manifests_into_the_curate_namespace():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["kind"] for d in docs} >= {"RayCluster", "Deployment", "ConfigMap", "Secret"}
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "curate", doc["metadata"]["name"]


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _stages() -> dict[str, str]:
    """stage name -> FROM image."""
    stages = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            stages[name.strip()] = image.strip()
    return stages


def _global_args() -> dict[str, str]:
    args = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def test_dockerfile_has_a_cpu_and_a_cuda_base_chosen_by_the_variant_argument():
    stages = _stages()
    args = _global_args()
    assert args["VARIANT"] == "cpu"
    assert stages["base-cpu"].startswith("python:3.11-slim")
    assert stages["base-cuda"] == "${CUDA_IMAGE}"
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-runtime-ubuntu[\d.]+", args["CUDA_IMAGE"])
    assert stages["image"] == "base-${VARIANT}"
    assert list(stages)[-1] == "image"


def test_both_variants_run_python_3_11():
    # Ray refuses nodes whose Python differs from the head's: GPU workers join CPU heads.
    runs = " ".join(rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN")
    assert "python3.11 python3.11-venv" in runs
    assert runs.count("python3.11 -m venv /opt/curate") == 2


def test_dockerfile_installs_the_project_under_the_constraints_with_the_pinned_torch():
    runs = [rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN"]
    (install,) = [r for r in runs if "pip install -c .ci/constraints.txt" in r]
    assert "https://download.pytorch.org/whl/cpu" in install
    assert "grep -E '^torch==' .ci/constraints.txt" in install
    assert f'"ray[default]=={_pins()["ray"]}"' in install
    assert "torch==" in (ROOT / ".ci/constraints.txt").read_text()


def test_dockerfile_runs_as_a_non_root_user_with_ray_usage_stats_off():
    instructions = _dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "RAY_USAGE_STATS_ENABLED=0" in env


def test_image_entry_point_is_curate_behind_the_ray_joining_script():
    instructions = _dockerfile_instructions()
    (entrypoint,) = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["curate-entrypoint", "curate"]
    script = INFRA / "entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert 'exec "$@"' in script.read_text()


def test_entrypoint_runs_its_command_unchanged_without_ray_address(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["sh", str(INFRA / "entrypoint.sh"), "echo", "curate", "text"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0 and result.stdout == "curate text\n"


def test_entrypoint_joins_ray_address_with_no_cpus_before_running(tmp_path):
    fake_ray = tmp_path / "ray"
    fake_ray.write_text('#!/bin/sh\necho "ray $*"\n')
    fake_ray.chmod(0o755)
    result = subprocess.run(
        ["sh", str(INFRA / "entrypoint.sh"), "echo", "flows"],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "RAY_ADDRESS": "ray-head:6379"},
    )
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "ray start --address=ray-head:6379 --num-cpus=0 --num-gpus=0 --disable-usage-stats",
        "flows",
    ]


def test_every_file_the_image_copies_exists_and_is_in_the_build_context():
    allowed = {
        line[1:]
        for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = [rest for keyword, rest in _dockerfile_instructions() if keyword == "COPY"]
    assert copies
    for copy in copies:
        sources = [a for a in copy.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is left out of the build context"


# --------------------------------------------------------------------------- environment


def _project_source() -> str:
    files = [*ROOT.glob("flows/**/*.py"), *ROOT.glob("stages/**/*.py"), INFRA / "entrypoint.sh"]
    return "\n".join(p.read_text() for p in files)


def _named_in_package(package: str, name: str) -> bool:
    spec = importlib.util.find_spec(package)
    root = Path(spec.origin).parent
    pattern = re.compile(rf"""["']{re.escape(name)}["']""")
    return any(pattern.search(p.read_text(errors="ignore")) for p in root.rglob("*.py"))


def _handed_environment() -> dict[str, set[str]]:
    """variable -> where it is set, for every process that runs the curate image."""
    names: dict[str, set[str]] = {}
    for name, service in _compose()["services"].items():
        if _uses_curate_image(service):
            for key in service.get("environment", {}):
                names.setdefault(key, set()).add(f"compose {name}")
    for container in _curate_containers():
        for key in _configmap_env(container):
            names.setdefault(key, set()).add(f"k8s {container['name']}")
    return names


def test_every_variable_handed_to_curate_is_read_by_curate_prefect_ray_or_the_aws_sdk():
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    prefect_settings = set(_get_valid_setting_names(Settings))
    source = _project_source()
    unread = []
    for name, where in sorted(_handed_environment().items()):
        if re.search(rf"""["']{name}["']""", source):
            continue
        if name.startswith("PREFECT_") and name in prefect_settings:
            continue
        if name.startswith("AWS_") and _named_in_package("botocore", name):
            continue
        if name.startswith("RAY_") and _named_in_package("ray._private", name):
            continue
        unread.append(f"{name} ({', '.join(sorted(where))})")
    assert unread == []


def test_the_environment_check_catches_a_variable_nobody_reads():
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    assert "PREFECT_API_URLS" not in set(_get_valid_setting_names(Settings))
    assert not re.search(r"""["']CURATE_RAY_ADRESS["']""", _project_source())
    assert not _named_in_package("botocore", "AWS_ENDPOINT_URI")


def test_the_flow_processes_get_s3_prefect_and_ray_settings():
    handed = _handed_environment()
    for name in ("RAY_ADDRESS", "PREFECT_API_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        assert any(w.startswith("compose flows") for w in handed[name]), name
        assert any(w.startswith("k8s prefect-worker") for w in handed[name]), name


def test_compose_flow_server_runs_a_curate_command_the_cli_has():
    from flows.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    command = _compose()["services"]["flows"]["command"][0]
    if command == "serve" and "serve" not in subparsers.choices:
        pytest.skip("`curate serve` is not in the CLI yet")
    assert command in subparsers.choices
