"""Shared fixtures: a real S3 endpoint (moto's server mode) on 127.0.0.1, one local Ray
cluster per test session, and an isolated Prefect home for every run."""

from __future__ import annotations

import os
import tempfile

import pytest

# Isolate every test run before anything imports prefect or ray.
_RUN_DIR = tempfile.mkdtemp(prefix="curate-tests-")
os.environ.setdefault("PREFECT_HOME", os.path.join(_RUN_DIR, "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("PREFECT_API_URL", None)
os.makedirs(os.path.join(_RUN_DIR, "ray"), exist_ok=True)
os.environ.setdefault("CURATE_RAY_TMPDIR", os.path.join(_RUN_DIR, "ray"))
os.environ.setdefault("CURATE_RAY_NUM_CPUS", "2")
os.environ.setdefault("CURATE_RAY_OBJECT_STORE_MB", "256")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on 127.0.0.1 (moto server); yields the endpoint URL.

    Credentials and the endpoint are set in the environment, which is how s3fs, Ray
    workers and pyarrow find them in production too.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh, empty bucket per test; yields its name."""
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    if fs.exists(name):
        fs.rm(name, recursive=True)
    fs.mkdir(name)
    yield name
    fs.rm(name, recursive=True)


@pytest.fixture(scope="session")
def ray_cluster(s3_endpoint):
    """One local Ray cluster for the whole test session (2 CPUs, small object store).

    Started after the S3 endpoint's variables are set: Ray workers inherit the driver's
    environment when the cluster starts, as they would on a configured cluster.
    """
    from flows.runtime.engine import init_ray, shutdown_ray

    init_ray()
    yield
    shutdown_ray()


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's test harness: a temporary API and database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
