"""This machine's processes, read from /proc: who started whom, and CPU priority for Ray's own daemons.

Ray's daemons (the dashboard and its modules, the dashboard and runtime-env agents, the log and autoscaler
monitors) each wake 20-140 times a second at nice 0; on 2 cores every wakeup preempts one of the two
intra-op threads of a training step, and the other waits for it at the next barrier (MLP, 1 worker x 2
threads: +13 % samples/s with these at SCHED_IDLE, alternating epochs). Nice 19 does not do it (+3 %): the
kernel still lets a waking nice-19 task preempt.

Ray's worker processes that do not train do the same: each one's main thread wakes every 10 ms (the core
worker's signal check, a constant in Ray), and a Train job runs a dozen of them beside its workers (Train's
controller and synchronization actors, Ray Data's split coordinator, stats and autoscaling actors, idle pooled
workers). `idle_unless_training` is the setup hook that moves them under SCHED_IDLE as they start.
"""
from __future__ import annotations

import os
import time
from typing import Callable

# Ray's daemons by the title the raylet gives the agents it starts, and by the script the others run
DAEMON_TITLES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
DAEMON_SCRIPTS = ("dashboard/dashboard.py", "log_monitor.py", "autoscaler/_private/monitor.py",
                  "autoscaler/v2/monitor.py")


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every running process we can read, from /proc.

    Zombies are left out: they have exited and only wait for their parent to reap them, which a blocked
    `ray start` does not do for the daemons it started (`vaepipe ray down` waited its whole grace period on them)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
                if state != "Z":
                    table[int(entry)] = (int(parent), cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return table


def descendants(table: dict[int, tuple[int, str]], roots: set[int]) -> set[int]:
    """The roots still in `table` (from `process_table`) and every process below them."""
    found, frontier = set(), roots & table.keys()
    while frontier:
        found |= frontier
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - found
    return found


# Passes over a process's threads (and over a Ray's daemons) before giving up on catching every one that a
# not-yet-moved thread starts meanwhile: a daemon starting up took 1-3; the bound only keeps a pathological
# one from holding the job.
MAX_PASSES = 50


def _move_threads(pid: int) -> int:
    """Put every thread of `pid` under SCHED_IDLE; returns how many were not already. A thread started by a
    not-yet-moved thread while this runs inherits the old policy, so the threads are listed again until a pass
    finds none to move (threads started by moved ones inherit SCHED_IDLE). OSError: the process is gone or not
    ours."""
    moved = 0
    for _ in range(MAX_PASSES):
        found = 0
        for thread in os.listdir(f"/proc/{pid}/task"):
            try:
                if os.sched_getscheduler(int(thread)) != os.SCHED_IDLE:
                    os.sched_setscheduler(int(thread), os.SCHED_IDLE, os.sched_param(0))
                    found += 1
            except ProcessLookupError:
                pass  # that thread ended meanwhile
        moved += found
        if not found:
            break
    return moved


def _move_processes(pids: set[int]) -> tuple[int, int]:
    """(processes reached, threads moved) of `_move_threads` over `pids`; those gone or not ours are skipped."""
    reached = moved = 0
    for pid in pids:
        try:
            moved += _move_threads(pid)
            reached += 1
        except OSError:
            continue  # exited meanwhile, or not ours to change
    return reached, moved


def set_idle_priority(pids: set[int]) -> int:
    """Put every thread of these processes under SCHED_IDLE (threads they start later inherit it); returns
    how many processes it reached. A no-op (0) where the OS has no SCHED_IDLE."""
    if not hasattr(os, "SCHED_IDLE"):
        return 0
    return _move_processes(pids)[0]


def idle_priority_for_daemons(find: Callable[[dict[int, tuple[int, str]]], set[int]], wait_s: float = 10.0) -> int:
    """Put every thread of a Ray's daemons, as `find` picks them from a `process_table`, under SCHED_IDLE;
    returns how many processes it reached.

    The raylet starts the agents a moment after the rest, so this waits up to `wait_s` for both. A daemon may
    have started a process before it was moved (the dashboard starts its modules), so the table is read again
    until the daemons not yet seen have no thread left to move (processes started by moved ones inherit it)."""
    if not hasattr(os, "SCHED_IDLE") or not os.path.isdir("/proc"):
        return 0
    deadline = time.monotonic() + wait_s
    while True:
        table = process_table()
        daemons = find(table)
        titles = {table[pid][1].split(" ", 1)[0] for pid in daemons if pid in table}
        if set(DAEMON_TITLES) <= titles or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    seen: set[int] = set()
    reached = 0
    for _ in range(MAX_PASSES):
        fresh = daemons - seen
        found, moved = _move_processes(fresh)
        seen |= fresh
        reached += found
        if not moved:
            break
        daemons = find(process_table())
    return reached


# Set (to anything) in the runtime environment of the workers that train (`training.trainer`); a train or tune
# job's other workers, on a Ray vaepipe started with `ray.daemon_priority: idle`, run under SCHED_IDLE
TRAINING_WORKER_VARIABLE = "VAEPIPE_TRAINING_WORKER"
IDLE_UNLESS_TRAINING_HOOK = "pipelines.runtime.processes.idle_unless_training"


def idle_unless_training() -> None:
    """Ray's `worker_process_setup_hook` for a local Ray: a worker that does not train puts itself (its threads,
    and those it starts later) under SCHED_IDLE. Inside a 1-worker MLP Train job on 2 cores the training
    threads were switched out ~700 times a second each, about once per wakeup of the other workers; with those
    under SCHED_IDLE the same worker ran 7-10 % faster (rounds alternating; docs/design.md, "Ray on small
    machines")."""
    if TRAINING_WORKER_VARIABLE not in os.environ:
        set_idle_priority({os.getpid()})


def node_processes(table: dict[int, tuple[int, str]], root_pid: int, temp_dir: str) -> set[int]:
    """A `ray start` node's processes: the `ray start` process, its descendants, and anything running from the
    node's temp dir (workers and drivers run in process groups of their own)."""
    return descendants(table, {root_pid}) | {pid for pid, (_, cmd) in table.items() if str(temp_dir) in cmd}


def tcp_listeners() -> dict[int, set[str]]:
    """Every TCP port something on this host listens on (any address, IPv4 or IPv6) → the socket inodes
    listening on it, from /proc/net."""
    listeners: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if fields[3] == "0A":  # LISTEN
                        listeners.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(fields[9])
        except OSError:  # no IPv6
            continue
    return listeners


def socket_inodes(pids: set[int]) -> set[str]:
    """The inodes of the sockets these processes hold open (those gone or not ours are skipped)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes
