"""Connecting to Ray the same way for every job: local on a laptop, or a cluster by address."""
from __future__ import annotations

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


@contextmanager
def ray_session(config: RayConfig) -> Iterator[None]:
    """Use the running Ray if there is one (tests, `ray job submit`), else start one and stop it after."""
    import ray

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(config.start_timeout_s))
    started_here = False
    if not ray.is_initialized():
        if config.address:
            ray.init(address=config.address, log_to_driver=True)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=True)
        else:
            ray.init(num_cpus=local_num_cpus(config), include_dashboard=True, log_to_driver=True)
        started_here = True
    configure_data_context()
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def configure_data_context() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    # progress bars flood job logs and CI (ray#47735): only on a terminal
    context.enable_progress_bars = sys.stdout.isatty()
    context.print_on_execution_start = False


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))
