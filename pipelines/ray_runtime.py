"""Connecting to Ray the same way for every job: local on a laptop, or a cluster by address."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from pydantic import Field

from pipelines.config_loading import StrictModel

# Quiet, predictable Ray for batch jobs; these must be set before `import ray`.
os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Train V2 patches print() into its logger *and* stdout, so every line came twice
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")


class RayConfig(StrictModel):
    """How a job reaches Ray."""

    address: Optional[str] = Field(
        None, description="Ray cluster address (e.g. ray://head:10001 or auto); unset starts a local Ray")
    num_cpus: Optional[float] = Field(
        None, gt=0, description="logical CPUs of a local Ray (default: this machine's cores, at least 4, so that "
                                "fractional workers and Ray Data reads both get scheduled)")
    start_timeout_s: float = Field(
        120, gt=0, description="seconds a job waits for its workers to be scheduled before it fails")


def local_num_cpus(config: RayConfig) -> float:
    # Logical CPUs, not cores: Ray only uses the number to schedule. Declaring at
    # least 4 on a 2-core machine leaves slots for Ray Data tasks beside the train
    # workers (RAY_NOTES.md: the three hangs seen were all starved reads).
    return config.num_cpus or float(max(4, os.cpu_count() or 1))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_ray(num_cpus: float, **init_kwargs) -> Iterator[str]:
    """Start a local Ray whose every process knows its own address; yields that GCS address.

    Ray's state API, used inside Ray Train (its placement-group cleaner), finds
    "its" cluster by auto-detection, which refuses to choose when another Ray
    runs on the machine — and then leaks placement groups until later jobs hang.
    Fixing the GCS port before start lets RAY_ADDRESS reach the raylet's
    environment, which every worker inherits.
    """
    import ray
    from ray._private.services import get_node_ip_address

    port = _free_port()
    address = f"{get_node_ip_address()}:{port}"
    saved = {name: os.environ.get(name) for name in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    os.environ.update(RAY_ADDRESS=address, RAY_GCS_SERVER_PORT=str(port))
    try:
        ray.init(address="local", num_cpus=num_cpus, **init_kwargs)
        yield address
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def ray_session(config: RayConfig) -> Iterator[None]:
    """Use the running Ray if there is one (tests, `ray job submit`), else start one and stop it after."""
    import ray

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(config.start_timeout_s))
    if ray.is_initialized():
        configure_data_context()
        yield
        return
    if config.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=config.address, log_to_driver=True)
        try:
            configure_data_context()
            yield
        finally:
            ray.shutdown()
        return
    with local_ray(local_num_cpus(config), include_dashboard=True, log_to_driver=True):
        configure_data_context()
        yield


def configure_data_context() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    # progress bars flood job logs and CI (ray#47735): only on a terminal
    context.enable_progress_bars = sys.stdout.isatty()
    context.print_on_execution_start = False
    # the v1 Parquet reader (score and embed, reader.read_split) logs its size sampling at INFO on every job
    logging.getLogger("ray.data._internal.datasource.parquet_datasource").setLevel(logging.WARNING)


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))
