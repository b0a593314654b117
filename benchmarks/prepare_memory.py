"""Peak memory and speed of `vaepipe prepare` on a CSV prefix or an image folder, against reading the source
whole, in one run.

    PYTHONPATH=. python benchmarks/prepare_memory.py                 # 0.5M and 2M rows, 4 files each
    PYTHONPATH=. python benchmarks/prepare_memory.py --rows 1000000 8000000 --files 8
    PYTHONPATH=. python benchmarks/prepare_memory.py --images        # folders of 10k and 40k 64x64 RGB PNGs
    PYTHONPATH=. python benchmarks/prepare_memory.py --quick         # 20k and 80k rows: checks the script runs

For each size it writes a generated CSV prefix (16 numeric columns, 2 categorical, an id; ~175 bytes a row)
and prepares it three ways, each in a fresh process whose peak RSS (with every process it starts: Ray's
daemons and workers) is sampled every 0.1 s:

- `in memory`: the files read whole, prepared in memory (`prepare_in_memory`) and written as shards, as prepare
  read CSV/Parquet sources before it streamed them (the baseline; local files only, no commit);
- `streamed, local`: `vaepipe prepare --engine local` (`datasets.table_stream`, batches, three passes);
- `streamed, ray`: `--engine ray`, one Ray task per file on a local Ray the job starts.

With --images the source is a folder of PNGs in 10 class folders (random 64x64 RGB; --rows counts images)
and the ways are `in memory` (every image read, then the rows built and written, as prepare read image folders
before it went a shard at a time) and `streamed, local` (`vaepipe prepare`: every image checked, then read
again a shard at a time).

Bounded memory shows as a streamed peak that stays flat while the source grows; the in-memory peak grows with
it. The output goes to a local storage root in a temporary folder (or --storage).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("in memory", "streamed, local", "streamed, ray")


def write_source(folder: Path, rows: int, files: int, seed: int = 0) -> int:
    """A CSV prefix of `rows` rows in `files` files; its size in bytes."""
    import pandas as pd

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    per_file = -(-rows // files)
    for index in range(files):
        n = min(per_file, rows - index * per_file)
        z = rng.normal(size=(n, 4))
        frame = pd.DataFrame(np.round(z @ rng.normal(size=(4, 16)) + 0.1 * rng.normal(size=(n, 16)), 6),
                             columns=[f"x{i}" for i in range(16)])
        frame.insert(0, "id", [f"row{index * per_file + i:09d}" for i in range(n)])
        frame["plan"] = np.array(["basic", "plus", "pro"])[(z[:, 0] > 0).astype(int) + (z[:, 1] > 1)]
        frame["region"] = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]
        frame.to_csv(folder / f"part-{index:04d}.csv", index=False)
    return sum(path.stat().st_size for path in folder.iterdir())


IMAGE_SIDE, IMAGE_CLASSES = 64, 10


def write_images(folder: Path, images: int, seed: int = 0) -> int:
    """An image folder of `images` random RGB PNGs in class folders; its size in bytes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(images):
        path = folder / f"class-{index % IMAGE_CLASSES}" / f"img-{index:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)).save(path)
    return sum(path.stat().st_size for path in folder.rglob("*.png"))


def write_shards(arrow, storage: str, name: str) -> None:
    """The rows as Parquet shards under a local folder, as prepare wrote them when it read sources whole."""
    import pyarrow.parquet as pq

    from pipelines.datasets.preparation import default_rows_per_shard

    folder = Path(storage) / "in-memory" / name
    folder.mkdir(parents=True, exist_ok=True)
    step = default_rows_per_shard(arrow.num_rows)
    for index, start in enumerate(range(0, arrow.num_rows, step)):
        pq.write_table(arrow.slice(start, step), folder / f"part-{index:05d}.parquet", compression="zstd")


def run_variant(variant: str, source: str, storage: str, name: str, object_store_mb: Optional[int] = None) -> None:
    """One variant, in this (fresh) process; prints its rows. `object_store_mb`: the object store of the Ray
    that the `streamed, ray` variant starts (default: Ray's)."""
    from pipelines.datasets.preparation import PrepareConfig

    images = not any(Path(source).glob("*.csv"))
    config = PrepareConfig(name=name, source=source, storage=storage, id_column=None if images else "id",
                           engine="ray" if variant.endswith("ray") else "local",
                           ray={"object_store_mb": object_store_mb})
    if variant == "in memory" and images:
        from pipelines.datasets.preparation import build_arrow_table
        from pipelines.datasets.sources import load_image_folder

        arrow, _ = build_arrow_table(load_image_folder(source, None), config)
        write_shards(arrow, storage, name)
        print(f"rows={arrow.num_rows}")
        return
    if variant == "in memory":
        import pandas as pd
        import pyarrow as pa
        import pyarrow.csv as pacsv

        from pipelines.datasets.preparation import prepare_in_memory
        from pipelines.datasets.sources import SourceTable

        frames = []
        for path in sorted(Path(source).iterdir()):
            names = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).column_names
            frames.append(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True)).to_pandas())
        whole = pd.concat(frames, ignore_index=True)
        del frames
        ids = whole.pop("id").astype(str).to_numpy(dtype=object)
        manifest, arrow = prepare_in_memory(SourceTable("tabular", source, ids, table=whole), config)
        write_shards(arrow, storage, name)  # and its shards written
    else:
        from pipelines.jobs.prepare import prepare_dataset

        manifest = prepare_dataset(config, progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    print(f"rows={manifest.rows}")


# a command in a fresh process, timed, with the peak RSS of it and of every process it starts (a local Ray's
# daemons and workers included) sampled every 0.1 s: the memory figure of this benchmark and of scale.py.
# The sum of RSS counts a shared page once per process that maps it — a Ray's object store (shared memory
# every worker maps) many times over — so the peak of the summed PSS (each shared page split among the
# processes that map it: the whole tree's pages counted once) is sampled beside it.
@dataclass
class Measured:
    seconds: float
    peak_mib: float
    returncode: int
    stdout: str
    peak_pss_mib: float = 0.0


def measured_run(command: list[str], env: Optional[dict[str, str]] = None) -> Measured:
    """Run `command` (from the repository root) to its end; stdout is captured, stderr passes through."""
    import psutil

    started = time.monotonic()
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    peak, peak_pss, stop = [0], [0], threading.Event()

    def sample() -> None:
        process = psutil.Process(child.pid)
        while not stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
            except psutil.Error:
                tree = []
            rss = pss = 0
            for member in tree:
                try:  # one read per process for both, microseconds apart: PSS never above RSS in a sample
                    memory = member.memory_full_info()
                except psutil.Error:  # exited since the tree was listed
                    continue
                rss, pss = rss + memory.rss, pss + memory.pss
            peak[0], peak_pss[0] = max(peak[0], rss), max(peak_pss[0], pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    return Measured(seconds, peak[0] / 2**20, child.returncode, out, peak_pss[0] / 2**20)


def measured(variant: str, source: str, storage: str, name: str,
             object_store_mb: Optional[int] = None) -> Measured:
    """One variant in a fresh process: its seconds and the peaks (RSS, PSS) of it and everything it started."""
    store = [] if object_store_mb is None else ["--object-store-mb", str(object_store_mb)]
    run = measured_run([sys.executable, __file__, "--variant", variant, "--source", source, "--storage", storage,
                        "--name", name, *store], env={**os.environ, "PYTHONPATH": str(REPO)})
    if run.returncode != 0 or "rows=" not in run.stdout:
        raise SystemExit(f"{variant} failed (exit {run.returncode}): {run.stdout[-2000:]}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000], help="source sizes in rows")
    parser.add_argument("--files", type=int, default=4, help="CSV files per source")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--images", action="store_true",
                        help=f"an image folder of {IMAGE_SIDE}x{IMAGE_SIDE} RGB PNGs instead of a CSV prefix (--rows: "
                             "images; default 10k and 40k); ways: in memory, streamed local")
    parser.add_argument("--quick", action="store_true", help="20k and 80k rows, 2 files: checks the script runs "
                                                             "(with --images: 600 and 2,400 images)")
    parser.add_argument("--storage", help="storage root for the prepared datasets (default: a temporary folder)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--object-store-mb", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args.variant, args.source, args.storage, args.name, args.object_store_mb)
        return
    if args.images:
        args.variants = [variant for variant in args.variants if not variant.endswith("ray")]
        if args.quick:
            args.rows = [600, 2_400]
        elif args.rows == parser.get_default("rows"):
            args.rows = [10_000, 40_000]
    elif args.quick:
        args.rows, args.files = [20_000, 80_000], 2
    work = Path(tempfile.mkdtemp(prefix="prepare-memory-"))
    storage = args.storage or str(work / "store")
    results = []
    for rows in args.rows:
        source = work / f"source-{rows}"
        if args.images:
            size = write_images(source, rows)
            print(f"source: {rows:,} {IMAGE_SIDE}x{IMAGE_SIDE} RGB images, {size / 2**20:,.0f} MiB of PNG "
                  f"({rows * IMAGE_SIDE**2 * 3 / 2**20:,.0f} MiB of pixels)", flush=True)
        else:
            size = write_source(source, rows, args.files)
            print(f"source: {rows:,} rows, {size / 2**20:,.0f} MiB in {args.files} CSV files", flush=True)
        baseline = None
        for variant in args.variants:
            run = measured(variant, str(source), storage, f"{variant.split()[-1]}-{rows}")
            baseline = run.seconds if variant == "in memory" else baseline
            results.append((rows, size, variant, run, baseline))
            print(f"  {variant}: {run.seconds:.1f} s, peak RSS {run.peak_mib:,.0f} MiB, PSS {run.peak_pss_mib:,.0f} "
                  "MiB", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"\nprepare of {'an image folder' if args.images else 'a CSV prefix'}, {os.cpu_count()} cores, "
          f"commit {commit}\n")
    unit = "images" if args.images else "rows"
    print(f"| {unit} | source MiB | how | seconds | {unit}/s | speed vs in memory | peak RSS MiB (all processes) | "
          "peak PSS MiB (all processes) |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for rows, size, variant, run, baseline in results:
        ratio = f"{baseline / run.seconds:.2f}" if baseline else "–"
        print(f"| {rows:,} | {size / 2**20:,.0f} | {variant} | {run.seconds:.1f} | {rows / run.seconds:,.0f} | "
              f"{ratio} | {run.peak_mib:,.0f} | {run.peak_pss_mib:,.0f} |")


if __name__ == "__main__":
    main()
