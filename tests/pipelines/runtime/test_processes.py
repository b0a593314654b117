"""The process table `vaepipe ray down` and the daemon-priority rule read from /proc."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipelines.runtime.processes import descendants, process_table

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_a_child_that_exited_but_is_not_reaped_is_not_a_running_process():
    # what a blocked `ray start` leaves of the daemons it started: `ray down` waited out its grace period on them
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(child.pid) == "Z"
        assert child.pid not in process_table()
        assert child.pid not in descendants(process_table(), {os.getpid()})
    finally:
        child.wait()


def test_a_running_child_is_found_under_this_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        table = process_table()
        assert table[child.pid][0] == os.getpid() and "time.sleep(30)" in table[child.pid][1]
        assert child.pid in descendants(table, {os.getpid()})
    finally:
        child.kill()
        child.wait()
