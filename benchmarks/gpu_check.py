"""The GPU path, next to the CPU path, in one run: `vaepipe train` for 2 epochs with scaling.use_gpu=true and
bf16 autocast, and `vaepipe score` of 1M rows on a GPU actor, each beside the same job on CPUs.

    .venv/bin/python benchmarks/gpu_check.py            # 1,000,000 rows
    .venv/bin/python benchmarks/gpu_check.py --quick    # 20,000 rows: checks the script (and the CPU path) runs
    python3 benchmarks/gpu_check.py --storage /tmp/vaepipe-gpu   # a GPU box without the `local` extra

Storage is the embedded S3 server (the `local` extra) unless --storage names a local folder or an s3:// URI
(credentials from the environment, as any job takes them): a GPU machine has Ray, torch and the package, not
always the 147 MB server binary.

Data: a generated table of 32 correlated numeric columns, prepared into the embedded S3 server started here;
an MLP VAE (256-128, latent 8). Training prints steady samples/s (the 2nd epoch's training steps) and end to
end (rows trained ÷ the whole job's wall time); scoring prints rows/s of the whole `vaepipe score` job,
S3 → actors → S3. On a machine without a CUDA GPU the GPU rows say "no GPU" and the CPU rows still run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

if __package__ in (None, ""):  # run as a script: the repository root is where `pipelines` lives
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.train_throughput import tabular_source  # noqa: E402
from pipelines.datasets.preparation import PrepareConfig
from pipelines.jobs.prepare import prepare_dataset  # noqa: E402
from pipelines.storage.embedded_server import running_store  # noqa: E402
from pipelines.storage.objects import clear_caches, ensure_bucket  # noqa: E402
from pipelines.jobs.train import run_training  # noqa: E402
from pipelines.training.config import TrainJobConfig  # noqa: E402

EPOCHS = 2
BATCH_SIZE = 4096
NO_GPU = "no GPU"
NO_CUDA = "torch.cuda.is_available() is False"


@dataclass
class Row:
    step: str
    path: str
    rate: Optional[float]  # None: not run
    unit: str
    seconds: Optional[float] = None
    note: str = ""


def gpu_name() -> Optional[str]:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def train(root: str, train_rows: int, use_gpu: bool) -> tuple[float, float, float]:
    """(steady samples/s, end-to-end samples/s, seconds) of a 2-epoch `vaepipe train` run."""
    cores = os.cpu_count() or 1
    config = TrainJobConfig(
        name="gpu-check-gpu" if use_gpu else "gpu-check-cpu", dataset="table", storage=root,
        model={"latent_dim": 8, "hidden": [256, 128]},
        train={"epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": 1e-3, "data_loading": "cache",
               "mixed_precision": "bf16" if use_gpu else "off"},
        checkpoint={"every_epochs": EPOCHS}, max_failures=0,
        scaling={"num_workers": 1, "use_gpu": use_gpu, "cpus_per_worker": max(0.5, cores - 1.5),
                 "torch_threads": max(1, cores - 1)},
        ray={"num_cpus": max(4, cores)}, engine="ray")  # what a Ray Train worker on the GPU does
    outcome = run_training(config, progress=lambda _: None)
    # the 2nd epoch: the 1st pays for warm-up (CUDA context, allocator, kernels chosen)
    return outcome.history[-1]["samples_per_s"], train_rows * EPOCHS / outcome.seconds, outcome.seconds


def score(root: str, reference: str, use_gpu: bool) -> float:
    """Seconds of `vaepipe score` over every row of the dataset (a fresh output each time)."""
    command = [sys.executable, "-m", "pipelines.cli", "score", "--model", reference, "--input", "table",
               "--storage", root, "--output", f"gpu-check-{uuid.uuid4().hex[:6]}", "--batch-size", str(BATCH_SIZE),
               "--engine", "ray"]
    command += ["--use-gpu", "--actors", "1"] if use_gpu else \
        ["--actors", "2", "--cpus-per-actor", "0.5"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - started


def measure(root: str, rows: int, train_rows: int) -> list[Row]:
    gpu = gpu_name()
    path = "whole job, S3 → S3" if root.startswith("s3://") else "whole job, local folder → local folder"
    results = []
    steady, end_to_end, seconds = train(root, train_rows, use_gpu=False)
    results.append(Row(f"train {EPOCHS} epochs", "CPU, fp32, 1 worker", steady, "samples/s", seconds,
                       f"end to end {end_to_end:,.0f} samples/s"))
    if gpu:
        steady, end_to_end, seconds = train(root, train_rows, use_gpu=True)
        results.append(Row(f"train {EPOCHS} epochs", f"GPU ({gpu}), bf16, 1 worker", steady, "samples/s", seconds,
                           f"end to end {end_to_end:,.0f} samples/s"))
    else:
        results.append(Row(f"train {EPOCHS} epochs", "GPU, bf16, 1 worker", None, "samples/s", note=NO_CUDA))
    reference = "gpu-check-cpu@1"
    seconds = score(root, reference, use_gpu=False)
    results.append(Row(f"score {rows:,} rows", "CPU, 2 actors × 0.5 CPU", rows / seconds, "rows/s", seconds,
                       path))
    if gpu:
        seconds = score(root, reference, use_gpu=True)
        results.append(Row(f"score {rows:,} rows", f"GPU ({gpu}), 1 actor", rows / seconds, "rows/s", seconds,
                           path))
    else:
        results.append(Row(f"score {rows:,} rows", "GPU, 1 actor", None, "rows/s", note=NO_CUDA))
    return results


def print_table(rows: list[Row]) -> None:
    print("| step | path | rate | seconds | note |\n|---|---|---:|---:|---|")
    for r in rows:
        rate = f"{r.rate:,.0f} {r.unit}" if r.rate is not None else NO_GPU
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else "–"
        print(f"| {r.step} | {r.path} | {rate} | {seconds} | {r.note} |")


def run_on(root: str, rows: int) -> list[Row]:
    """Prepare the generated table under `root`, then train and score there."""
    clear_caches()
    if root.startswith("s3://"):
        ensure_bucket(root)
    manifest = prepare_dataset(PrepareConfig(name="table", source="generated", storage=root,
                                             rows_per_shard=-(-rows // 8),
                                             split={"train": 0.98, "val": 0.01, "test": 0.01}),
                               source=tabular_source(rows))
    return measure(root, rows, manifest.split_rows["train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, to check the script runs")
    parser.add_argument("--storage", help="a local folder or s3:// URI to use instead of starting the embedded "
                                           "S3 server (outputs go under a fresh prefix there)")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, GPU: {gpu_name() or NO_GPU}"
          f"{f', bf16 supported: {torch.cuda.is_bf16_supported()}' if gpu_name() else ''}; {os.cpu_count()} CPU cores")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_ADDRESS", None)  # its own local Ray each job, never a cluster set in the shell
    if args.storage:
        results = run_on(f"{args.storage.rstrip('/')}/gpu-check-{uuid.uuid4().hex[:6]}", rows)
    else:
        with tempfile.TemporaryDirectory(prefix="vaepipe-gpu-check-") as tmp, \
                running_store(Path(tmp) / "store") as info:
            os.environ.update({"AWS_ENDPOINT_URL": info.endpoint, "AWS_ACCESS_KEY_ID": info.access_key,
                               "AWS_SECRET_ACCESS_KEY": info.secret_key, "AWS_REGION": info.region})
            results = run_on(f"s3://{info.bucket}", rows)
    print_table(results)


if __name__ == "__main__":
    main()
