"""Connecting to Ray the same way for every job: local on a laptop, or a cluster by address."""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from functools import partial
from typing import Iterator, Literal, Optional

from pydantic import Field

from pipelines.config import StrictModel
from pipelines.errors import UserError
from pipelines.runtime import ray_console, ray_private
from pipelines.runtime.ports import START_ATTEMPTS, answers, free_ports
from pipelines.runtime.processes import (DAEMON_TITLES, IDLE_UNLESS_TRAINING_HOOK, descendants,
                                         idle_priority_for_daemons)
from pipelines.runtime.warm_ray import WarmRay, warm_ray_address

logger = logging.getLogger(__name__)

# How long a job waits for the GCS it attaches to to accept a connection. Ray's own `ray.init` to an address where
# nothing answers retries for longer than 10 minutes here, then raises from inside Ray.
GCS_ANSWER_WAIT_S = 5.0

# Quiet, predictable Ray for batch jobs. Set by `configure_ray_environment` when a job starts its Ray
# session (never at import), before `ray.init` starts the processes that read them; a value already in
# the environment wins.
RAY_ENVIRONMENT = {
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "RAY_TRAIN_V2_ENABLED": "1",
    # Train V2 patches print() into its logger *and* stdout, so every line came twice
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # Train V2's controller takes one report per poll of its workers, every 2 s by default, and a worker's
    # queue holds one: an epoch shorter than that waited for the poll (a 300-epoch small table: 714 s).
    # A poll that does not answer in time is only retried, not failed (RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S).
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
}


def job_runtime_env(daemon_priority: Literal["idle", "normal"], trains: bool,
                    given: Optional[dict] = None) -> dict:
    """`ray.init`'s runtime environment for a job on a Ray vaepipe started (its own, or `vaepipe ray up`'s): in a
    train or tune job with idle priority, its workers that do not train run under SCHED_IDLE. `given`: the
    caller's own runtime environment, kept (with its own setup hook, if it has one, instead of ours)."""
    runtime_env = dict(given or {})
    if daemon_priority == "idle" and trains:
        runtime_env.setdefault("worker_process_setup_hook", IDLE_UNLESS_TRAINING_HOOK)
    return {"runtime_env": runtime_env} if runtime_env else {}


def configure_ray_environment(extra: Optional[dict[str, str]] = None) -> None:
    """Put `RAY_ENVIRONMENT` (and a job's `extra` settings) into this process's environment, unless set."""
    for name, value in {**RAY_ENVIRONMENT, **(extra or {})}.items():
        os.environ.setdefault(name, value)


class RayConfig(StrictModel):
    """How a job reaches Ray."""

    address: Optional[str] = Field(
        None, description="Ray cluster address (e.g. ray://head:10001 or auto); unset starts a local Ray")
    num_cpus: Optional[float] = Field(
        None, gt=0, description="logical CPUs of a local Ray (default: this machine's cores, at least 4, so that "
                                "fractional workers and Ray Data reads both get scheduled)")
    object_store_mb: Optional[int] = Field(
        None, ge=100, description="object store memory of a local Ray the job starts, in MiB (default: Ray's, 30 % "
                                  "of the memory available at start); Ray Data spills to disk beyond it. Ignored "
                                  "when the job attaches to a running Ray, whose store was sized when it started")
    start_timeout_s: float = Field(
        120, gt=0, description="seconds a job waits for its workers to be scheduled before it fails")
    scale_up_timeout_s: float = Field(
        900, gt=0, description="on a cluster vaepipe attached to whose autoscaler can add nodes: seconds train and "
                               "tune wait for the nodes they asked it for before failing with what they asked for "
                               "(a cold GPU node takes minutes: the instance, its driver, pulling the image)")
    daemon_priority: Literal["idle", "normal"] = Field(
        "idle", description="CPU priority of a local Ray's own daemons (dashboard and its modules, the dashboard "
                            "and runtime-env agents, the log and autoscaler monitors; never the GCS or the raylet) "
                            "and, in train and tune jobs, of the job's workers that do not train (Train's "
                            "controller, Ray Data's coordinator and reads), on a Ray the job starts or the one "
                            "`vaepipe ray up` started: idle runs them only on CPU time nothing else wants (Linux "
                            "SCHED_IDLE), so they do not preempt training; normal leaves them as Ray starts them. "
                            "A cluster given by address is never touched")


def local_num_cpus(config: RayConfig) -> float:
    # Logical CPUs, not cores: Ray only uses the number to schedule. Declaring at
    # least 4 on a 2-core machine leaves slots for Ray Data tasks beside the train
    # workers (docs/design.md, "Ray on small machines": the three hangs seen were all starved reads).
    return config.num_cpus or float(max(4, os.cpu_count() or 1))


# Ray's own daemons, by the process type Ray records (started by `ray.init`) or the title it gives them
# (the agents, started by the raylet): why they run at idle priority is `runtime.processes`' docstring.
_DAEMON_PROCESS_TYPES = ("dashboard", "log_monitor", "monitor")


def _local_daemons(node, table: dict[int, tuple[int, str]]) -> set[int]:
    """pids of the node's daemons and of their descendants (the dashboard's module processes)."""
    recorded = ray_private.node_processes(node)
    roots = {pid for kind in _DAEMON_PROCESS_TYPES for pid in recorded.get(kind, [])}
    raylets = set(recorded.get("raylet", []))
    roots |= {pid for pid, (parent, cmd) in table.items() if parent in raylets and cmd.startswith(DAEMON_TITLES)}
    return descendants(table, roots)


# What `local_ray` puts in this process's environment for the Ray it starts (and its processes inherit): a
# process meant for another Ray must not inherit them (a `ray start` given the GCS port took that Ray's).
ADDRESS_VARIABLES = ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")


@contextmanager
def explicit_address() -> Iterator[None]:
    """Around a call given another cluster's address: Ray's JobSubmissionClient and state API let
    RAY_API_SERVER_ADDRESS / RAY_ADDRESS win over the address they are given (a stale shell variable, or the
    Ray this process started), so those and `ADDRESS_VARIABLES` are taken out of the environment meanwhile."""
    saved = {name: os.environ.pop(name) for name in ("RAY_API_SERVER_ADDRESS", *ADDRESS_VARIABLES)
             if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def restore_environment(saved: dict[str, Optional[str]]) -> None:
    """Put variables back as `saved` recorded them (None: unset)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def environment_variables(variables: dict[str, str]) -> Iterator[None]:
    """`variables` in this process's environment meanwhile (for the processes it starts), as they were after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        restore_environment(saved)


@contextmanager
def local_ray(num_cpus: float, daemon_priority: Literal["idle", "normal"] = "normal", trains: bool = True,
              **init_kwargs) -> Iterator[str]:
    """Start a local Ray whose every process knows its own address; yields that GCS address.

    Ray's state API, used inside Ray Train (its placement-group cleaner), finds
    "its" cluster by auto-detection, which refuses to choose when another Ray
    runs on the machine — and then leaks placement groups until later jobs hang.
    Fixing the GCS port before start lets RAY_ADDRESS reach the raylet's
    environment, which every worker inherits.

    `trains`: whether jobs on it run Ray Train or Tune (`ray_session`'s).
    """
    configure_ray_environment()
    import ray

    from pipelines.runtime.cluster_capacity import forget_started_here, remember_started_here

    runtime = job_runtime_env(daemon_priority, trains, init_kwargs.pop("runtime_env", None))
    saved = {name: os.environ.get(name) for name in ADDRESS_VARIABLES}
    # read by the raylet as it starts: only workers of the job's runtime environment could serve its tasks
    prestart = ray_private.NO_PRESTARTED_WORKERS if runtime else {}
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            (port,) = free_ports(1)
            address = f"{ray_private.node_ip_address()}:{port}"
            os.environ.update(RAY_ADDRESS=address, RAY_GCS_SERVER_PORT=str(port))
            try:
                with ray_console.connecting(), environment_variables(prestart):
                    ray.init(address="local", num_cpus=num_cpus, include_dashboard=trains, **runtime, **init_kwargs)
                break
            except RuntimeError as err:
                # the port was taken between its choice and the GCS's bind (by another process's bind to port 0)
                if not str(err).startswith("Failed to start GCS") or attempt == START_ATTEMPTS:
                    raise
                ray.shutdown()
                logger.warning("the local Ray's GCS could not start on port %s (attempt %s of %s); starting it on "
                               "another", port, attempt, START_ATTEMPTS)
        remember_started_here(ray.get_runtime_context().gcs_address)  # fixed in size: cluster_capacity
        if daemon_priority == "idle":
            idle_priority_for_daemons(partial(_local_daemons, ray_private.local_node()))
        yield address
    finally:
        if ray.is_initialized():
            forget_started_here(ray.get_runtime_context().gcs_address)
        ray.shutdown()
        restore_environment(saved)


@contextmanager
def ray_session(config: RayConfig, environment: Optional[dict[str, str]] = None, *,
                trains: bool = True) -> Iterator[None]:
    """Use the running Ray if there is one (tests, `ray job submit`), else attach to the cluster `config.address`,
    RAY_ADDRESS or `vaepipe ray up` names, else start one and stop it after.

    `environment`: a job's own Ray settings (e.g. Tune's checkpoint period), set with `RAY_ENVIRONMENT`
    before Ray is imported; jobs import Ray's libraries inside the session.
    `trains`: whether the job runs Ray Train or Tune. A Ray started here for it runs the dashboard's modules
    (Train's and Tune's placement-group cleaner asks the State API; without it trials leak placement groups and
    hang, docs/design.md "Ray on small machines"), and the job's workers that do not train run under SCHED_IDLE
    (`RayConfig.daemon_priority`). A batch job needs neither: its `ray.init` returns ~2 s sooner on 2 cores
    without the modules, and the setup hook only cost it time (scoring 1M rows, alternating runs: fixed start
    12.0 / 12.2 s with it, 11.0 / 9.7 s with `daemon_priority: normal`; likely the runtime environment it
    needs, which Ray's pooled workers lack)."""
    configure_ray_environment({"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(config.start_timeout_s),
                               **ray_console.environment(), **(environment or {})})
    import ray

    if ray.is_initialized():
        configure_data_context()
        yield
        return
    # a cluster named by the config or the environment, else the warm local Ray of `vaepipe ray up`
    address = config.address or os.environ.get("RAY_ADDRESS")
    warm = None if address else _answering_warm_ray()
    if address:
        _check_cluster_address(address, "ray.address" if config.address else "RAY_ADDRESS")
    if address or warm:
        # a cluster given by address is never touched; the warm Ray is one vaepipe started
        runtime = job_runtime_env(config.daemon_priority, trains) if warm else {}
        try:
            with ray_console.connecting():
                ray.init(address=address or warm, **runtime, **ray_console.init_options())
        except ConnectionError as err:  # it stopped after answering
            raise UserError(f"could not attach to the Ray at {address or warm}: {err}") from None
        try:
            configure_data_context()
            yield
        finally:
            ray.shutdown()
        return
    store = {} if config.object_store_mb is None else {"object_store_memory": config.object_store_mb * 2**20}
    with local_ray(local_num_cpus(config), config.daemon_priority, trains, **store,
                   **ray_console.init_options()):
        configure_data_context()
        yield


def _resolved_by_ray(address: str) -> bool:
    """`auto`, `local` or a client address (`ray://`): Ray finds what to dial itself."""
    return address in ("auto", "local") or "://" in address


def _gcs_answers(address: str) -> bool:
    """Whether a GCS `address` (host:port) accepts a connection where `ray.init` dials it, within
    `GCS_ANSWER_WAIT_S`; True for an address Ray resolves itself."""
    if _resolved_by_ray(address):
        return True
    host, _, port = ray_private.dialled_address(address).rpartition(":")
    deadline = time.monotonic() + GCS_ANSWER_WAIT_S
    while not answers(host.strip("[]"), int(port), timeout_s=1.0):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return True


def _check_cluster_address(address: str, named_by: str) -> None:
    """A cluster address a job is given must answer, and as a Ray GCS, before `ray.init` is handed it."""
    if not _gcs_answers(address):
        raise UserError(f"no Ray cluster answers at {address} (given by {named_by}) within {GCS_ANSWER_WAIT_S:g} s: "
                        f"start it, or unset {named_by} to run on a local Ray")
    if not _resolved_by_ray(address) and \
            not ray_private.answers_as_gcs(ray_private.dialled_address(address), GCS_ANSWER_WAIT_S):
        raise UserError(f"{address} (given by {named_by}) answers, but not as a Ray cluster's GCS: a job attaches to "
                        "the GCS address, host:6379 unless the head was started with another --port (not the "
                        "dashboard's host:8265, which `ray job submit` takes)")


def _answering_warm_ray() -> Optional[str]:
    """The warm Ray's address when it answers where Ray dials it (the node's address, not loopback); None
    when there is none, or it stopped since it was found (the job then starts its own Ray, as with none)."""
    warm = warm_ray_address()
    if warm is None or _gcs_answers(warm):
        return warm
    warm_ray = WarmRay()
    if warm_ray.status() is None:
        logger.warning("the local Ray of `vaepipe ray up` at %s stopped; this job starts a Ray of its own "
                       "(its log: %s)", warm, warm_ray.log_file)
        return None
    raise UserError(f"the local Ray of `vaepipe ray up` answers at {warm} but not at "
                    f"{ray_private.dialled_address(warm)}, where Ray connects to it; see {warm_ray.log_file}, "
                    "and `vaepipe ray down` to stop it")


def configure_data_context() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    # progress bars flood job logs and CI (ray#47735): only on a terminal
    context.enable_progress_bars = sys.stdout.isatty()
    context.print_on_execution_start = False
    # the v1 Parquet reader (score and embed, reader.read_split) logs its size sampling at INFO on every job
    ray_private.quiet_parquet_datasource()
    # Ray's own output stays off the console unless `vaepipe --verbose` (runtime.ray_console)
    ray_console.quiet_driver()

