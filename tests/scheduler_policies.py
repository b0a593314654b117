"""The scheduling policies of processes' threads, for tests of who yields the CPU (Linux's /proc)."""
from __future__ import annotations

import os


def scheduler_policies(pids) -> dict[int, set[int]]:
    """{pid: the set of its threads' policies (os.SCHED_OTHER, os.SCHED_IDLE, …)} for the `pids` still running;
    a process or thread that ends meanwhile is left out."""
    found = {}
    for pid in pids:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                found.setdefault(pid, set()).add(os.sched_getscheduler(int(thread)))
            except OSError:
                pass  # that thread ended meanwhile
    return found
