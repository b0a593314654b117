"""A Ray cluster that starts from zero worker nodes and grows with Ray's own autoscaler, on this machine.

It is what `ray.cluster_utils.AutoscalingCluster` starts — a head with `ray start --head
--autoscaling-config=…` under `RAY_FAKE_CLUSTER=1`, whose (v1) autoscaler adds and removes worker
nodes through Ray's fake multi-node provider (`ray.autoscaler._private.fake_multi_node`: each
"node" is a raylet started on this machine; here each in its own temp dir, see
fake_provider/own_temp_dir_fake_provider.py) — built here instead of through that class because, on
Ray 2.60:
- `AutoscalingCluster(...)` reads `fake_multi_node/example.yaml`, which the wheel does not ship
  (FileNotFoundError; `test_autoscaling.py` fails when that changes), so the base config is here;
- `AutoscalingCluster.start()` and `.shutdown()` run `ray stop --force`, which kills every Ray on
  the machine: the test session's shared cluster and anyone else's. This one runs on free ports in
  its own temp dir, and stops only its own process tree (tests/ray_nodes.py).
Autoscaler v1 is the one the shipped clusters run (KubeRay's and the launcher's default), and the
v2 autoscaler cannot start on the fake provider here either (it fills defaults from the same file).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import requests

from pipelines.runtime.processes import process_table
from tests.ray_nodes import (RayNode, _processes_of, _signal_all, _start, free_ports, node_env,
                             wait_for_jobs_api)

HEAD_NODE_TYPE = "ray.head.default"  # the head type name the fake provider gives its head node
PROVIDER_DIR = Path(__file__).parent / "fake_provider"  # on the head's PYTHONPATH, for its autoscaler
PROVIDER_MODULE = "own_temp_dir_fake_provider"


def fake_multinode_config(gcs_address: str, head_resources: dict, worker_node_types: dict, worker_temp_root: str,
                          idle_timeout_minutes: float = 5.0) -> dict:
    """An autoscaler config for the fake multi-node provider, shaped as AutoscalingCluster makes it: the
    worker node types as given, the head as `ray.head.default` with no workers of its own."""
    return {
        "cluster_name": "vaepipe-test",
        "max_workers": sum(t["max_workers"] for t in worker_node_types.values()),
        "provider": {
            # Ray's FakeMultiNodeProvider, each worker node in its own temp dir (fake_provider/ says why)
            "type": "external",
            "module": f"{PROVIDER_MODULE}.OwnTempDirFakeProvider",
            "worker_temp_root": worker_temp_root,
            # workers join this head, not the default 127.0.0.1:6379
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            **worker_node_types,
            HEAD_NODE_TYPE: {"resources": dict(head_resources), "node_config": {}, "max_workers": 0},
        },
        "head_node_type": HEAD_NODE_TYPE,
        "auth": {},
        "upscaling_speed": 1.0,
        # long enough that nodes a job asked for stay while it starts on them
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
    }


@dataclass
class AutoscalingHead:
    node: RayNode
    config: dict
    config_file: Path
    worker_temp_root: Path

    @property
    def gcs_address(self) -> str:
        return self.node.gcs_address

    @property
    def dashboard(self) -> str:
        return self.node.dashboard

    def alive_nodes(self) -> list[dict]:
        """Every live node (the head included), from the state API, which asks the GCS: the dashboard's node
        summary (`/nodes?view=summary`) is a cache that showed a node seconds after `ray.cluster_resources()`
        counted it (3.1 s against 6.8 s here), and in CI after the job was over."""
        reply = requests.get(f"{self.dashboard}/api/v0/nodes", params={"filter_keys": "state",
                             "filter_predicates": "=", "filter_values": "ALIVE"}, timeout=5).json()
        return reply["data"]["result"]["result"]

    def wait_for_worker_nodes(self, count: int, timeout_s: float) -> float:
        """Seconds until at least `count` worker nodes are alive; fails the test after `timeout_s`."""
        import pytest

        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if len(self.alive_nodes()) - 1 >= count:
                return time.monotonic() - started
            time.sleep(0.5)
        pytest.fail(f"fewer than {count} worker node(s) joined {self.gcs_address} within {timeout_s} s")

    def resource_requests(self) -> list:
        """The `request_resources` bundles the autoscaler last reported, as [[bundle, count], ...]: what
        `ray status` shows, read from the dashboard (which camel-cases the report's keys)."""
        status = requests.get(f"{self.dashboard}/api/cluster_status", timeout=5).json()["data"]["clusterStatus"]
        return ((status or {}).get("loadMetricsReport") or {}).get("requestDemand") or []

    def watch(self, poll_s: float = 0.5) -> "ClusterWatch":
        """Start recording worker nodes and the autoscaler's resource requests in the background."""
        return ClusterWatch(self, poll_s)

    def stop(self) -> None:
        """Stop the head, its autoscaler and every worker node it started; remove their files."""
        workers = _processes_of(self.node.process.pid, self.worker_temp_root)
        self.node.stop()
        # worker raylets are the autoscaler's children, so mostly gone with it; the rest by their temp dir
        left = (workers | _processes_of(self.node.process.pid, self.worker_temp_root)) & process_table().keys()
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.5)
        assert not left & process_table().keys(), f"worker node processes left behind: {sorted(left)}"
        self.config_file.unlink(missing_ok=True)
        shutil.rmtree(self.worker_temp_root, ignore_errors=True)
        shutil.rmtree(self.node.temp_dir, ignore_errors=True)


def start_autoscaling_head(worker_node_types: dict, head_cpus: float = 0, storage_credentials: bool = True,
                           extra_env: Optional[dict] = None, idle_timeout_minutes: float = 5.0) -> AutoscalingHead:
    """Start the head (with `head_cpus` CPUs, 0 as on the shipped clusters) and its autoscaler; returns once
    the Jobs API answers. No worker node runs until something asks for resources."""
    gcs_port, dashboard_port, client_port, agent_port = free_ports(4)  # distinct: `ray start` refuses a shared one
    head_ip = "127.0.0.1"
    # Worker nodes' temp dirs under one root that stop() finds their processes by
    worker_temp_root = tempfile.mkdtemp(prefix="vp-asw-", dir="/tmp")
    config = fake_multinode_config(f"{head_ip}:{gcs_port}", {"CPU": head_cpus}, worker_node_types, worker_temp_root,
                                   idle_timeout_minutes)
    env = node_env(storage_credentials)
    # What AutoscalingCluster.start sets: the fake provider refuses to run without RAY_FAKE_CLUSTER, and a
    # 1 s autoscaler loop instead of 5 s. PYTHONPATH: the provider module only (node_env keeps the rest out).
    env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1", PYTHONPATH=str(PROVIDER_DIR),
               **(extra_env or {}))
    arguments = ["--head", f"--node-ip-address={head_ip}", f"--port={gcs_port}", f"--dashboard-port={dashboard_port}",
                 "--dashboard-host=127.0.0.1", f"--ray-client-server-port={client_port}",
                 f"--dashboard-agent-listen-port={agent_port}", f"--num-cpus={head_cpus:g}",
                 "--include-dashboard=true"]
    # The monitor reads the config once it starts, so it must exist before `ray start`.
    descriptor, config_path = tempfile.mkstemp(prefix="vp-as-config-", suffix=".json")
    with os.fdopen(descriptor, "w") as config_file:
        json.dump(config, config_file)
    node = _start([*arguments, f"--autoscaling-config={config_path}"], env, "vp-as-")
    node.gcs_address, node.dashboard = f"{head_ip}:{gcs_port}", f"http://127.0.0.1:{dashboard_port}"
    head = AutoscalingHead(node, config, Path(config_path), Path(worker_temp_root))
    try:
        wait_for_jobs_api(node)
        wait_until_jobs_are_accepted(head)
    except BaseException:
        head.stop()
        raise
    return head


class ClusterWatch:
    """Samples, every `poll_s`, how many worker nodes are alive and the resource requests the autoscaler
    reports (`request_resources` bundles), until stopped: what a test asserts on after a job."""

    def __init__(self, head: AutoscalingHead, poll_s: float):
        self.head, self.poll_s = head, poll_s
        self.started = time.monotonic()
        self.first_worker_s: Optional[float] = None
        self.max_workers = 0
        self.requests_seen: list[list] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.poll_s)

    def _sample(self) -> bool:
        """One sample; False when the head did not answer in time."""
        try:
            workers = len(self.head.alive_nodes()) - 1
            demand = self.head.resource_requests()
        except (requests.exceptions.RequestException, KeyError, ValueError):
            return False  # a busy head answered late: the next sample counts
        if workers > 0 and self.first_worker_s is None:
            self.first_worker_s = time.monotonic() - self.started
        self.max_workers = max(self.max_workers, workers)
        if demand and demand not in self.requests_seen:
            self.requests_seen.append(demand)
        return True

    def stop(self, last_sample_timeout_s: float = 30) -> "ClusterWatch":
        """Stop sampling, after one last sample that is retried until the head answers: on 2 busy cores
        every background sample during a short job can miss, and so did a single last one (CI twice saw a
        job's worker node up and none recorded)."""
        self._stop.set()
        self._thread.join(timeout=10)
        deadline = time.monotonic() + last_sample_timeout_s
        while not self._sample() and time.monotonic() < deadline:
            time.sleep(1)
        return self


def wait_until_jobs_are_accepted(head: AutoscalingHead, timeout_s: float = 180) -> None:
    """Until a job submitted to the head runs to its end. The Jobs API answers before the head's dashboard
    agent, which runs the jobs, has registered; a job submitted in between is refused ("No available agent
    to submit job, please try again later"), which on 2 busy cores lasted long enough to fail a test."""
    import pytest

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # a fresh id each time: a submission that timed out on our side may still have been taken
        submission_id = f"readiness-{os.getpid()}-{time.monotonic_ns()}"
        try:
            reply = requests.post(f"{head.dashboard}/api/jobs/", timeout=30,
                                  json={"entrypoint": "true", "submission_id": submission_id})
            if reply.status_code == 200:
                break
        except requests.exceptions.RequestException:
            pass  # the head is busy starting: it answers later
        time.sleep(1)
    else:
        pytest.fail(f"the Jobs API at {head.dashboard} accepted no job within {timeout_s} s")
    while time.monotonic() < deadline:
        status = requests.get(f"{head.dashboard}/api/jobs/{submission_id}", timeout=10).json()["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            assert status == "SUCCEEDED", f"the readiness job ended {status}"
            return
        time.sleep(0.5)
    pytest.fail(f"the readiness job on {head.dashboard} did not end within {timeout_s} s")
