"""A long-lived local Ray (`vaepipe ray up|down|status`) that jobs attach to instead of starting their own.

A job that starts its own Ray pays `ray.init` (3-5 s here) and its teardown (2.5-4.6 s) every time; one
that attaches to a running Ray pays only the connection. `up` runs `ray start --head --block` in its own
session, on free ports (`runtime.ports`) and a temp dir of its own; jobs started from the same directory (or the
same $VAEPIPE_HOME) find it through `ray.json` and attach when `ray.address` and RAY_ADDRESS are unset.

Its workers inherit the environment of `vaepipe ray up` — storage endpoint and credentials included, as a
cluster's nodes carry their own identity — so start it after `vaepipe storage up` (which it applies) or
from the shell whose AWS_* the jobs use. A job whose AWS_ENDPOINT_URL differs from the one the warm Ray was
started with does not attach to it (its workers would read and write another store).

`down` stops exactly this Ray's processes — the `ray start` process, everything below it and anything
running from its temp dir — never with `ray stop`, which stops every Ray on the machine. Nothing here
imports Ray.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional

from pipelines.errors import UserError
from pipelines.runtime.ports import START_ATTEMPTS, answers, free_ports
from pipelines.runtime.processes import (DAEMON_SCRIPTS, DAEMON_TITLES, descendants, idle_priority_for_daemons,
                                         node_processes, process_table, socket_inodes,
                                         tcp_listeners)

HOST = "127.0.0.1"


class WarmRayError(UserError, RuntimeError):
    """The warm local Ray did not start (the message points at its log)."""


class _NotStarted(WarmRayError):
    """A start that cannot succeed on the ports chosen for it: `ray start` exited, or another process took one."""


@dataclass(frozen=True)
class WarmRayInfo:
    address: str          # the GCS address jobs attach to
    dashboard: str        # http://127.0.0.1:PORT
    pid: int              # the `ray start --block` process
    temp_dir: str
    num_cpus: float
    storage_endpoint: Optional[str]  # AWS_ENDPOINT_URL its workers got (None: AWS S3 / a local path)

    def serves_this_environment(self) -> bool:
        """True when this process points at the same store as the warm Ray's workers."""
        return os.environ.get("AWS_ENDPOINT_URL") == self.storage_endpoint


def default_root() -> Path:
    """`$VAEPIPE_HOME/ray`, else `.vaepipe/ray` under the current directory (beside the embedded store's)."""
    home = os.environ.get("VAEPIPE_HOME")
    return (Path(home) if home else Path.cwd() / ".vaepipe") / "ray"


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):  # reap our own child, or a zombie looks alive forever
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes()  # a reused pid is some other program
    except OSError:
        return True


class WarmRay:
    """The warm local Ray whose state lives under `root` (`default_root()`)."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_root()

    @property
    def state_file(self) -> Path:
        return self.root / "ray.json"

    @property
    def log_file(self) -> Path:
        return self.root / "ray-start.log"

    def status(self) -> Optional[WarmRayInfo]:
        """The running warm Ray, or None (never started, stopped, or its process died)."""
        try:
            info = WarmRayInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        port = int(info.address.rsplit(":", 1)[1])
        return info if _alive(info.pid) and answers(HOST, port) else None

    def up(self, num_cpus: float, env: Optional[dict[str, str]] = None, timeout_s: float = 120) -> WarmRayInfo:
        """Start the warm Ray (or return the running one) with `num_cpus` logical CPUs; its processes get this
        process's environment plus `env`. A start that cannot succeed on the ports chosen for it is tried again on
        others, `START_ATTEMPTS` times in all: a port chosen free can be taken before Ray's process binds it (by
        another process's bind to port 0, Ray's own included), and `ray start --block` then stops every process."""
        running = self.status()
        if running is not None:
            return running
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS):
            try:
                return self._start(num_cpus, env, timeout_s)
            except _NotStarted as err:
                with open(self.log_file, "a") as log:
                    log.write(f"vaepipe: {err} (attempt {attempt} of {START_ATTEMPTS}); "
                              "starting again on other ports\n")
        return self._start(num_cpus, env, timeout_s)

    def _start(self, num_cpus: float, env: Optional[dict[str, str]], timeout_s: float) -> WarmRayInfo:
        # short: Ray's unix socket paths live under it and are capped at 107 bytes
        temp_dir = tempfile.mkdtemp(prefix="vaepipe-ray-", dir="/tmp")
        gcs_port, dashboard_port, client_port, agent_port, node_port, object_port, metrics_port = free_ports(7)
        ray = Path(sys.executable).parent / "ray"
        command = [str(ray if ray.exists() else "ray"), "start", "--head", "--block", f"--temp-dir={temp_dir}",
                   "--disable-usage-stats", f"--port={gcs_port}", f"--num-cpus={num_cpus:g}",
                   f"--node-ip-address={HOST}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                   "--include-dashboard=true", f"--ray-client-server-port={client_port}",
                   f"--dashboard-agent-listen-port={agent_port}", f"--node-manager-port={node_port}",
                   f"--object-manager-port={object_port}", f"--metrics-export-port={metrics_port}"]
        process_env = {**os.environ, **(env or {})}
        # Ray's state API (Ray Train's placement-group cleaner) auto-detects "its" cluster and refuses to choose
        # when several run on the machine: every process of this one inherits its own address instead
        # (`ray start --head` itself never reads RAY_ADDRESS)
        process_env["RAY_ADDRESS"] = f"{HOST}:{gcs_port}"
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(command, env=process_env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # outlives the CLI
        info = WarmRayInfo(address=f"{HOST}:{gcs_port}", dashboard=f"http://{HOST}:{dashboard_port}",
                           pid=process.pid, temp_dir=temp_dir, num_cpus=num_cpus,
                           storage_endpoint=process_env.get("AWS_ENDPOINT_URL"))
        deadline = time.monotonic() + timeout_s
        # ready when its own processes listen on the GCS's, the dashboard's, the client server's and the raylet's
        # two ports (`ray start` launches the raylet after the dashboard, which answered up to a second before the
        # raylet here, 1 start in 3); a port chosen for it that another process listens on was taken before Ray
        # bound it, and this start cannot succeed (Ray's own exit takes ~40 s for the GCS's or the raylet's)
        ports = (gcs_port, dashboard_port, client_port, node_port, object_port)
        while True:
            listeners = tcp_listeners()  # before the processes: a socket listed here is in a process found after
            ours = socket_inodes(node_processes(process_table(), process.pid, temp_dir))
            if all(listeners.get(port, set()) & ours for port in ports):
                break
            taken = [port for port in ports if listeners.get(port, set()) - ours]
            if taken or process.poll() is not None or time.monotonic() > deadline:
                self._stop_processes(process.pid, temp_dir)
                shutil.rmtree(temp_dir, ignore_errors=True)
                if taken:
                    raise _NotStarted(f"port(s) {taken} chosen for the local Ray were taken by another process")
                if process.poll() is not None:
                    raise _NotStarted(f"the local Ray exited before it was ready; see {self.log_file}")
                raise WarmRayError(f"the local Ray did not start within {timeout_s:.0f} s; see {self.log_file}")
            time.sleep(0.2)
        self.state_file.write_text(json.dumps(info.__dict__, indent=2) + "\n")
        return info

    @staticmethod
    def daemons(info: WarmRayInfo, table: dict[int, tuple[int, str]]) -> set[int]:
        """pids of the warm Ray's own daemons (dashboard and its modules, agents, monitors) — not its GCS, raylet
        or workers."""
        tree = node_processes(table, info.pid, info.temp_dir)
        roots = {pid for pid in tree
                 if table[pid][1].startswith(DAEMON_TITLES) or any(s in table[pid][1] for s in DAEMON_SCRIPTS)}
        return descendants(table, roots)

    def idle_priority_for_daemons(self, info: WarmRayInfo, wait_s: float = 10.0) -> int:
        """SCHED_IDLE for the warm Ray's daemons, as a job's own local Ray gets (`ray.daemon_priority`).
        Returns how many processes."""
        return idle_priority_for_daemons(partial(self.daemons, info), wait_s)

    def down(self) -> bool:
        """Stop the warm Ray; False when none was running."""
        try:
            info = WarmRayInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return False
        self._stop_processes(info.pid, info.temp_dir)
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(info.temp_dir, ignore_errors=True)
        return True

    @staticmethod
    def _stop_processes(root_pid: int, temp_dir: str, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`, to the `ray start` process, its descendants and anything
        running from its temp dir (workers and drivers run in process groups of their own)."""
        def ours() -> set[int]:
            return node_processes(process_table(), root_pid, temp_dir)

        for signum, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in ours():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while ours() and time.monotonic() < deadline:
                _alive(root_pid)  # reaps the `ray start` process when it is our child
                time.sleep(0.2)


def warm_ray_address() -> Optional[str]:
    """The address of the warm local Ray a job here should attach to: running, and serving this process's
    storage endpoint; None otherwise."""
    info = WarmRay().status()
    return info.address if info is not None and info.serves_this_environment() else None
