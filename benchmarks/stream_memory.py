"""Training in bounded memory: the peak of a training job whose table grows past Ray's object store, with
`train.data_loading: stream` against `cache`, in one run.

    PYTHONPATH=. python benchmarks/stream_memory.py                # 1.5M and 6M rows (~1 GiB), object store 256 MiB
    PYTHONPATH=. python benchmarks/stream_memory.py --quick        # 20k rows: checks the script runs

For each size it writes a generated CSV prefix (`prepare_memory.write_source`: 16 numeric columns, 2
categorical, an id), prepares it (streamed, in this process), then trains one epoch of a tabular VAE each
way, each in a fresh process on a local Ray that the job starts with its object store capped
(`ray.object_store_mb`), sampling the peak RSS of the process and of every process it starts (Ray's daemons
and workers: `prepare_memory.measured_run`):

- `cache`: the worker pulls its whole shard into its own memory once, then shuffles it there (the default
  for data that fits `train.cache_limit_mb`; the baseline);
- `stream`: batches stream from storage through Ray Data every epoch.

Bounded memory shows as a `stream` peak that stays flat while the table grows past the object store; the
`cache` peak grows with the table. The table's size is given as the Arrow bytes of its rows in memory.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # prepare_memory, beside this file

from prepare_memory import REPO, measured_run, write_source  # noqa: E402

WAYS = ("cache", "stream")


def run_way(way: str, root: str, name: str, object_store_mb: int) -> None:
    """One training job, in this (fresh) process; prints its epoch's training speed."""
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    config = TrainJobConfig(
        name=f"{name}-{way}", dataset=name, storage=root, engine="ray", max_failures=0,
        train={"epochs": 1, "batch_size": 4096, "data_loading": way, "cache_limit_mb": 64 * 1024},
        checkpoint={"every_epochs": 1}, scaling={"num_workers": 1, "cpus_per_worker": 1.0},
        ray={"num_cpus": 4, "object_store_mb": object_store_mb})
    outcome = run_training(config, progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    print(f"samples_per_s={outcome.history[-1]['samples_per_s']:.0f}")


def table_mib(root: str, name: str) -> float:
    """The Arrow bytes of the prepared table's rows in memory, in MiB."""
    import pyarrow.dataset as ds

    from pipelines.storage.layout import dataset_uri

    return ds.dataset(dataset_uri(root, name), format="parquet").to_table().nbytes / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_500_000, 6_000_000], help="table sizes in rows")
    parser.add_argument("--object-store-mb", type=int, default=256,
                        help="the object store of the Ray each job starts (default 256)")
    parser.add_argument("--quick", action="store_true", help="20k rows, each way: checks the script runs")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        run_way(args.way, args.root, args.name, args.object_store_mb)
        return
    if args.quick:
        args.rows = [20_000]  # one size: its two jobs are 2 of the suite's 15 minutes
    work = Path(tempfile.mkdtemp(prefix="stream-memory-"))
    try:
        measure(args.rows, args.object_store_mb, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the sources and datasets: gigabytes in a full run


def measure(sizes: list[int], object_store_mb: int, work: Path) -> None:
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.jobs.prepare import prepare_dataset

    root = str(work / "store")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = []
    for rows in sizes:
        name = f"table-{rows}"
        write_source(work / name, rows, files=4)
        prepare_dataset(PrepareConfig(name=name, source=str(work / name), storage=root, id_column="id"))
        size = table_mib(root, name)
        print(f"table: {rows:,} rows, {size:,.0f} MiB in memory "
              f"({size / object_store_mb:.1f}x the {object_store_mb} MiB object store)", flush=True)
        for way in WAYS:
            run = measured_run([sys.executable, __file__, "--way", way, "--root", root, "--name", name,
                                "--object-store-mb", str(object_store_mb)], env=env)
            if run.returncode != 0:
                raise SystemExit(f"{way} failed (exit {run.returncode}): {run.stdout[-2000:]}")
            speed = next(line.split("=")[1] for line in run.stdout.splitlines() if line.startswith("samples_per_s="))
            results.append((rows, size, way, run.seconds, float(speed), run.peak_mib))
            print(f"  {way}: {run.seconds:.1f} s, {float(speed):,.0f} samples/s, peak {run.peak_mib:,.0f} MiB",
                  flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"\none epoch of a tabular VAE, 1 worker, object store {object_store_mb} MiB, {os.cpu_count()} cores, "
          f"commit {commit}\n")
    print("| rows | table MiB | × object store | data_loading | job s | samples/s (epoch) | peak RSS MiB (all processes) "
          "| peak vs cache |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for rows, size, way, seconds, speed, peak in results:
        cache = next(p for r, _, w, _, _, p in results if r == rows and w == "cache")
        print(f"| {rows:,} | {size:,.0f} | {size / object_store_mb:.1f} | {way} | {seconds:.1f} | {speed:,.0f} | "
              f"{peak:,.0f} | {peak / cache:.2f} |")


if __name__ == "__main__":
    main()
