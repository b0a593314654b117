"""What a small job pays for Ray: `vaepipe train` and `vaepipe score` end to end (a fresh `vaepipe` process each,
timed from start to exit) with engine local, with a Ray each job starts (cold), and attached to a warm local
Ray (`vaepipe ray up`), in one run; then the crossover row count: the smallest scored size at which Ray ran
faster than this process, which `engine: auto` uses (`pipelines.runtime.engine.MEASURED_CROSSOVER_ROWS`).

    PYTHONPATH=. python benchmarks/fixed_cost.py            # train digits 3 and 15 epochs; score 2k … 2M rows
    PYTHONPATH=. python benchmarks/fixed_cost.py --quick    # train 3 epochs locally; score 2k rows: checks it runs

Uses the AWS_* store if set (or the running embedded one), else an embedded store of its own; and a
VAEPIPE_HOME of its own for the warm Ray (stopped at the end). Scoring uses a generated 18-column table (16
numeric, 2 categorical) and an untrained model of latent 8 (`score_throughput.py`'s: the time does not depend
on the weights); training uses configs/digits.yaml on the built-in digits (1,797 rows). Run it on a quiet
machine: every row is one job's wall time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

ENGINES = ("local", "ray cold", "ray warm")
TRAIN_EPOCHS = {"quick": (3,), "full": (3, 15)}
DIGITS_ROWS = 1_797  # what auto compares with the crossover for the digits runs (train + val are fewer)
SCORE_ROWS = {"quick": (2_000,), "full": (2_000, 20_000, 200_000, 2_000_000)}


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds from starting `vaepipe ...` to its exit (it must succeed)."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", *command], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"`vaepipe {' '.join(command)}` failed:\n{run.stdout[-4000:]}")
    return seconds


def engine_flag(engine: str) -> list[str]:
    return ["--engine", "local" if engine == "local" else "ray"]


def measure(root: str, epochs: tuple[int, ...], sizes: tuple[int, ...], reference: str, engines: tuple[str, ...],
            env_for, train_on: tuple[str, ...] = ENGINES) -> dict:
    """{(what, engine): seconds} for every train and score size on `engines`, each under `env_for(engine)`;
    training only on the engines in `train_on`."""
    seconds = {}
    for engine in engines:
        env = env_for(engine)
        for count in epochs if engine in train_on else ():
            seconds[(f"train digits, {count} epochs", engine)] = timed(
                ["train", "configs/digits.yaml", "--storage", root, "--set", f"train.epochs={count}",
                 *engine_flag(engine)], env)
            print(f"  train {count} epochs, {engine}: {seconds[(f'train digits, {count} epochs', engine)]:.1f} s",
                  flush=True)
        for rows in sizes:
            what = f"score {rows:,} rows"
            seconds[(what, engine)] = timed(
                ["score", "--model", reference, "--input", f"table-{rows}", "--storage", root,
                 "--output", f"fixed-cost-{uuid.uuid4().hex[:6]}", *engine_flag(engine)], env)
            print(f"  {what}, {engine}: {seconds[(what, engine)]:.1f} s", flush=True)
    return seconds


def crossover(seconds: dict, sizes: tuple[int, ...], ray: str) -> int | None:
    """The smallest scored size at which `ray` (cold or warm) was faster than local; None when it never was."""
    for rows in sizes:
        if seconds[(f"score {rows:,} rows", ray)] < seconds[(f"score {rows:,} rows", "local")]:
            return rows
    return None


@contextmanager
def store() -> Iterator[str]:
    """The bucket to use: the AWS_* store if set (or the running embedded one's), else an embedded store of its
    own for the run."""
    from pipelines.storage.embedded_server import apply_store_env, running_store
    from pipelines.storage.objects import clear_caches

    apply_store_env()
    if "AWS_ENDPOINT_URL" in os.environ or "AWS_ACCESS_KEY_ID" in os.environ:
        yield "vaepipe"
        return
    with tempfile.TemporaryDirectory(prefix="vaepipe-fixed-cost-store-") as tmp, \
            running_store(Path(tmp) / "store") as info:
        os.environ.update({"AWS_ENDPOINT_URL": info.endpoint, "AWS_ACCESS_KEY_ID": info.access_key,
                           "AWS_SECRET_ACCESS_KEY": info.secret_key, "AWS_REGION": info.region})
        clear_caches()
        yield info.bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="train 3 epochs locally only and score 2k rows on each engine, to check the script runs")
    parser.add_argument("--storage", help="storage root (default s3://<bucket>/fixed-cost-<random>)")
    args = parser.parse_args()
    with store() as bucket:
        run(args, args.storage or f"s3://{bucket}/fixed-cost-{uuid.uuid4().hex[:8]}")


def run(args: argparse.Namespace, root: str) -> None:
    from pipelines.runtime.engine import MEASURED_CROSSOVER_ROWS, choose_engine
    from pipelines.storage.objects import check_access, ensure_bucket

    mode = "quick" if args.quick else "full"
    epochs, sizes = TRAIN_EPOCHS[mode], SCORE_ROWS[mode]

    ensure_bucket(root)
    check_access(root)
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
    from score_throughput import prepare, register_untrained

    print(f"preparing digits and the {', '.join(f'{rows:,}' for rows in sizes)}-row tables under {root}", flush=True)
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root), progress=lambda _: None)
    with tempfile.TemporaryDirectory() as workdir:
        manifests = [prepare(root, f"table-{rows}", rows, workdir) for rows in sizes]
    reference = register_untrained(root, manifests[0])

    home = tempfile.mkdtemp(prefix="vaepipe-fixed-cost-home-")
    dropped = ("RAY_ADDRESS", "VAEPIPE_AUTO_LOCAL_MAX_ROWS")  # every job starts or finds the Ray measured
    for name in dropped:  # and `auto picks` below is what auto picks on this machine alone
        os.environ.pop(name, None)
    base = dict(os.environ)
    base.update(PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled")
    cold_home = tempfile.mkdtemp(prefix="vaepipe-fixed-cost-cold-")  # no warm Ray there: each job starts its own

    def env_for(engine: str) -> dict[str, str]:
        return {**base, "VAEPIPE_HOME": home if engine == "ray warm" else cold_home}

    # --quick checks that every step runs, each once: a train job on Ray (cold and warm: ~45 s of the ~95 s it
    # took) goes through the same lines as a score job on Ray
    train_on = ENGINES[:1] if args.quick else ENGINES
    print("local and cold Ray:", flush=True)
    seconds = measure(root, epochs, sizes, reference, ENGINES[:2], env_for, train_on)
    try:
        up_s = timed(["ray", "up"], env_for("ray warm"))
        print(f"warm Ray (`vaepipe ray up` took {up_s:.1f} s, once):", flush=True)
        seconds.update(measure(root, epochs, sizes, reference, ENGINES[2:], env_for, train_on))
    finally:
        timed(["ray", "down"], env_for("ray warm"))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"\nfixed cost, end to end (s), {os.cpu_count()} cores, commit {commit}"
          + (" (--quick)" if args.quick else ""))
    rows_out = [f"| {'job':<26} | " + " | ".join(f"{engine:>9}" for engine in ENGINES) + " | auto picks |"]
    rows_out.append("|" + "-" * 28 + "|" + "|".join("-" * 11 for _ in ENGINES) + "|------------|")
    whats = [f"train digits, {count} epochs" for count in epochs] + [f"score {rows:,} rows" for rows in sizes]
    for what in whats:
        rows = DIGITS_ROWS if what.startswith("train") else int(what.split()[1].replace(",", ""))
        picks = choose_engine("auto", rows).engine  # in this process: no RAY_ADDRESS, no warm Ray any more
        rows_out.append(f"| {what:<26} | " + " | ".join(f"{seconds[(what, e)]:>9.1f}" if (what, e) in seconds
                                                        else f"{'-':>9}" for e in ENGINES)
                        + f" | {picks:<10} |")
    print("\n".join(rows_out))
    for ray in ("ray cold", "ray warm"):
        found = crossover(seconds, sizes, ray)
        print(f"crossover against {ray}: " + (f"{found:,} rows (the first size where it beat local)" if found
                                              else f"none up to {sizes[-1]:,} rows (local faster at every size)"))
    print(f"auto runs locally up to {MEASURED_CROSSOVER_ROWS['cold']:,} rows (cold) / "
          f"{MEASURED_CROSSOVER_ROWS['warm']:,} (warm Ray): pipelines.runtime.engine.MEASURED_CROSSOVER_ROWS")


if __name__ == "__main__":
    main()
