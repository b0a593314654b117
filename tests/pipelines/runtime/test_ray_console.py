"""`ray_console.connecting`: around `ray.init`, the driver's stderr loses Ray's log-level notice and nothing else."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.runtime import ray_console

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
