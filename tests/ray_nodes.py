"""Real Ray nodes started with `ray start` for tests of cluster behaviour (Jobs API, several nodes).

Stopping never uses `ray stop`, which kills every Ray process on the machine:
each node's processes are found from its own process tree and temp dir.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pipelines.runtime.processes import node_processes, process_table
from pipelines.runtime.ray_session import ADDRESS_VARIABLES
from pipelines.runtime.ports import free_ports

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    return free_ports(1)[0]


def _processes_of(root_pid: int, temp_dir: Path) -> set[int]:
    """The `ray start` process, its descendants, and anything else running from this node's temp dir."""
    return node_processes(process_table(), root_pid, str(temp_dir))


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@dataclass
class RayNode:
    process: subprocess.Popen
    temp_dir: Path
    log: Path
    gcs_address: str = ""
    dashboard: str = ""

    def stop(self) -> None:
        # Workers and job drivers run in their own process groups, so signal each pid.
        pids = _processes_of(self.process.pid, self.temp_dir)
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + 5  # grace for a clean exit; the rest is killed
        while pids & process_table().keys() and time.monotonic() < deadline:
            self.process.poll()
            time.sleep(0.2)
        _signal_all(pids & process_table().keys(), signal.SIGKILL)
        self.process.wait(timeout=10)
        time.sleep(0.5)
        left = _processes_of(self.process.pid, self.temp_dir) | (pids & process_table().keys())
        assert not left, f"Ray processes left behind: {sorted(left)}"


def outside_session_ray(env: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """`env` (this process's by default) without what points a process at the test session's Ray: the variables
    `local_ray` sets (its address and GCS port) and RAY_API_SERVER_ADDRESS; also without names starting with
    `drop`. A `ray start` that inherited the session's GCS port put a two-node cluster's worker elsewhere."""
    dropped = ADDRESS_VARIABLES + ("RAY_API_SERVER_ADDRESS",) + drop
    return {key: value for key, value in (os.environ if env is None else env).items()
            if not key.startswith(dropped)}


def node_env(storage_credentials: bool = True) -> dict[str, str]:
    """This environment minus what would point Ray at another cluster or shadow the shipped code.

    With `storage_credentials` the node keeps AWS_*: the cluster's own identity, as on a real
    cluster, so that jobs reach the S3 server without credentials being shipped.
    """
    env = outside_session_ray(drop=() if storage_credentials else ("AWS_",))
    env.pop("PYTHONPATH", None)
    env.update(RAY_AUTH_MODE="disabled", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def _start(arguments: list[str], env: dict[str, str], prefix: str) -> RayNode:
    # Short path: Ray's unix sockets live under it and their paths are capped at 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    log = temp_dir / "ray-start.log"
    command = [str(VENV_BIN / "ray"), "start", "--block", f"--temp-dir={temp_dir}", "--disable-usage-stats",
               *arguments]
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return RayNode(process, temp_dir, log)


def start_head(env: dict[str, str], num_cpus: int = 2, resources: str | None = None) -> RayNode:
    gcs_port, dashboard_port, client_port, agent_port = free_ports(4)  # distinct: `ray start` refuses a shared one
    arguments = ["--head", f"--port={gcs_port}", f"--dashboard-port={dashboard_port}", "--dashboard-host=127.0.0.1",
                 f"--ray-client-server-port={client_port}", f"--dashboard-agent-listen-port={agent_port}",
                 f"--num-cpus={num_cpus}", "--include-dashboard=true"]
    if resources:
        arguments.append(f"--resources={resources}")
    node = _start(arguments, env, "vp-head-")
    node.gcs_address, node.dashboard = f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{dashboard_port}"
    try:
        wait_for_jobs_api(node)
    except BaseException:
        node.stop()
        raise
    return node


def start_worker(head: RayNode, env: dict[str, str], num_cpus: int = 2) -> RayNode:
    agent_port, node_port, object_port, metrics_port = free_ports(4)
    arguments = [f"--address={head.gcs_address}", f"--num-cpus={num_cpus}",
                 f"--dashboard-agent-listen-port={agent_port}", f"--node-manager-port={node_port}",
                 f"--object-manager-port={object_port}", f"--metrics-export-port={metrics_port}"]
    return _start(arguments, env, "vp-worker-")


def wait_for_jobs_api(node: RayNode, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"ray start exited with {node.process.returncode}:\n{node.log.read_text()[-3000:]}")
        try:
            if requests.get(f"{node.dashboard}/api/jobs/", timeout=2).status_code == 200:
                return
        except requests.exceptions.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Jobs API at {node.dashboard} did not answer within {timeout_s} s:\n{node.log.read_text()[-3000:]}")


def wait_for_nodes(node: RayNode, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            nodes = requests.get(f"{node.dashboard}/nodes?view=summary", timeout=2).json()
            alive = [n for n in nodes["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]
            if len(alive) >= count:
                return
        except (requests.exceptions.RequestException, KeyError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"fewer than {count} nodes joined {node.gcs_address} within {timeout_s} s")
