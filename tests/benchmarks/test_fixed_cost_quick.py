"""benchmarks/fixed_cost.py --quick runs end to end: local, cold-Ray and warm-Ray times for score (train: local), the
crossover lines and the threshold auto uses (no speed asserted: that is the benchmark's to report)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.markdown import cells
from tests.ray_nodes import outside_session_ray

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_quick_fixed_cost_prints_scoring_on_every_engine_training_locally_and_the_crossover(tmp_path):
    # its own embedded store and Rays: nothing of the test session's
    env = outside_session_ray(drop=("AWS_",))
    env.update(PYTHONPATH=str(ROOT), VAEPIPE_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "benchmarks/fixed_cost.py", "--quick"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=1440)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| job "))
    assert cells(lines[header]) == [
        "job", "local", "ray cold", "ray warm", "auto picks"]
    train, score = (cells(line) for line in lines[header + 2:header + 4])
    assert train[0] == "train digits, 3 epochs" and score[0] == "score 2,000 rows"
    # --quick trains locally only (a train job on Ray runs the same lines as a score job on Ray) and scores on all
    for row, measured in ((train, train[1:2]), (score, score[1:4])):
        assert all(re.fullmatch(r"\d+\.\d", cell) and float(cell) > 0 for cell in measured), row
        assert row[4] in ("local", "ray")
    assert train[2:4] == ["-", "-"], train
    assert re.search(r"^crossover against ray cold: ", run.stdout, re.MULTILINE)
    assert re.search(r"^crossover against ray warm: ", run.stdout, re.MULTILINE)
    assert "MEASURED_CROSSOVER_ROWS" in run.stdout
