"""The model actors' resources: fractional CPUs on CPUs, Ray Data's own CPU reservation beside a GPU actor."""
from __future__ import annotations

import logging

from pipelines.batch.config import ComputeConfig


def test_a_cpu_actor_takes_half_a_cpu_unless_told():
    assert ComputeConfig().actor_resources() == {"num_cpus": 0.5}
    assert ComputeConfig(cpus_per_actor=2).actor_resources() == {"num_cpus": 2}


def test_a_gpu_actor_names_cpus_only_when_asked():
    assert ComputeConfig(use_gpu=True).actor_resources() == {"num_gpus": 1.0}
    assert ComputeConfig(use_gpu=True, gpus_per_actor=0.25, cpus_per_actor=2).actor_resources() == {
        "num_cpus": 2, "num_gpus": 0.25}


class Recorded(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_ray_data_reserves_one_cpu_beside_a_default_gpu_actor_without_its_experimental_warning():
    # Ray Data's own rule for a map stage's resources (the installed release's, not a copy of it); its logger
    # does not propagate to the root, so the warnings are taken from it directly
    from ray.data._internal.execution.operators import map_operator

    recorded = Recorded()
    map_operator.logger.addHandler(recorded)
    try:
        default = map_operator._canonicalize_ray_remote_args(ComputeConfig(use_gpu=True).actor_resources())
        assert default["num_cpus"] == 1 and default["num_gpus"] == 1.0
        assert not [line for line in recorded.lines if "experimental" in line]
        map_operator._canonicalize_ray_remote_args(ComputeConfig(use_gpu=True, cpus_per_actor=0.5).actor_resources())
        assert [line for line in recorded.lines if "experimental" in line]  # what the default no longer asks
    finally:
        map_operator.logger.removeHandler(recorded)
