"""benchmarks/synthesis.py --quick runs end to end (ours only when no SDV interpreter is given) and prints its table."""
import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.markdown import cells

ROOT = Path(__file__).resolve().parents[2]


# a whole benchmark in a subprocess: run by `make test` (CI), kept out of `make test-fast`
pytestmark = pytest.mark.slow


def test_quick_run_over_two_seeds_prints_mean_and_sd_and_each_seeds_overall(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/synthesis.py", "--quick", "--seeds", "2", "--sdv-python", "none",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| table (train rows; TSTR target) | generator | overall | column shapes | pair trends | TSTR | " \
           "DCR closer to train | seconds | overall per seed |" in done.stdout
    for table in ("diabetes (309; target R²)", "modechoice (588; choice ROC-AUC)"):
        (ours,) = [line for line in done.stdout.splitlines() if line.startswith(f"| {table} | vaepipe (default) |")]
        row = cells(ours)
        per_seed = [float(v) for v in row[8].split(" / ")]
        mean, sd = (float(v) for v in row[2].split(" ± "))
        assert len(per_seed) == 2 and per_seed[0] != per_seed[1]  # each seed its own model
        assert abs(mean - sum(per_seed) / 2) <= 1e-3 and abs(sd - abs(per_seed[0] - per_seed[1]) / 2) <= 1e-3
        # the notebook API's fit (prepare's rules, train's loop, generate's sampler) beside the in-process one
        assert f"| {table} | vaepipe VAESynthesizer (train's loop) | 0." in done.stdout
        assert f"| {table} | SDV TVAE | — |" in done.stdout  # the peers' cells say they did not run
    assert (tmp_path / "synthesis_quick_2seeds.md").read_text() in done.stdout


def test_one_seed_and_several_seeds_tables_take_quality_from_sdmetrics_and_dcr_from_ours(tmp_path):
    import json

    def generator(quality: float, ours: float, dcr: float) -> dict:
        return {"overall": ours, "column_shapes": ours, "column_pair_trends": ours, "tstr": quality - 0.1,
                "dcr_closer_to_training": dcr, "seconds": 1.0,
                "sdmetrics": {"overall": quality, "column_shapes": quality, "column_pair_trends": quality,
                              "dcr_closer_to_training": 0.999}}

    def run(seed: int) -> dict:
        return {"table": "t", "task": "regression", "target": "y", "train_rows": 100, "seed": seed,
                "generators": {"vaepipe": generator(0.8 + seed / 100, 0.7, 0.4), "gaussian_copula":
                               generator(0.75, 0.6, 0.5), "tvae": generator(0.85, 0.6, 0.5),
                               "real": {**generator(0.9, 0.9, 0.6), "seconds": None}}}

    results = tmp_path / "results.json"
    benchmark = None

    def render(results: Path) -> str:
        """The script's `--render`: the first time as a command, then in this process (each command imports
        torch, pandas and the metrics again: ~5 s)."""
        nonlocal benchmark
        if benchmark is None:
            done = subprocess.run([sys.executable, "benchmarks/synthesis.py", "--render", str(results)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-3000:]
            spec = importlib.util.spec_from_file_location("synthesis_benchmark", ROOT / "benchmarks" / "synthesis.py")
            benchmark = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
            spec.loader.exec_module(benchmark)
            return done.stdout
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            benchmark.main(["--render", str(results)])
        return output.getvalue()

    # a results file from before the notebook API's row existed renders without it
    for runs, ours_row in (([run(0)], "| t (100; y R²) | vaepipe (default) | 0.800 | 0.800 | 0.800 | 0.700 | 0.400 | "
                                      "1.0 | 0.700 / 0.700 / 0.700 |"),
                           ([run(0), run(10)], "| t (100; y R²) | vaepipe (default) | **0.850 ± 0.050** | 0.850 | "
                                               "0.850 | **0.750 ± 0.050** | 0.400 | 1.0 | 0.800 / 0.900 |")):
        results.write_text(json.dumps({"tables": runs}))
        out = render(results)
        assert ours_row in out.splitlines(), out
        assert "| t (100; y R²) | real 70 % (ceiling) | 0.900" in out and "| — |" in out
        assert "VAESynthesizer" not in out
        assert results.with_suffix(".md").read_text() == out.rstrip("\n") + "\n"

    # with the notebook API's row, run with another transform: the row names it, and it is bold like ours
    api = {**run(0), "generators": {**run(0)["generators"], "vaepipe_api": generator(0.86, 0.7, 0.4)}}
    results.write_text(json.dumps({"api_transform": "auto", "tables": [api]}))
    out = render(results)
    assert "| t (100; y R²) | vaepipe VAESynthesizer (train's loop, transform auto) | **0.860** | 0.860 | 0.860 | " \
           "**0.760** | 0.400 | 1.0 | 0.700 / 0.700 / 0.700 |" in out.splitlines(), out

    # and with another split too (--api-split): both named, in the order of the flags
    results.write_text(json.dumps({"api_transform": "auto", "api_split": {"train": 0.9, "val": 0.1, "test": 0.0},
                                   "tables": [api]}))
    out = render(results)
    assert "| t (100; y R²) | vaepipe VAESynthesizer (train's loop, transform auto, split 0.9/0.1/0) | **0.860** |" \
        in out, out

    # --hidden: both of ours trained with other widths, and both rows say so (with --steps, ours names both)
    results.write_text(json.dumps({"hidden": [128, 64], "config": {"steps": 2000}, "tables": [api]}))
    out = render(results)
    assert "| t (100; y R²) | vaepipe (2,000 steps, hidden 128×64) | 0.800 | 0.800 |" in out, out
    assert "| t (100; y R²) | vaepipe VAESynthesizer (train's loop, hidden 128×64) | **0.860** |" in out, out
