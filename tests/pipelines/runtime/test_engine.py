"""`engine: auto | ray | local`: which engine a job runs on, and the line that says why."""
from __future__ import annotations

import sys

import pytest

from pipelines.runtime.engine import (ENV_AUTO_LOCAL_MAX_ROWS, MEASURED_CROSSOVER_ROWS, EngineError,
                                      auto_local_max_rows, choose_engine)


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    """Nothing names a cluster, no warm Ray (a VAEPIPE_HOME of the test's own), the measured crossover."""
    for name in ("RAY_ADDRESS", ENV_AUTO_LOCAL_MAX_ROWS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAEPIPE_HOME", str(tmp_path))
    # In `make test` the session's own Ray is connected in this process (tests/conftest.py `ray_cluster`),
    # which `auto` rightly reads as a cluster; these tests are about a process that is not connected.
    ray = sys.modules.get("ray")
    if ray is not None:
        monkeypatch.setattr(ray, "is_initialized", lambda: False)


def test_auto_runs_small_jobs_locally_and_says_why():
    choice = choose_engine("auto", 1_797)
    assert choice.engine == "local"
    assert choice.line.startswith("engine: local (auto: 1,797 rows ≤ ") and "measured faster" in choice.line


def test_auto_takes_ray_beyond_the_largest_size_where_local_was_measured_faster():
    limit = MEASURED_CROSSOVER_ROWS["cold"]
    assert auto_local_max_rows(warm=False) == limit
    assert choose_engine("auto", limit).engine == "local"
    choice = choose_engine("auto", limit + 1)
    assert choice.engine == "ray" and f"{limit + 1:,} rows > {limit:,}" in choice.line


@pytest.mark.parametrize("address, environment, named", [
    ("auto", None, "ray.address is auto"),
    ("ray://head:10001", None, "ray.address is ray://head:10001"),
    (None, "10.0.0.5:6379", "RAY_ADDRESS is 10.0.0.5:6379"),
])
def test_auto_always_takes_ray_when_attached_to_a_cluster(monkeypatch, address, environment, named):
    if environment:
        monkeypatch.setenv("RAY_ADDRESS", environment)
    choice = choose_engine("auto", 10, address)
    assert choice.engine == "ray" and named in choice.line


def test_the_threshold_can_be_set_for_another_machine(monkeypatch):
    monkeypatch.setenv(ENV_AUTO_LOCAL_MAX_ROWS, "1000")
    assert choose_engine("auto", 1000).engine == "local"
    assert choose_engine("auto", 1001).engine == "ray"
    monkeypatch.setenv(ENV_AUTO_LOCAL_MAX_ROWS, "lots")
    with pytest.raises(EngineError, match="not a whole number"):
        choose_engine("auto", 10)


def test_asked_for_engines_are_kept_and_local_is_refused_when_the_job_cannot_run_in_one_process():
    assert choose_engine("ray", 10).line == "engine: ray (asked for)"
    assert choose_engine("local", 10**9, "auto").engine == "local"  # asked for: even attached
    blocker = "the training rows do not fit in train.cache_limit_mb (64 MB) in one process"
    with pytest.raises(EngineError, match="engine local cannot run this job: the training rows do not fit"):
        choose_engine("local", 10, local_blocker=blocker)
    assert choose_engine("auto", 10, local_blocker=blocker).line == f"engine: ray (auto: {blocker})"


def test_auto_takes_ray_in_a_process_already_connected_to_one(monkeypatch):
    import ray
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # as in a notebook after ray.init()
    choice = choose_engine("auto", 10)
    assert choice.engine == "ray" and "this process is connected to a Ray cluster" in choice.line
