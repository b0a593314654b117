"""benchmarks/gpu_check.py --quick runs end to end here: the CPU rows measure, the GPU rows say "no GPU"
on a machine without one (and measure on one that has it)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.ray_nodes import outside_session_ray

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_quick_gpu_check_prints_cpu_and_gpu_rows_for_training_and_scoring(tmp_path):
    # its own local Rays, nothing of the test session's; a local folder for storage, as on a GPU machine without
    # the embedded S3 server (the server's own path is what every other job test runs)
    env = outside_session_ray(drop=("AWS_",))
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--quick", "--storage", str(tmp_path)],
                         cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=840)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [
        "train 2 epochs", "train 2 epochs", "score 20,000 rows", "score 20,000 rows"]
    cpu_train, gpu_train, cpu_score, gpu_score = rows
    assert re.search(r"\| [\d,]+ samples/s \|", cpu_train) and re.search(r"\| [\d,]+ rows/s \|", cpu_score)
    if torch.cuda.is_available():
        assert "bf16" in gpu_train and re.search(r"\| [\d,]+ samples/s \|", gpu_train)
        assert re.search(r"\| [\d,]+ rows/s \|", gpu_score)
    else:
        assert "| no GPU |" in gpu_train and "| no GPU |" in gpu_score
        assert "GPU: no GPU" in run.stdout
    assert "local folder" in cpu_score and list(tmp_path.glob("gpu-check-*/models/gpu-check-cpu/1"))
