"""benchmarks/disentanglement.py --quick runs end to end: a table, the JSON and the figure (no quality asserted)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# a whole benchmark in a subprocess: run by `make test` (CI), kept out of `make test-fast`
pytestmark = pytest.mark.slow


def test_quick_run_prints_the_table_and_writes_results_and_figure(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "disentanglement.py"), "--quick",
                           "--out-dir", str(tmp_path)], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| setting | MIG | DCI D"))
    rows = lines[header + 2:header + 6]
    assert [row.split("|")[1].strip() for row in rows] == ["β-VAE β=1", "β-VAE β=4", "β-VAE β=8", "β-TCVAE β=6"]
    assert all(" ± " in row for row in rows)
    results = json.loads((tmp_path / "disentanglement.json").read_text())
    assert len(results["runs"]) == 4 * len(results["plan"]["seeds"])
    assert all(0.0 <= run["mig"] <= 1.0 for run in results["runs"])
    assert (tmp_path / "disentanglement-traversal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # seeds run on another occasion merge into one table; the same seed twice, or another plan, is refused
    later = {**results, "plan": {**results["plan"], "seeds": [7]},
             "runs": [{**run, "seed": 7, "mig": 0.5} for run in results["runs"] if run["seed"] == 0]}
    (tmp_path / "later.json").write_text(json.dumps(later))
    merge = [sys.executable, str(ROOT / "benchmarks" / "disentanglement.py"), "--merge",
             str(tmp_path / "disentanglement.json"), str(tmp_path / "later.json")]
    merged = subprocess.run(merge + ["--out-dir", str(tmp_path / "merged")], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr[-3000:]
    combined = json.loads((tmp_path / "merged" / "disentanglement.json").read_text())
    assert len(combined["runs"]) == 4 * (len(results["plan"]["seeds"]) + 1)
    assert combined["plan"]["seeds"] == sorted(results["plan"]["seeds"] + [7])
    assert combined["best_run"]["seed"] == 7 and "best run: " in merged.stdout
    twice = subprocess.run(merge[:-1] + [merge[-2]], cwd=ROOT, env=environment, capture_output=True, text=True,
                           timeout=120)
    assert twice.returncode == 2 and twice.stderr.startswith("error: --merge: a setting and seed")
    (tmp_path / "other.json").write_text(json.dumps({**later, "plan": {**later["plan"], "batch_size": 7}}))
    other = subprocess.run(merge[:-1] + [str(tmp_path / "other.json")], cwd=ROOT, env=environment,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and other.stderr.startswith("error: --merge: the plans differ")
