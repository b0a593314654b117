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
