"""Scoring at scale, S3→S3: `vaepipe score --engine ray`, and `vaepipe score` as a user runs it (engine auto), against
a plain single-process loop on the same prepared table and model, at several sizes in one run; then `vaepipe
prepare` of a large generated CSV prefix.

    PYTHONPATH=. python benchmarks/scale.py                       # score 100k, 1M, 10M rows; prepare 30M (~5 GB)
    PYTHONPATH=. python benchmarks/scale.py --rows 100000 1000000 --prepare-rows 0
    PYTHONPATH=. python benchmarks/scale.py --quick               # 16k rows, prepare 20k: checks it runs

Every measured run is a fresh process (`prepare_memory.measured_run`): its wall time, and the peak RSS of it and of
everything it starts (for vaepipe, the local Ray it starts: GCS, raylet, daemons and the scoring actors). The
plain loop (`score_throughput.plain_loop`: read a shard, score it with torch on every core, write a Parquet)
is the baseline; ratio = plain seconds ÷ vaepipe seconds, so 1.0 is as fast as the plain loop. The issue's
targets are printed under the table, for each way: ratio ≥ 0.9 at the largest size, ≥ 0.6 end to end at 1M
rows, peak memory at the largest size ≤ 1.5 × the peak at 1M. Where auto takes Ray (above the crossover of
`pipelines/runtime/engine.py`), its figures are the `--engine ray` run's.

The scored table is 16 numeric and 2 categorical columns (`score_throughput.synthetic_table`), written as Parquet
files of at most 1M rows and prepared by the streamed `vaepipe prepare`; the model is registered untrained
(latent 8): throughput does not depend on the weights. Uses the AWS_* store if set, else the embedded one
(`vaepipe storage up`).
Prepare's rows come from `prepare_memory.py` (streamed local and streamed on Ray, same measurement). Run it on a
quiet machine; the 10M-row source and its prepared copy need ~3 GB of disk, the CSV prefix ~5 GB and its copy ~3 GB.
The prepare on Ray runs with its object store capped (`ray.object_store_mb`, 2 GiB in a full run), so the source is
more than twice the object store; each prepare's peak is checked against a stated bound (`PREPARE_PEAK_BOUND_MIB`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prepare_memory import Measured

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# --quick scores one size: each size runs the same lines, and each costs a Ray start
SIZES = {"full": (100_000, 1_000_000, 10_000_000), "quick": (16_000,)}
PREPARE_ROWS = {"full": 30_000_000, "quick": 20_000}  # ~175 bytes a CSV row: 30M rows is ~5 GB
PREPARE_OBJECT_STORE_MB = {"full": 2048, "quick": 256}  # the Ray prepare's object store: the source is ≥ 2× it
# the bound a prepare's peak memory stays under whatever the size: the summed PSS of all its processes (their
# summed RSS counts the Ray object store's shared pages once per worker that maps them; prepare_memory.Measured)
PREPARE_PEAK_BOUND_MIB = 4096
FILE_ROWS = 1_000_000  # rows per generated Parquet file: the generator holds one file's rows at a time
BATCH_SIZE, ACTORS = 4096, 2


def write_parquet_source(folder: Path, rows: int) -> None:
    """`rows` rows of the synthetic table as Parquet files of at most FILE_ROWS rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from score_throughput import synthetic_table

    folder.mkdir(parents=True)
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        frame = synthetic_table(min(FILE_ROWS, rows - start), seed=index)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"part-{index:04d}.parquet")


def prepared_table(root: str, rows: int, workdir: Path):
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    source = workdir / f"source-{rows}"
    write_parquet_source(source, rows)
    return prepare_dataset(PrepareConfig(name=f"scale-{rows}", source=str(source), storage=root,
                                         rows_per_shard=min(500_000, -(-rows // 8)),
                                         split={"train": 0.98, "val": 0.01, "test": 0.01}),
                           progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))


def measured(command: list[str], what: str):
    from prepare_memory import measured_run

    run = measured_run(command, env={**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"})
    if run.returncode != 0:
        raise SystemExit(f"{what} failed (exit {run.returncode}):\n{run.stdout[-3000:]}")
    print(f"  {what}: {run.seconds:.1f} s, peak {run.peak_mib:,.0f} MiB", flush=True)
    return run


def score_rows(root: str, sizes: tuple[int, ...], workdir: Path) -> list[dict]:
    """Per size: the plain loop, `vaepipe score --engine ray`, and `vaepipe score` as a user runs it (engine
    auto; when auto takes Ray, that is the Ray run already measured)."""
    from score_throughput import register_untrained

    from pipelines.runtime.engine import choose_engine

    results, reference = [], None
    for rows in sizes:
        manifest = prepared_table(root, rows, workdir)
        reference = reference or register_untrained(root, manifest)  # one model: every size has the same columns
        print(f"scoring {manifest.rows:,} rows ({len(manifest.shards)} shards) with {reference}", flush=True)
        plain = measured([sys.executable, __file__, "--plain-loop", root, manifest.name, reference], "plain loop")
        command = [sys.executable, "-m", "pipelines.cli", "score", "--model", reference, "--input", manifest.name,
                   "--storage", root, "--batch-size", str(BATCH_SIZE), "--actors", str(ACTORS),
                   "--cpus-per-actor", "0.5"]
        on_ray = measured(command + ["--output", f"scale-{uuid.uuid4().hex[:6]}", "--engine", "ray"],
                          "vaepipe score --engine ray")
        auto = choose_engine("auto", manifest.rows).engine
        default = on_ray
        if auto != "ray":
            default = measured(command + ["--output", f"scale-{uuid.uuid4().hex[:6]}"],
                               f"vaepipe score (engine auto: {auto})")
            if f"engine: {auto} (auto" not in default.stdout:  # the job chose otherwise: the row would mislabel it
                raise SystemExit(f"expected `vaepipe score` to choose engine {auto}:\n{default.stdout[-2000:]}")
        results.append({"rows": manifest.rows, "plain": plain, "ray": on_ray, "default": default, "auto": auto})
    return results


def prepare_rows(rows: int, workdir: Path, object_store_mb: int) -> list[tuple[str, int, Measured, int]]:
    """(how, rows, the measured run, source bytes) of the streamed prepare, local and on Ray (its object store
    capped at `object_store_mb`), of a CSV prefix."""
    from prepare_memory import measured as prepare_measured, write_source

    source = workdir / f"csv-{rows}"
    size = write_source(source, rows, files=max(2, rows // 1_000_000))
    print(f"prepare: {rows:,} rows, {size / 2**20:,.0f} MiB of CSV ({size / 2**20 / object_store_mb:.1f} × the Ray "
          f"prepare's object store of {object_store_mb:,} MiB)", flush=True)
    found = []
    for how in ("streamed, local", "streamed, ray"):
        run = prepare_measured(how, str(source), str(workdir / "prepared"), f"{how.split()[-1]}-{rows}",
                               object_store_mb if how.endswith("ray") else None)
        print(f"  {how}: {run.seconds:.1f} s, peak RSS {run.peak_mib:,.0f} MiB, PSS {run.peak_pss_mib:,.0f} MiB",
              flush=True)
        found.append((how, rows, run, size))
    return found


def print_tables(scored: list[dict], prepared: list, object_store_mb: int, commit: str, quick: bool) -> None:
    print(f"\nscoring S3→S3, {os.cpu_count()} cores, {ACTORS} actors, batch {BATCH_SIZE}, commit {commit}"
          + (" (--quick)" if quick else "") + "; ratio = plain loop s ÷ vaepipe s\n")
    print("| rows | plain loop s | plain rows/s | plain peak MiB | ray s | ray rows/s | ray ratio | ray peak MiB | "
          "default engine | default s | default ratio | default peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for found in scored:
        rows, plain, on_ray, default = found["rows"], found["plain"], found["ray"], found["default"]
        print(f"| {rows:,} | {plain.seconds:.1f} | {rows / plain.seconds:,.0f} | {plain.peak_mib:,.0f} | "
              f"{on_ray.seconds:.1f} | {rows / on_ray.seconds:,.0f} | {plain.seconds / on_ray.seconds:.2f} | "
              f"{on_ray.peak_mib:,.0f} | {found['auto']} | {default.seconds:.1f} | "
              f"{plain.seconds / default.seconds:.2f} | {default.peak_mib:,.0f} |")
    largest = scored[-1]
    at_1m = next((found for found in scored if found["rows"] == 1_000_000), None)
    print()
    for run, label in (("ray", "--engine ray"), ("default", "default engine")):
        ratio = largest["plain"].seconds / largest[run].seconds
        print(f"target ratio ≥ 0.9 at {largest['rows']:,} rows, {label}: {ratio:.2f} "
              f"({'met' if ratio >= 0.9 else 'missed'})")
        if at_1m is None:
            continue
        end_to_end = at_1m["plain"].seconds / at_1m[run].seconds
        print(f"target ratio ≥ 0.6 end to end at 1,000,000 rows, {label}: {end_to_end:.2f} "
              f"({'met' if end_to_end >= 0.6 else 'missed'})")
        if run == "default" and at_1m["auto"] != largest["auto"]:  # one process against a whole Ray: no growth
            print(f"target peak at {largest['rows']:,} ≤ 1.5 × peak at 1,000,000, {label}: not comparable (engine "
                  f"{at_1m['auto']} at 1,000,000, {largest['auto']} at {largest['rows']:,})")
            continue
        growth = largest[run].peak_mib / at_1m[run].peak_mib
        print(f"target peak at {largest['rows']:,} ≤ 1.5 × peak at 1,000,000, {label}: {growth:.2f} × "
              f"({'met' if growth <= 1.5 else 'missed'})")
    if at_1m is None:
        print("targets at 1,000,000 rows: not measured (1,000,000 is not among --rows)")
    if prepared:
        print("\n| prepare | rows | source MiB | seconds | rows/s | peak RSS MiB (all processes) | "
              "peak PSS MiB (all processes) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for how, rows, run, size in prepared:
            print(f"| {how} | {rows:,} | {size / 2**20:,.0f} | {run.seconds:.1f} | {rows / run.seconds:,.0f} | "
                  f"{run.peak_mib:,.0f} | {run.peak_pss_mib:,.0f} |")
        print(f"\n(the Ray prepare's object store: {object_store_mb:,} MiB)")
        for how, rows, run, size in prepared:
            peak = run.peak_pss_mib
            print(f"target {how} peak PSS ≤ {PREPARE_PEAK_BOUND_MIB:,} MiB with a source of {size / 2**20:,.0f} MiB: "
                  f"{peak:,.0f} MiB ({'met' if peak <= PREPARE_PEAK_BOUND_MIB else 'missed'})")


def plain_loop_main(root: str, dataset: str, reference: str) -> None:
    import torch

    from score_throughput import plain_loop

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"seconds={plain_loop(root, dataset, reference, BATCH_SIZE):.3f}")


def main() -> None:
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.objects import check_access, ensure_bucket

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", help="scored sizes (default 100,000 1,000,000 10,000,000)")
    parser.add_argument("--prepare-rows", type=int,
                        help="rows of the CSV prefix prepared at the end (default 30,000,000, ~5 GB; 0 skips it)")
    parser.add_argument("--storage", help="storage root (default s3://vaepipe/scale-<random>)")
    parser.add_argument("--quick", action="store_true", help="score 16k rows, prepare 20k: checks the "
                                                             "script runs (the suite runs it; its speed means nothing)")
    parser.add_argument("--plain-loop", nargs=3, metavar=("ROOT", "DATASET", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_store_env()
    if args.plain_loop:
        plain_loop_main(*args.plain_loop)
        return
    mode = "quick" if args.quick else "full"
    sizes = tuple(args.rows or SIZES[mode])
    prepare_size = PREPARE_ROWS[mode] if args.prepare_rows is None else args.prepare_rows
    root = args.storage or f"s3://vaepipe/scale-{uuid.uuid4().hex[:8]}"
    ensure_bucket(root)
    check_access(root)
    with tempfile.TemporaryDirectory(prefix="vaepipe-scale-") as tmp:
        scored = score_rows(root, sizes, Path(tmp))
        prepared = prepare_rows(prepare_size, Path(tmp), PREPARE_OBJECT_STORE_MB[mode]) if prepare_size else []
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print_tables(scored, prepared, PREPARE_OBJECT_STORE_MB[mode], commit, args.quick)


if __name__ == "__main__":
    main()
