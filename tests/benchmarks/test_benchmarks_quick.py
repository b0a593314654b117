"""Every benchmark script runs in the suite in its `--quick` mode, so none can drift from the code it measures
(score_throughput.py crashed on main with a KeyError while the README quoted it). Each must exit 0 and print
its table; speeds are the full runs' to report, never asserted here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.markdown import cells
from tests.ray_nodes import outside_session_ray

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def run_benchmark(arguments: list[str], env: dict[str, str]) -> str:
    # a benchmark starts and times its own Ray, never the test session's
    env = {**outside_session_ray(env), "PYTHONPATH": str(ROOT),
           "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def test_score_throughput_quick_prints_the_plain_loop_and_vaepipe_rows(s3_store):
    out = run_benchmark(["benchmarks/score_throughput.py", "--quick", "--storage",
                         f"s3://{s3_store.bucket}/bench-quick"], dict(os.environ))
    assert "scoring 20,000 rows" in out
    for row in ("plain single-process loop", "vaepipe score, end to end", "vaepipe score, minus fixed start",
                "fixed start-up"):
        assert row in out, out


def test_train_throughput_quick_prints_every_job_against_the_plain_loop():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # it runs a store of its own
    out = run_benchmark(["benchmarks/train_throughput.py", "--quick", "--epochs", "1"], env)
    assert "| job | setup | steady samples/s | steady ratio |" in out
    # per model the plain loop and the same loop without Ray; one Ray job (the steps --quick checks run once)
    rows = [(job, setup) for job in ("tabular", "images")
            for setup in ("plain PyTorch", "vaepipe train --engine local, 1 process")] + [
        ("tabular", "vaepipe train, 1 worker(s)")]
    for job, setup in rows:
        assert any(line.startswith(f"| {job} | {setup}") for line in out.splitlines()), (job, setup, out)


def test_train_throughput_refuses_a_setup_or_model_it_does_not_have():
    for argument, value, named in (("--setups", "1,3", "unknown 3"), ("--models", "tabular,text", "got tabular,text")):
        run = subprocess.run([sys.executable, "benchmarks/train_throughput.py", argument, value], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and named in run.stderr, run.stderr[-2000:]


def test_quality_quick_prints_density_anomaly_and_synthesis_tables(tmp_path):
    out = run_benchmark(["benchmarks/quality.py", "--quick", "--out", str(tmp_path)], dict(os.environ))
    assert "### Density: test NLL" in out and "One-class anomaly detection" in out
    assert (tmp_path / "quality.json").exists() and (tmp_path / "quality.md").exists()


def test_synthesis_early_best_quick_reports_the_best_step_per_transform():
    out = run_benchmark(["benchmarks/synthesis_early_best.py", "--quick", "--transforms", "identity", "quantile"],
                        dict(os.environ))
    assert out.count("best step") == 2 and "transform=quantile" in out


def test_features_quick_prints_the_probe_of_embeddings_raw_and_pca():
    out = run_benchmark(["benchmarks/features.py", "--quick"], dict(os.environ))
    for row in ("| digits (", "| digits | raw |", "| digits | pca_16 |"):
        assert row in out, out


def test_augmentation_quick_prints_every_arm_for_images_and_the_table():
    out = run_benchmark(["benchmarks/augmentation.py", "--quick"], dict(os.environ))
    for row in ("| real-only | logistic |", "| + SMOTE | cnn |", "| + augment (interpolate) | logistic |",
                "| + augment (prior) | cnn |", "| + augment --pseudo-label 0.9 | cnn |",
                "| M2 classifier q(y|x) | accuracy |", "| + augment (gmm) | F1 |",
                "| + SMOTE | ROC-AUC |"):
        assert row in out, out
    assert "| + augment --pseudo-label 0.9 | cnn | refused" not in out, out  # the arm ran, not only its refusal


def test_prepare_memory_quick_prints_each_way_of_preparing_against_reading_whole():
    out = run_benchmark(["benchmarks/prepare_memory.py", "--quick"], dict(os.environ))
    assert "| rows | source MiB | how | seconds | rows/s | speed vs in memory | peak RSS MiB (all processes) | " \
           "peak PSS MiB (all processes) |" in out
    for rows in ("| 20,000 |", "| 80,000 |"):
        for how in ("in memory", "streamed, local", "streamed, ray"):
            (row,) = [cells(line) for line in out.splitlines() if line.startswith(rows) and f"| {how} |" in line]
            rss, pss = (float(value.replace(",", "")) for value in row[6:8])
            assert 50 < pss <= rss, row


def test_prepare_memory_quick_on_an_image_folder_prints_whole_against_a_shard_at_a_time():
    out = run_benchmark(["benchmarks/prepare_memory.py", "--images", "--quick"], dict(os.environ))
    assert "prepare of an image folder" in out
    assert "| images | source MiB | how | seconds | images/s | speed vs in memory | peak RSS MiB (all processes) |" in out
    for rows in ("| 600 |", "| 2,400 |"):
        for how in ("in memory", "streamed, local"):
            assert any(line.startswith(rows) and f"| {how} |" in line for line in out.splitlines()), (rows, how)
    assert "streamed, ray" not in out


def test_stream_memory_quick_prints_both_ways_of_loading():
    out = run_benchmark(["benchmarks/stream_memory.py", "--quick"], dict(os.environ))
    lines = out.splitlines()
    header = lines.index("| rows | table MiB | × object store | data_loading | job s | samples/s (epoch) | "
                         "peak RSS MiB (all processes) | peak vs cache |")
    rows = [cells(line) for line in lines[header + 2:]]
    assert [(row[0], row[3]) for row in rows] == [("20,000", "cache"), ("20,000", "stream")], out
    for row in rows:  # every figure measured
        assert float(row[4]) > 0 and float(row[5].replace(",", "")) > 0 and float(row[6].replace(",", "")) > 50, row
    assert rows[0][7] == "1.00"  # the baseline against itself


def test_scale_quick_prints_scoring_per_size_against_the_plain_loop_and_the_prepare_rows(s3_store):
    out = run_benchmark(["benchmarks/scale.py", "--quick", "--storage", f"s3://{s3_store.bucket}/scale-quick"],
                        dict(os.environ))
    lines = out.splitlines()
    header = lines.index("| rows | plain loop s | plain rows/s | plain peak MiB | ray s | ray rows/s | ray ratio | "
                         "ray peak MiB | default engine | default s | default ratio | default peak MiB |")
    rows = [cells(line) for line in lines[header + 2:header + 3]]
    assert [row[0] for row in rows] == ["16,000"] and not lines[header + 3].startswith("|"), out
    for row in rows:  # every figure measured: seconds and ratio positive, peak memory at least a Python process
        assert all(float(row[i]) > 0 for i in (1, 4, 6, 9, 10)), row
        assert all(float(row[i].replace(",", "")) > 50 for i in (3, 7, 11)), row
        assert row[8] == "local", row  # a few thousand rows: auto runs them in the job's process
    assert "target ratio ≥ 0.9 at 16,000 rows, --engine ray: " in out
    assert "target ratio ≥ 0.9 at 16,000 rows, default engine: " in out
    for how in ("streamed, local", "streamed, ray"):
        (row,) = [cells(line) for line in lines if line.startswith(f"| {how} | 20,000 |")]
        rss, pss = (float(value.replace(",", "")) for value in row[5:7])
        assert 50 < pss <= rss, row  # PSS splits shared pages among the processes that map them: never above RSS
    assert "target streamed, ray peak PSS ≤ 4,096 MiB with a source of " in out


def test_every_benchmark_explains_itself_with_help_from_the_repository_root():
    # `synthesis.py --help` raised in argparse (a `%` in one option's help) while its full runs worked
    scripts = sorted(ROOT.glob("benchmarks/*.py"))
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    runs = {script.name: subprocess.Popen([sys.executable, str(script), "--help"], cwd=ROOT, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) for script in scripts}
    results = {name: (run.wait(timeout=300), *run.communicate()) for name, run in runs.items()}
    failed = {name: err[-800:] for name, (code, out, err) in results.items() if code != 0 or "usage:" not in out}
    assert len(scripts) >= 10 and not failed, failed


def test_ray_presence_quick_prints_the_loop_beside_each_kind_of_idle_ray():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no storage: tensors in memory
    out = run_benchmark(["benchmarks/ray_presence.py", "--quick"], env)
    lines = out.splitlines()
    header = lines.index("| beside the loop | samples/s | vs no Ray | each round |")
    rows = [cells(line) for line in lines[header + 2:header + 6]]
    assert [row[0] for row in rows] == ["no Ray", "Ray up, no actors", "2 idle actors, Ray's niceness",
                                        "2 idle actors, SCHED_IDLE"], out
    assert rows[0][2] == "1.00" and all(float(row[1].replace(",", "")) > 0 for row in rows), rows
