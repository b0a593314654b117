"""How vaepipe starts a local Ray: its daemons yield the CPU to the jobs' workers."""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below `root`."""
    parents, commands = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                commands[int(entry)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.update({pid: commands[pid] for pid in frontier})
    return found


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(thread)) for thread in os.listdir(f"/proc/{pid}/task")}


def test_a_local_rays_daemons_run_at_idle_priority_and_its_core_and_workers_do_not(ray_cluster):
    import ray

    @ray.remote(num_cpus=0.01)
    def worker_pid() -> int:
        return os.getpid()

    worker = ray.get(worker_pid.remote())
    processes = _descendants(os.getpid())
    assert worker in processes

    def pids(*marks: str) -> list[int]:
        return [pid for pid, command in processes.items() if any(mark in command for mark in marks)]

    daemons = pids("dashboard/dashboard.py", "ray-dashboard-", "ray::DashboardAgent", "ray::RuntimeEnvAgent",
                   "log_monitor.py", "autoscaler/_private/monitor.py")
    assert len(daemons) >= 5, processes
    assert all(_policies(pid) == {os.SCHED_IDLE} for pid in daemons), {pid: _policies(pid) for pid in daemons}
    for pid in [*pids("gcs_server", "raylet/raylet"), worker]:
        assert os.SCHED_IDLE not in _policies(pid), processes[pid]
