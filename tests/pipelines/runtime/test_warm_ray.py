"""`vaepipe ray up | status | down`: a long-lived local Ray of its own (its own VAEPIPE_HOME, temp dir and
ports), that a job's Ray session attaches to, stopped with every process it started."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.runtime.processes import process_table

REPO = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ATTACH = """
import os
import ray
from pipelines.runtime.ray_session import RayConfig, ray_session
with ray_session(RayConfig()):
    print("GCS", ray.get_runtime_context().gcs_address)
    print("POLICY", ray.get(ray.remote(num_cpus=0.01)(lambda: os.sched_getscheduler(0)).remote()))
"""


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def vaepipe(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run(env, "-m", "pipelines.cli", *args)


def test_ray_up_status_down_and_a_job_attaches_to_it(tmp_path, s3_store):
    # nothing of the test session's Ray; the session's store, as `vaepipe storage up` would leave it
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    env.update(VAEPIPE_HOME=str(tmp_path / "home"), RAY_AUTH_MODE="disabled", PYTHONPATH=str(REPO))

    before = vaepipe(env, "ray", "status")
    assert before.returncode == 3 and "local Ray: not running" in before.stdout, before.stdout + before.stderr
    state = tmp_path / "home" / "ray" / "ray.json"
    try:
        up = vaepipe(env, "ray", "up", "--num-cpus", "2")
        assert up.returncode == 0 and "local Ray running at 127.0.0.1:" in up.stdout, up.stdout + up.stderr
        info = json.loads(state.read_text())
        # up returns once the raylet runs too: `ray start` launches it after the dashboard that answered first
        assert any("raylet" in command and info["temp_dir"] in command
                   for _, command in process_table().values()), "no raylet when `ray up` returned"
        again = vaepipe(env, "ray", "up")
        assert again.returncode == 0 and f"already running at {info['address']}" in again.stdout

        status = vaepipe(env, "ray", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"running at {info['address']} (2 logical CPUs" in status.stdout
        assert f"storage endpoint {s3_store.endpoint}" in status.stdout

        # a job's Ray session from the same VAEPIPE_HOME attaches to it instead of starting a Ray
        attached = run(env, "-c", ATTACH)
        assert attached.returncode == 0, attached.stderr[-3000:]
        # Ray reports the node's own IP for the loopback address it was started on: the port is the warm Ray's
        (gcs,) = [line.split()[1] for line in attached.stdout.splitlines() if line.startswith("GCS ")]
        assert gcs.rsplit(":", 1)[1] == info["address"].rsplit(":", 1)[1]
        # its workers that do not train yield the CPU, as on a Ray the job starts (ray.daemon_priority: idle)
        (policy,) = [int(line.split()[1]) for line in attached.stdout.splitlines() if line.startswith("POLICY ")]
        assert policy == os.SCHED_IDLE
        # ... unless its store differs: its workers would read and write another one
        elsewhere = run({**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "-c",
                        "from pipelines.runtime.warm_ray import warm_ray_address; print(warm_ray_address())")
        assert elsewhere.stdout.strip() == "None"
    finally:
        down = vaepipe(env, "ray", "down")
    assert down.returncode == 0 and "local Ray stopped" in down.stdout, down.stdout + down.stderr
    left = {pid for pid, (_, command) in process_table().items() if info["temp_dir"] in command}
    assert not left and info["pid"] not in process_table(), f"processes left behind: {sorted(left)}"
    assert not state.exists()
    after = vaepipe(env, "ray", "status")
    assert after.returncode == 3 and "not running" in after.stdout
    assert vaepipe(env, "ray", "down").stdout.strip() == "no local Ray was running"


def test_a_start_whose_port_was_taken_before_ray_bound_it_starts_again_on_other_ports(tmp_path, monkeypatch):
    """The race is injected (a port chosen free, then taken before `ray start` binds it: by another process's
    bind to port 0, which cannot be timed for real); the start that follows is real."""
    import socket

    from pipelines.runtime import warm_ray
    from pipelines.runtime.ports import free_ports

    for name in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    taken = socket.socket()
    taken.bind(("", 0))
    taken.listen()
    chosen: list[list[int]] = []

    def first_with_a_taken_dashboard_port(count: int) -> list[int]:
        ports = free_ports(count)
        if not chosen:  # (GCS, dashboard, …)
            ports[1] = taken.getsockname()[1]
        chosen.append(ports)
        return ports

    monkeypatch.setattr(warm_ray, "free_ports", first_with_a_taken_dashboard_port)
    ray = warm_ray.WarmRay(tmp_path / "ray")
    try:
        info = ray.up(2)
        assert len(chosen) == 2 and info.address == f"127.0.0.1:{chosen[1][0]}"
        assert (f"port(s) [{chosen[0][1]}] chosen for the local Ray were taken by another process (attempt 1 of 3); "
                "starting again on other ports") in ray.log_file.read_text()
        assert ray.status() == info
    finally:
        ray.down()
        taken.close()
