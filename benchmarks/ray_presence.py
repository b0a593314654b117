"""What idle Ray processes cost a training loop that does not use them, on this machine.

A Ray Train job keeps a dozen Ray worker processes besides its training workers (Train's controller, Ray
Data's split coordinator, the stats and autoscaling actors, pooled workers). Each wakes ~100 times a second
(the core worker's signal check) while the job trains; on 2 cores that preempts the training threads. This
measures the plain PyTorch loop of `train_throughput.py` (a tabular MLP VAE on an in-memory tensor, all
cores' threads) in this process, with rounds alternating between:

  (a) no Ray in the process (before Ray starts, and again after it stops: the faster is the baseline),
  (b) a local Ray up, no actors,
  (c) N idle actors (N = 12, what a 1-worker `vaepipe train` job runs) at the niceness Ray gives workers,
  (d) the same actors under SCHED_IDLE, as `pipelines.runtime.processes.idle_unless_training` puts a train
      job's non-training workers,

and prints samples/s (the median epoch after the first) and the ratio to (a). Ray's daemons stay at their
default priority here: only the actors change. The gap between (d) and (a) is what the processes still cost
when they never run before the loop; the rest of a Ray Train worker's gap to the plain loop
(`train_throughput.py`) is not explained by this.

    PYTHONPATH=. .venv/bin/python benchmarks/ray_presence.py             # 120,000 rows, 12 actors, 3 rounds
    PYTHONPATH=. .venv/bin/python benchmarks/ray_presence.py --quick     # seconds: checks the script runs
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import plain_loop, steady  # noqa: E402

from vae_core import ModelSpec  # noqa: E402

SIZES = {"full": {"rows": 120_000, "actors": 12, "rounds": 3, "epochs": 4},
         "quick": {"rows": 4_000, "actors": 2, "rounds": 1, "epochs": 2}}
BATCH, LR = 512, 1e-3


def loop_rate(x: torch.Tensor, spec: ModelSpec, epochs: int) -> float:
    return steady(plain_loop(x, spec, epochs, BATCH, LR))


def set_policy(pids: list[int], policy: int) -> None:
    """Every thread of every process in `pids` under `policy` (SCHED_OTHER or SCHED_IDLE)."""
    for pid in pids:
        for thread in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setscheduler(int(thread), policy, os.sched_param(0))
            except OSError:  # a thread that ended meanwhile
                pass


def measure(rows: int, actors: int, rounds: int, epochs: int) -> dict[str, list[float]]:
    import ray

    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.randn(rows, 32, generator=torch.Generator().manual_seed(0))
    spec = ModelSpec.for_table(num_numeric=32, categorical_levels=[], latent_dim=8, hidden=(256, 128))
    rates: dict[str, list[float]] = {"no Ray": [loop_rate(x, spec, epochs)]}
    print(f"  no Ray: {rates['no Ray'][-1]:,.0f} samples/s", flush=True)
    ray.init(num_cpus=actors + 2, include_dashboard=False, log_to_driver=False)
    try:
        @ray.remote(num_cpus=0.01)
        class Idle:
            def pid(self) -> int:
                return os.getpid()

        time.sleep(3)  # Ray's start-up work done before the first timed epoch
        rates["Ray up, no actors"] = [loop_rate(x, spec, epochs)]
        handles = [Idle.remote() for _ in range(actors)]
        pids = ray.get([handle.pid.remote() for handle in handles])
        time.sleep(3)
        for round_ in range(rounds):
            for label, policy in ((f"{actors} idle actors, Ray's niceness", os.SCHED_OTHER),
                                  (f"{actors} idle actors, SCHED_IDLE", os.SCHED_IDLE)):
                set_policy(pids, policy)
                rates.setdefault(label, []).append(loop_rate(x, spec, epochs))
                print(f"  round {round_ + 1}, {label}: {rates[label][-1]:,.0f} samples/s", flush=True)
        for handle in handles:
            ray.kill(handle)
    finally:
        ray.shutdown()
    time.sleep(2)
    rates["no Ray"].append(loop_rate(x, spec, epochs))
    return rates


def print_table(rates: dict[str, list[float]], rows: int) -> None:
    baseline = max(rates["no Ray"])
    print(f"\nplain PyTorch loop, tabular MLP VAE, {rows:,} rows × 32, batch {BATCH}, "
          f"{torch.get_num_threads()} threads, median epoch after the first; median over rounds\n")
    print("| beside the loop | samples/s | vs no Ray | each round |")
    print("|---|---|---|---|")
    for label, values in rates.items():
        value = baseline if label == "no Ray" else float(np.median(values))
        print(f"| {label} | {value:,.0f} | {value / baseline:.2f} | {' / '.join(f'{v:,.0f}' for v in values)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds: 4,000 rows, 2 actors, one round")
    parser.add_argument("--actors", type=int, help="idle actors (default 12)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    args = parser.parse_args(argv)
    size = dict(SIZES["quick" if args.quick else "full"])
    size.update({k: v for k, v in (("actors", args.actors), ("rounds", args.rounds)) if v})
    rates = measure(**size)
    print_table(rates, size["rows"])


if __name__ == "__main__":
    main()
