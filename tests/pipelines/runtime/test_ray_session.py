"""How vaepipe starts a local Ray: its daemons yield the CPU to the jobs' workers."""
from __future__ import annotations

import os

import pytest

from pipelines.runtime.ray_session import descendants, process_table

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(thread)) for thread in os.listdir(f"/proc/{pid}/task")}


def test_a_local_rays_daemons_run_at_idle_priority_and_its_core_and_workers_do_not(ray_cluster):
    import ray

    @ray.remote(num_cpus=0.01)
    def worker_pid() -> int:
        return os.getpid()

    worker = ray.get(worker_pid.remote())
    table = process_table()
    processes = {pid: table[pid][1] for pid in descendants(table, {os.getpid()}) - {os.getpid()}}
    assert worker in processes

    def pids(*marks: str) -> list[int]:
        return [pid for pid, command in processes.items() if any(mark in command for mark in marks)]

    daemons = pids("dashboard/dashboard.py", "ray-dashboard-", "ray::DashboardAgent", "ray::RuntimeEnvAgent",
                   "log_monitor.py", "autoscaler/_private/monitor.py")
    assert len(daemons) >= 5, processes
    assert all(_policies(pid) == {os.SCHED_IDLE} for pid in daemons), {pid: _policies(pid) for pid in daemons}
    for pid in [*pids("gcs_server", "raylet/raylet"), worker]:
        assert os.SCHED_IDLE not in _policies(pid), processes[pid]
