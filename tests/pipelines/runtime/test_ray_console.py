"""`ray_console.connecting`: around `ray.init`, the driver's stderr loses Ray's log-level notice and nothing else."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.runtime import ray_console
from tests.ray_nodes import outside_session_ray

ROOT = Path(__file__).resolve().parents[3]

NOTICE = b"[2026-12-03 05:31:25,907 I 8773 8773] logging.cc:303: Set ray log level from environment variable " \
         b"RAY_BACKEND_LOG_LEVEL to 3\n"


def test_the_level_notice_is_dropped_and_every_other_stderr_line_passes(capfd):
    with ray_console.connecting():
        os.write(2, b"before\n" + NOTICE + b"a core error that stays\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err.splitlines() == ["before", "a core error that stays", "after"]


def test_an_error_inside_is_raised_and_stderr_is_restored(capfd):
    with pytest.raises(RuntimeError, match="no cluster"), ray_console.connecting():
        os.write(2, b"retrying\n")
        raise RuntimeError("no cluster")
    os.write(2, NOTICE)  # outside the block the descriptor is the console again: nothing is filtered
    assert capfd.readouterr().err.splitlines() == ["retrying", NOTICE.decode().rstrip("\n")]


def test_verbose_shows_ray_as_it_is(capfd, monkeypatch):
    monkeypatch.setattr(ray_console, "_verbose", True)
    with ray_console.connecting():
        os.write(2, NOTICE)
    assert "logging.cc" in capfd.readouterr().err


def test_a_child_started_inside_writes_through():
    """A process started meanwhile inherits the pipe; its lines still reach the console after the block."""
    code = ("import os, subprocess, sys\n"
            "from pipelines.runtime import ray_console\n"
            "with ray_console.connecting():\n"
            "    child = subprocess.Popen([sys.executable, '-c', 'import time, os; time.sleep(0.5); "
            "os.write(2, b\"child line\\\\n\")'])\n"
            "child.wait()\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "child line" in done.stderr


def test_ray_s_notice_that_it_turned_token_auth_on_is_dropped_and_its_warning_that_auth_is_off_is_kept():
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ray._private.authentication.authentication_token_setup", logging.WARNING,
                                 __file__, 1, message, None, None)

    harmless = ray_console.HarmlessRayRecords()
    assert not harmless.filter(record("Token authentication is enabled for this Ray cluster. Set "
                                      "RAY_AUTH_MODE=disabled to opt out."))
    assert harmless.filter(record("Token authentication is disabled for this Ray cluster. Anyone with network "
                                  "access to the cluster can run arbitrary code and access its data."))


@pytest.mark.slow
def test_a_job_started_ray_with_ray_s_default_auth_prints_nothing_of_ray_on_the_console(tmp_path):
    """RAY_AUTH_MODE unset, as a user runs a job: Ray turns token auth on for the Ray the job starts and says so
    from inside `ray.init`, before the job's other quieting ran; the console shows only the job's own lines."""
    code = ("from pipelines.runtime.ray_session import RayConfig, ray_session\n"
            "with ray_session(RayConfig(num_cpus=1)):\n"
            "    import ray\n"
            "    print('inside', ray.get(ray.remote(lambda: 1).remote()), flush=True)\n")
    # HOME: where Ray keeps the token it generates (~/.ray/auth_token), not this machine's
    env = {**outside_session_ray(drop=("RAY_AUTH_MODE",)), "HOME": str(tmp_path),
           "VAEPIPE_HOME": str(tmp_path / "vaepipe")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["inside 1"]
    assert "Token authentication" not in done.stderr and "WARNING" not in done.stderr, done.stderr[-3000:]
