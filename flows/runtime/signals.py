"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM without losing or publishing anything.

The CLI runs its flow inside `stop_on_signals()`. The first signal asks the run to stop:
no new shard starts (shards already committed stay committed: each shard's marker is
written after its files), Ray is shut down, no version is committed, and the CLI says how
many shards are committed and exits 128 + the signal number (130 for SIGINT, 143 for
SIGTERM); re-running the same command resumes. A second signal exits at once.

Where a run stops:

- while the driver waits for the next shard from Ray (`waiting_for_shards`): at once. The
  driver commits nothing itself (workers write and commit shards), so nothing is half done.
- while the dedup step waits for its Ray tasks (`flows.steps.dedup.gather`): at once.
- anywhere else (planning, the progress updates): at the next check,
  `raise_if_stopped` (before each pass, between shards, before the commit).

The helper processes must outlive the first signal, so that the flow can end properly. A
terminal sends Ctrl-C to its whole foreground process group, `timeout` sends SIGTERM to
its group, and every process the CLI starts is in the CLI's group unless it leaves it:

- Prefect's embedded API (no PREFECT_API_URL) is a uvicorn subprocess
  (`prefect.server.api.server.SubprocessASGIServer`). uvicorn exits on SIGINT and SIGTERM,
  and the flow went on without its API, printed `EventsWorker failed` for minutes and
  exited 1. Prefect has no in-process server (`server.ephemeral.enabled` only allows the
  subprocess), so the `curate` command starts that server itself, first thing
  (`start_prefect_api_early`), in a session of its own, and `stop_on_signals` runs the flow
  with PREFECT_API_URL on it (called in-process, `stop_on_signals` starts it through
  Prefect's own class, whose instance Prefect's clients find running). On Linux it still
  dies with the CLI however the CLI ends (PR_SET_PDEATHSIG), as it did in the CLI's group.
- Ray's local cluster (`ray.init`): Ray blocks SIGINT in the gcs_server, the raylet and
  its Python helpers, and its workers have groups of their own, but SIGTERM reached the
  gcs_server and the raylet, and the driver then exited 1 with no word, or after seconds.
  `ray_in_own_group()` gives those processes a process group of their own as they start;
  they die with the CLI all the same (Ray starts them with PR_SET_PDEATHSIG). One cost:
  after a `kill -9` of the CLI, Ray's agents (the raylet's children) outlive it for about
  a minute and a half, as they do whenever a driver is killed alone; a second Ctrl-C kills
  Ray's groups before it exits.
- the driver itself: Ray's core worker installs a C-level SIGTERM handler (abseil's
  failure signal handler: a stack dump, then SIGABRT, exit 134) and Prefect's flow engine
  one that raises wherever the run is; `rearm()` puts this module's handlers back after
  both, while `stop_on_signals` is active.

Only the CLI installs handlers: flow runs of a deployment (`curate serve`, a worker) keep
Prefect's own SIGTERM handling, with which a runner cancels a flow run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM)

_active = False  # handlers installed (inside `stop_on_signals`)
_stop: int | None = None  # the signal that asked for a stop
_waiting = False  # the driver is waiting for shards: a stop raises at once
_own_group = False  # processes forked now leave the CLI's process group
_api_process: subprocess.Popen | None = None  # the embedded Prefect API, when we started it
_last_stop: RunStopped | None = None  # the latest stop raised (a flow may end Cancelled instead)


class RunStopped(KeyboardInterrupt):
    """The run stopped on a signal. `done` of `total` shards of the `phase` pass were
    committed when it stopped (None: not known)."""

    def __init__(self, signum: int, phase: str | None = None, done=None, total=None):
        global _last_stop
        super().__init__(signum)
        self.signum, self.phase, self.done, self.total = signum, phase, done, total
        _last_stop = self

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.phase == "commit":
            where = f"all {self.total} shards committed, not published"
        elif self.phase == "find-duplicates":
            where = f"all {self.total} shards processed, duplicates not yet found"
        elif self.done is not None:
            where = f"{self.done} of {self.total} shards committed ({self.phase} pass)"
        else:
            where = "committed shards are kept"
        return f"curate: stopped by {name}: {where}; run the same command again to resume"


def stop_requested() -> int | None:
    """The signal number of a pending stop, or None."""
    return _stop


def request_stop(signum: int, frame=None) -> None:
    """The signal handler: the first signal asks for a stop, a second exits at once."""
    global _stop
    if _stop is not None:
        _exit_now(signum)
    _stop = signum
    if _waiting:
        raise RunStopped(signum)


def _exit_now(signum: int) -> None:
    """Exit at once, with the processes that left the CLI's process group: Ray's (their
    own children, Ray's agents, would outlive the CLI by a minute or more) and Prefect's
    embedded API (nothing else would stop it)."""
    name = signal.Signals(signum).name
    line = f"curate: {name} again: stopped at once; run the same command again to resume\n"
    os.write(2, line.encode())
    api = None
    if _api_process is not None:
        api = _api_process.pid
        _api_process.terminate()
    try:
        import psutil  # Ray's, on the path once Ray is imported: so whenever Ray runs

        children = [child.pid for child in psutil.Process().children()]
    except ImportError:
        children = []
    for pid in children:
        try:
            if pid != api and os.getpgid(pid) == pid:  # a group leader: Ray's gcs, raylet...
                os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    os._exit(128 + signum)


def raise_if_stopped(phase: str | None = None, done=None, total=None) -> None:
    """A safe point: raise `RunStopped` when a stop was asked for."""
    if _stop is not None:
        raise RunStopped(_stop, phase, done, total)


@contextmanager
def waiting_for_shards() -> Iterator[None]:
    """Around the driver's wait for Ray's next result: a stop raises here at once."""
    global _waiting
    _waiting = threading.current_thread() is threading.main_thread()  # where handlers run
    try:
        raise_if_stopped()
        yield
    except KeyboardInterrupt as exc:
        # `ray.get` runs the handler while it waits, then raises a KeyboardInterrupt of its
        # own in place of `RunStopped`.
        if _stop is None or isinstance(exc, RunStopped):
            raise
        raise RunStopped(_stop) from None
    finally:
        _waiting = False


def rearm() -> None:
    """Put the handlers back after a library replaced them (see the module docstring)."""
    if _active and threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            signal.signal(signum, request_stop)


def _leave_group_after_fork() -> None:
    if _own_group:
        os.setpgrp()


os.register_at_fork(after_in_child=_leave_group_after_fork)


@contextmanager
def ray_in_own_group() -> Iterator[None]:
    """Around `ray.init`: inside `stop_on_signals`, the processes it starts (gcs_server,
    raylet, Ray's Python helpers) get a process group of their own. Ray starts them with a
    `preexec_fn`, which makes `subprocess` run the at-fork hooks in the child."""
    global _own_group
    _own_group = _active
    try:
        yield
    finally:
        _own_group = False


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Run a flow so that SIGINT and SIGTERM stop it cleanly (main thread only): raises
    `RunStopped` when a signal stopped the run."""
    global _active, _stop, _last_stop
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    _active, _stop, _last_stop = True, None, None
    rearm()
    try:
        with _prefect_api():
            yield
    except BaseException as exc:
        if _stop is None:
            raise
        _shutdown_ray()
        if isinstance(exc, RunStopped):
            raise
        if _last_stop is not None and _last_stop.signum == _stop:
            # The flow ended Cancelled (Prefect raised CancelledRun): the stop it returned.
            raise _last_stop from None
        # Stopped before any safe point (Prefect's own SIGTERM handler raised before
        # `rearm`) or Ray failed as it went down: the same stop.
        raise RunStopped(_stop) from exc
    finally:
        _active = False
        if _stop is None:  # after a stop, a second signal still exits at once until the end
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _shutdown_ray() -> None:
    from flows.runtime.engine import shutdown_ray

    shutdown_ray()


class _NewSessionSubprocess:
    """`subprocess` for Prefect's server module while it starts the server: its `Popen`
    starts a new session, and on Linux the server gets SIGTERM when the CLI ends, however
    it ends (PR_SET_PDEATHSIG, as Ray's processes): out of the CLI's process group, a
    `kill -9` of the group would otherwise leave it running."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs) -> subprocess.Popen:  # noqa: N802 - subprocess's name
        kwargs["start_new_session"] = True
        if sys.platform.startswith("linux"):
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
            kwargs["preexec_fn"] = lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        return subprocess.Popen(*args, **kwargs)


_PR_SET_PDEATHSIG = 1


def _no_info(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO


_early_api: tuple[subprocess.Popen, str] | None = None  # `start_prefect_api_early`'s


def start_prefect_api_early() -> None:
    """The `curate` command's first step: start Prefect's embedded API, the server Prefect
    starts itself (`uvicorn prefect.server.api.server:create_app`, UI off), before the
    flow's modules are imported, so that its start-up (about 4 s of one core) overlaps
    theirs; `stop_on_signals` then runs the flow with PREFECT_API_URL pointing at it.
    Nothing starts when Prefect's settings name an API or rule the embedded one out."""
    global _early_api, _api_process
    import atexit
    import importlib.util
    import socket
    from pathlib import Path

    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_dir = Path(importlib.util.find_spec("prefect").origin).parent.parent
    env = {
        **os.environ,
        **settings.to_environment_variables(exclude_unset=True),
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory"]
    command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
    process = _NewSessionSubprocess.Popen(command, env=env)
    # Normal atexit handlers run after Prefect's workers sent their last logs and events
    # (they drain when threading shuts down).
    atexit.register(_stop_api, process)
    _early_api = (process, f"http://127.0.0.1:{port}/api")
    _api_process = process


def _stop_api(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def _prefect_api() -> Iterator[None]:
    """Around the flow: the API `start_prefect_api_early` started, once it answers, as the
    run's PREFECT_API_URL; else Prefect's embedded API started here (when it will be used)."""
    if _early_api is None:
        _start_prefect_api()
        yield
        return
    import time
    import urllib.request

    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    process, url = _early_api
    deadline = time.monotonic() + get_current_settings().server.ephemeral.startup_timeout_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"Prefect's embedded API exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Prefect's embedded API did not answer at {url} in time")
        time.sleep(0.05)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _start_prefect_api() -> None:
    """Start Prefect's embedded API (when the flow will use it) in a session of its own."""
    global _api_process
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api import server

    api = server.SubprocessASGIServer()  # the instance every Prefect client will use
    if api.running:
        return
    real = server.subprocess
    server.subprocess = _NewSessionSubprocess()
    server.subprocess_server_logger.addFilter(_no_info)  # "Starting temporary server..."
    try:
        api.start()  # stopped at exit (atexit), after Prefect's workers sent their last events
    finally:
        server.subprocess = real
        server.subprocess_server_logger.removeFilter(_no_info)
    _api_process = api.server_process
