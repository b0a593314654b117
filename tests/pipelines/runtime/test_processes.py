"""The process table `vaepipe ray down` and the daemon-priority rule read from /proc."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipelines.runtime.processes import descendants, process_table, socket_inodes, tcp_listeners
from tests.scheduler_policies import scheduler_policies

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


# A process that keeps starting threads and child processes from eight threads, as a Ray daemon does while it
# starts up (the dashboard starting its modules): a single pass over its threads and processes missed some.
_CHURN = """
import subprocess, threading, time
children = []
def churn():
    while True:
        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()
        if len(children) < 16:
            children.append(subprocess.Popen(["sleep", "60"]))
        time.sleep(0.002)
for _ in range(8):
    threading.Thread(target=churn, daemon=True).start()
print("churning", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_daemon_starting_threads_and_processes_is_left_with_none_at_normal_priority():
    from pipelines.runtime.processes import idle_priority_for_daemons

    daemon = subprocess.Popen([sys.executable, "-c", _CHURN], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline().strip() == "churning"
        moved = idle_priority_for_daemons(lambda table: descendants(table, {daemon.pid}), wait_s=0)
        time.sleep(0.3)  # threads and processes it starts from now on inherit the policy
        tree = descendants(process_table(), {daemon.pid})
        policies = scheduler_policies(tree)
        assert moved >= 2 and len(policies) >= 2, policies
        assert all(found == {os.SCHED_IDLE} for found in policies.values()), policies
    finally:
        for pid in descendants(process_table(), {daemon.pid}):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        daemon.wait()


@pytest.mark.parametrize("family, address", [("AF_INET", "127.0.0.1"), ("AF_INET6", "::")])
def test_a_listening_socket_is_found_by_its_port_and_owned_by_this_process_until_closed(family, address):
    import socket

    if family == "AF_INET6" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    listener = socket.socket(getattr(socket, family))
    listener.bind((address, 0))
    port = listener.getsockname()[1]
    assert port not in tcp_listeners()  # bound, not listening
    listener.listen()
    (inode,) = tcp_listeners()[port]
    assert inode in socket_inodes({os.getpid()})
    assert inode not in socket_inodes({os.getppid()})
    listener.close()
    assert port not in tcp_listeners()
