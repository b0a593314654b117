"""benchmarks/synthesis.py --quick runs end to end (ours only when no SDV interpreter is given) and prints its table."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# a whole benchmark in a subprocess: run by `make test` (CI), kept out of `make test-fast`
pytestmark = pytest.mark.slow


def test_quick_run_prints_the_table_for_each_small_table(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/synthesis.py", "--quick", "--sdv-python", "none",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| table (train rows; TSTR target) | generator | overall |" in done.stdout
    for table in ("diabetes (309; target R²)", "modechoice (588; choice ROC-AUC)"):
        assert f"| {table} | vaepipe (default) | 0." in done.stdout
        assert f"| {table} | SDV TVAE | — |" in done.stdout  # the peers' cells say they did not run
    assert (tmp_path / "synthesis_quick.md").read_text() in done.stdout


def test_quick_run_over_two_seeds_prints_mean_and_sd_and_each_seeds_overall(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/synthesis.py", "--quick", "--seeds", "2", "--sdv-python", "none",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| table (train rows; TSTR target) | generator | overall | column shapes | pair trends | TSTR | " \
           "DCR closer to train | seconds | overall per seed |" in done.stdout
    for table in ("diabetes (309; target R²)", "modechoice (588; choice ROC-AUC)"):
        (ours,) = [line for line in done.stdout.splitlines() if line.startswith(f"| {table} | vaepipe (default) |")]
        cells = [cell.strip() for cell in ours.strip("|").split("|")]
        per_seed = [float(v) for v in cells[8].split(" / ")]
        mean, sd = (float(v) for v in cells[2].split(" ± "))
        assert len(per_seed) == 2 and per_seed[0] != per_seed[1]  # each seed its own model
        assert abs(mean - sum(per_seed) / 2) <= 1e-3 and abs(sd - abs(per_seed[0] - per_seed[1]) / 2) <= 1e-3
        assert f"| {table} | SDV TVAE | — |" in done.stdout
    assert (tmp_path / "synthesis_quick_2seeds.md").read_text() in done.stdout
