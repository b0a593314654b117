"""How long a model trains when the config leaves it to the data: `train.epochs`, `train.batch_size`,
`train.kl_warmup_epochs` and `checkpoint.every_epochs` set to `auto` (their default) become numbers for the
dataset's training rows and the number of processes that train, before anything runs. The run stores the
numbers, so a resumed run keeps them.

Tables are budgeted in optimizer steps, the way `training.tabular_synthesis` trains: a step of about 1/8 of
the training rows across all processes (a power of two between 32 and 512 rows), and as many epochs as give
`TABLE_STEPS` steps. A 300-row table then gets as many updates as a 30,000-row one; with a fixed 20 epochs of
128 rows on 2 workers it got one step per epoch and its posterior collapsed (KL 0.01–0.03 nats). Images keep
20 epochs of 128 rows per process (MNIST-sized sets have thousands of steps). β ramps up over the first
`KL_WARMUP_SHARE` of the epochs; with many epochs a checkpoint is written every few epochs (at most
`CHECKPOINTS_PER_RUN`), since each one goes to storage.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, TypeVar

from pipelines.datasets.manifest import DatasetManifest
from pipelines.training.config import TrainJobConfig

# `training.tabular_synthesis` uses the same rule (one owner: here)
TABLE_STEPS = 3000
MIN_STEP_ROWS, MAX_STEP_ROWS, ROWS_PER_STEP_SHARE = 32, 512, 8
MIN_TABLE_EPOCHS = 10
IMAGE_EPOCHS, IMAGE_BATCH = 20, 128
KL_WARMUP_SHARE = 0.1
CHECKPOINTS_PER_RUN = 20
EARLY_BEST_SHARE = 0.05  # a best epoch (or step) this early in a run is reported as a warning
# Torch threads for training in this process on steps of at most this many rows: one. Two threads were no faster on
# the quiet 2-core machine (notebook API, 3,000 steps: diabetes' 32-row steps 4.1-4.3 s with two, 4.2-4.9 with one;
# modechoice's 64-row steps 6.3-8.6 s against 6.0-6.6) and five to six times slower beside two busy processes
# (40-44 s against 7.0-7.4; 51 s against 8.5): OpenMP's threads wait for each other at every op, and a small step is
# hundreds of ops. At 512 rows a step two threads were faster when the cores were free (fair 14-18 s against 22 s).
SMALL_STEP_ROWS = 64

Config = TypeVar("Config", bound=TrainJobConfig)


def rows_per_step(train_rows: int) -> int:
    """Rows per optimizer step (all processes together) for a table of `train_rows`: about 1/8 of them, a power
    of two in [32, 512], so even a small table gets several steps per pass."""
    share = max(train_rows / ROWS_PER_STEP_SHARE, 1)
    return int(min(MAX_STEP_ROWS, max(MIN_STEP_ROWS, 2 ** round(math.log2(share)))))


@dataclass(frozen=True)
class Budget:
    epochs: int
    batch_size: int        # per process
    kl_warmup_epochs: int
    every_epochs: int      # checkpoint period
    steps_per_epoch: int
    auto: tuple[str, ...]  # the fields that were auto

    def line(self, processes: int) -> str:
        """`training budget (auto: epochs, batch_size): 375 epochs × 8 steps of 32 rows = 3,000 optimizer steps, …`"""
        rows = self.batch_size * processes
        where = f"{self.batch_size} rows × {processes} processes" if processes > 1 else f"{rows} rows"
        return (f"training budget ({'auto: ' + ', '.join(self.auto) if self.auto else 'as configured'}): "
                f"{self.epochs} epochs × {self.steps_per_epoch} steps of {where} = "
                f"{self.epochs * self.steps_per_epoch:,} optimizer steps; β warm-up {self.kl_warmup_epochs} "
                f"epoch(s); a checkpoint every {self.every_epochs} epoch(s)")


def plan_budget(config: TrainJobConfig, manifest: DatasetManifest, processes: int, sweep: bool = False) -> Budget:
    """The numbers for every `auto` field of `config` on this dataset with `processes` training processes
    (1 in this process, `scaling.num_workers` on Ray). A sweep checkpoints every epoch (ASHA stops trials at
    any epoch, and the best one must have a checkpoint)."""
    loop, rows = config.train, manifest.split_rows["train"]
    table = manifest.kind != "image"
    auto = tuple(name for name, value in (("epochs", loop.epochs), ("batch_size", loop.batch_size),
                                          ("kl_warmup_epochs", loop.kl_warmup_epochs),
                                          ("every_epochs", config.checkpoint.every_epochs)) if value == "auto")
    if loop.batch_size != "auto":
        batch = loop.batch_size
    elif table:
        batch = max(1, rows_per_step(rows) // processes)
    else:
        batch = IMAGE_BATCH
    # every process steps through its own share of the rows (Ray Train shards them; the last batch may be short)
    steps_per_epoch = max(1, math.ceil(math.ceil(rows / processes) / batch))
    if loop.epochs != "auto":
        epochs = loop.epochs
    elif table:
        epochs = max(MIN_TABLE_EPOCHS, math.ceil(TABLE_STEPS / steps_per_epoch))
    else:
        epochs = IMAGE_EPOCHS
    warmup = round(KL_WARMUP_SHARE * epochs) if loop.kl_warmup_epochs == "auto" else loop.kl_warmup_epochs
    if config.checkpoint.every_epochs != "auto":
        every = config.checkpoint.every_epochs
    else:
        every = 1 if sweep else max(1, epochs // CHECKPOINTS_PER_RUN)
    return Budget(epochs, batch, warmup, every, steps_per_epoch, auto)


def in_process_threads(step_rows: int | None, configured: int | None = None) -> int:
    """Torch intra-op threads for training in this process: `configured` when set, one for steps of at most
    `SMALL_STEP_ROWS` rows, else (or with the step size not known) torch's own count (one per core)."""
    import torch

    if configured:
        return configured
    return 1 if step_rows is not None and step_rows <= SMALL_STEP_ROWS else torch.get_num_threads()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside the block and the caller's count given back after, so a fit
    in a notebook or a job's process leaves the process as it found it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_budget(config: Config, budget: Budget) -> Config:
    """`config` with the budget's numbers in place of `auto` (validated again)."""
    data = config.model_dump(mode="json")
    data["train"].update(epochs=budget.epochs, batch_size=budget.batch_size, kl_warmup_epochs=budget.kl_warmup_epochs)
    data["checkpoint"]["every_epochs"] = budget.every_epochs
    return type(config).model_validate(data)


def early_best_warning(best_epoch: int, epochs: int) -> str | None:
    """A warning when the registered epoch came in the first 5 % of a run of 20 or more epochs: validation loss
    rose while training went on, so more epochs made the model worse (outlying values under a learned noise
    level did that to a skewed table)."""
    if epochs >= 20 and best_epoch <= EARLY_BEST_SHARE * epochs:
        return (f"WARNING: the best epoch ({best_epoch} of {epochs}) is in the first {EARLY_BEST_SHARE:.0%} of the "
                "run: validation loss rose while training went on. Look for outlying values (vaepipe prepare "
                "--transform COLUMN=quantile bounds them) or lower train.lr")
    return None
