"""Where a job runs, and how `engine: auto` chooses.

`local` runs a job in this process: pyarrow reads the shards, torch runs the same training loop and the same
model actors' code, and the output goes through the same commit protocol, with the same files and reports.
`ray` runs it on Ray (Ray Data, Ray Train), started for the job, attached to the warm local Ray of
`vaepipe ray up`, or to the cluster `ray.address` / RAY_ADDRESS names. Ray costs a fixed ~10-40 s per job
on small machines (start, worker groups, the first pass of a streaming pipeline, teardown), so `auto`:

- always takes `ray` when the job is attached to a Ray cluster (`ray.address`, RAY_ADDRESS, a Ray this
  process is already connected to: `vaepipe submit`, a KubeRay job, tests);
- takes `ray` when the job cannot run in one process (a training set over `train.cache_limit_mb`);
- otherwise `local` below the measured crossover (`auto_local_max_rows`) and `ray` above it.

Nothing here imports Ray: choosing costs nothing.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal, Optional

from pipelines.errors import UserError
from pipelines.runtime.warm_ray import warm_ray_address

Engine = Literal["auto", "ray", "local"]
ENGINE_HELP = ("where the job runs: local (in this process, no Ray), ray (Ray Data / Ray Train), or auto "
               "(local below the measured crossover, ray above it and always when attached to a Ray cluster)")

# The most rows `auto` runs in this process, from benchmarks/fixed_cost.py (README, "Small jobs without Ray"),
# measured end to end on this project's 2-core machine at commit 20069f6: scoring a generated 18-column table,
# local 3.3 / 3.4 / 4.1 / 11.9 s for 2k / 20k / 200k / 2M rows against 14.9 / 18.1 / 18.1 / 27.3 s on a Ray
# the job starts (cold) and 12.4 / 18.4 / 19.7 / 41.9 s attached to the warm Ray of `vaepipe ray up`; training
# digits 7.4 s (3 epochs) and 10.8 s (15) locally against 43-66 s on Ray. Ray never caught up within the sizes
# measured — on 2 cores its actors share the cores this process uses, and every Ray job pays its start-up — so
# the threshold is the largest size measured: `auto` runs locally only where local was measured faster, and
# takes Ray beyond it, where nothing was measured. A machine with more cores than one process uses (or GPUs)
# reaches the crossover sooner: run the benchmark there and set VAEPIPE_AUTO_LOCAL_MAX_ROWS.
MEASURED_CROSSOVER_ROWS = {"cold": 2_000_000, "warm": 2_000_000}
ENV_AUTO_LOCAL_MAX_ROWS = "VAEPIPE_AUTO_LOCAL_MAX_ROWS"


class EngineError(UserError, ValueError):
    """`engine: local` asked for a job that cannot run in one process; the message says why."""


@dataclass(frozen=True)
class EngineChoice:
    """The engine a job runs on and why, as the job's output says it."""

    engine: Literal["ray", "local"]
    reason: str

    @property
    def line(self) -> str:
        return f"engine: {self.engine} ({self.reason})"


def attached_cluster(address: Optional[str]) -> Optional[str]:
    """What names a Ray cluster this job must run on (the config's `ray.address`, RAY_ADDRESS, a Ray this
    process is already connected to), in words; None when nothing does."""
    if address:
        return f"ray.address is {address}"
    if os.environ.get("RAY_ADDRESS"):
        return f"RAY_ADDRESS is {os.environ['RAY_ADDRESS']}"
    ray = sys.modules.get("ray")  # never import Ray to find out: a process that did not import it is not connected
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return "this process is connected to a Ray cluster"
    return None


def auto_local_max_rows(warm: bool) -> int:
    """Rows up to which `auto` runs a job locally: $VAEPIPE_AUTO_LOCAL_MAX_ROWS, else the measured crossover
    against a warm or a cold local Ray."""
    given = os.environ.get(ENV_AUTO_LOCAL_MAX_ROWS)
    if given is not None:
        if not given.strip().isdigit():
            raise EngineError(f"{ENV_AUTO_LOCAL_MAX_ROWS}={given!r} is not a whole number of rows")
        return int(given)
    return MEASURED_CROSSOVER_ROWS["warm" if warm else "cold"]


def choose_engine(requested: Engine, rows: int, address: Optional[str] = None,
                  local_blocker: Optional[str] = None) -> EngineChoice:
    """The engine for a job of `rows` rows. `address` is the job's `ray.address`; `local_blocker` says why this
    job cannot run in one process (None when it can): `local` is then refused and `auto` takes Ray."""
    if requested == "local":
        if local_blocker:
            raise EngineError(f"engine local cannot run this job: {local_blocker}; use --engine ray (or auto)")
        return EngineChoice("local", "asked for: in this process, no Ray")
    if requested == "ray":
        return EngineChoice("ray", "asked for")
    cluster = attached_cluster(address)
    if cluster:
        return EngineChoice("ray", f"auto: {cluster}")
    if local_blocker:
        return EngineChoice("ray", f"auto: {local_blocker}")
    warm = warm_ray_address() is not None
    limit = auto_local_max_rows(warm)
    against = "the warm local Ray (`vaepipe ray up`)" if warm else "a Ray started for the job"
    if rows <= limit:
        return EngineChoice("local", f"auto: {rows:,} rows ≤ {limit:,}, up to which this process was measured "
                                     f"faster than {against}")
    return EngineChoice("ray", f"auto: {rows:,} rows > {limit:,}, beyond the sizes where this process was measured "
                               f"faster than {against}")
