"""How vaepipe starts a local Ray: its daemons and the workers that do not train yield the CPU to the training
workers; its object store is the size a job's config asks for."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.runtime.processes import descendants, process_table
from tests.ray_nodes import outside_session_ray
from tests.scheduler_policies import scheduler_policies

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_local_rays_daemons_and_non_training_workers_run_at_idle_priority_and_its_core_and_trainers_do_not(
        ray_cluster):
    import ray

    from pipelines.runtime.processes import TRAINING_WORKER_VARIABLE

    @ray.remote(num_cpus=0.01)
    def worker_pid() -> int:
        return os.getpid()

    # a worker of the environment `training.trainer` gives Ray Train's workers, and a plain one
    trainer = ray.get(worker_pid.options(runtime_env={"env_vars": {TRAINING_WORKER_VARIABLE: "1"}}).remote())
    worker = ray.get(worker_pid.remote())
    table = process_table()
    processes = {pid: table[pid][1] for pid in descendants(table, {os.getpid()}) - {os.getpid()}}
    assert {worker, trainer} <= processes.keys()

    def pids(*marks: str) -> list[int]:
        return [pid for pid, command in processes.items() if any(mark in command for mark in marks)]

    daemons = pids("dashboard/dashboard.py", "ray-dashboard-", "ray::DashboardAgent", "ray::RuntimeEnvAgent",
                   "log_monitor.py", "autoscaler/_private/monitor.py")
    assert len(daemons) >= 5, processes
    # idle workers too, but those of the trainers' environment (they train once given an actor): Ray prestarted
    # workers without the job's runtime environment, which no task of the job could use, at normal priority
    # (ray_private.NO_PRESTARTED_WORKERS keeps it from starting them)
    spare = [pid for pid in pids("ray::IDLE")
             if TRAINING_WORKER_VARIABLE not in Path(f"/proc/{pid}/environ").read_text()]
    core = pids("gcs_server", "raylet/raylet")
    policies = scheduler_policies([*daemons, worker, *spare, *core, trainer])
    idle = {f"{processes[pid]} ({pid})": policies.get(pid) for pid in [*daemons, worker, *spare]}
    assert [name for name, found in idle.items() if found != {os.SCHED_IDLE}] == [], idle
    for pid in [*core, trainer]:
        assert os.SCHED_IDLE not in policies[pid], processes[pid]


def in_a_fresh_process(code: str) -> subprocess.CompletedProcess:
    """`code` run by a new Python outside the session's Ray (this process has it running); it must succeed."""
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=200,
                         env={**outside_session_ray(), "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"})
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_job_started_ray_gets_the_object_store_its_config_asks_for():
    # a fresh process: the session's Ray is running in this one, and a job attaching to it keeps that store
    code = ("import ray\n"
            "from pipelines.runtime.ray_session import RayConfig, ray_session\n"
            "with ray_session(RayConfig(num_cpus=1, object_store_mb=150), trains=False):\n"
            "    print('store', ray.cluster_resources()['object_store_memory'])\n")
    run = in_a_fresh_process(code)
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("store ")]
    assert float(line.split()[1]) == pytest.approx(150 * 2**20, rel=0.01)


def test_an_object_store_below_what_ray_accepts_is_refused_in_the_config():
    from pydantic import ValidationError

    from pipelines.runtime.ray_session import RayConfig

    with pytest.raises(ValidationError, match="object_store_mb"):
        RayConfig(object_store_mb=50)


def test_a_callers_runtime_environment_is_kept_beside_the_idle_hook():
    from pipelines.runtime.processes import IDLE_UNLESS_TRAINING_HOOK
    from pipelines.runtime.ray_session import job_runtime_env

    given = {"env_vars": {"A": "1"}}
    assert job_runtime_env("idle", True, given) == {
        "runtime_env": {"env_vars": {"A": "1"}, "worker_process_setup_hook": IDLE_UNLESS_TRAINING_HOOK}}
    assert given == {"env_vars": {"A": "1"}}  # not changed in place
    assert job_runtime_env("idle", False, given) == job_runtime_env("normal", True, given) == {"runtime_env": given}
    assert job_runtime_env("idle", True, {"worker_process_setup_hook": "mine.hook"}) == {
        "runtime_env": {"worker_process_setup_hook": "mine.hook"}}
    assert job_runtime_env("normal", False) == {}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_job_started_ray_whose_gcs_port_was_taken_starts_on_another():
    """The race is injected (the port chosen free is taken before the GCS binds it: another process's bind to port
    0, which cannot be timed for real); the failed start and the one after it are real. Ray's client gives a GCS
    that never answers two 5-s connection waits, then `RAY_py_gcs_connect_timeout_s` (30 s) more: with 10, the
    same failure came after 20 s instead of 40, and the start after it took 4 s."""
    code = ("import os, socket\n"
            "os.environ['RAY_py_gcs_connect_timeout_s'] = '10'\n"  # before Ray is imported, as Ray reads its config
            "import ray\n"
            "from pipelines.runtime import ray_session\n"
            "from pipelines.runtime.ports import free_ports\n"
            "taken = socket.socket()\n"
            "taken.bind(('', 0))\n"
            "taken.listen()\n"
            "chosen = []\n"
            "def first_taken(count):\n"
            "    chosen.append([taken.getsockname()[1]] if not chosen else free_ports(count))\n"
            "    return chosen[-1]\n"
            "ray_session.free_ports = first_taken\n"
            "with ray_session.local_ray(1, trains=False) as address:\n"
            "    print('chosen', *[ports[0] for ports in chosen])\n"
            "    print('gcs', ray.get_runtime_context().gcs_address, address)\n")
    run = in_a_fresh_process(code)
    (taken, port) = [int(p) for line in run.stdout.splitlines() if line.startswith("chosen ") for p in line.split()[1:]]
    (gcs, address) = [line.split()[1:] for line in run.stdout.splitlines() if line.startswith("gcs ")][0]
    assert gcs == address and gcs.endswith(f":{port}") and port != taken
    assert f"could not start on port {taken} (attempt 1 of 3); starting it on another" in run.stderr
