"""A command in a fresh process, timed, with the peak RSS of it and of every process it starts (a local Ray's
daemons and workers included) sampled every 0.1 s: the memory figure of the prepare and scale benchmarks."""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Measured:
    seconds: float
    peak_mib: float
    returncode: int
    stdout: str


def measured_run(command: list[str], env: Optional[dict[str, str]] = None) -> Measured:
    """Run `command` (from the repository root) to its end; stdout is captured, stderr passes through."""
    import psutil

    started = time.monotonic()
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        process = psutil.Process(child.pid)
        while not stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    return Measured(seconds, peak[0] / 2**20, child.returncode, out)
