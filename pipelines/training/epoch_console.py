"""One line per epoch on the job's console, printed once: a Ray Train `UserCallback` (it runs in the Train
controller) formats rank 0's report of each epoch and posts it to the job's `ProgressBoard`, which the
driver prints (Ray's workers do not print to the console: `runtime.ray_console`)."""
from __future__ import annotations

import math
import time
from typing import Optional

from pipelines.runtime.job_progress import duration

# a run of many epochs (a small table's step budget: hundreds) prints about this many epoch lines
MAX_EPOCH_LINES = 40


def epoch_line(metrics: dict, epochs: int, eta_s: float | None) -> str:
    """`epoch 3/15  β 1  train loss 31.479  val -ELBO 30.273 (recon 29.048, KL 1.225)  734 samples/s  ETA 24s`;
    a diverged epoch says why instead."""
    epoch = int(metrics["epoch"])
    if "diverged_because" in metrics:
        return f"epoch {epoch}/{epochs}: training diverged: {metrics['diverged_because']}"
    eta = f"  ETA {duration(eta_s)}" if eta_s is not None and epoch < epochs else ""
    return (f"epoch {epoch}/{epochs}  β {metrics['beta']:.3g}  train loss {metrics['train_loss']:.3f}  "
            f"val -ELBO {metrics['val_neg_elbo']:.3f} (recon {metrics['val_recon_nll']:.3f}, "
            f"KL {metrics['val_kl']:.3f})  {metrics['samples_per_s']:,.0f} samples/s{eta}")


class EpochEta:
    """The ETA of a run from its reports: the epochs left times the mean time between this run's reports (the
    first epoch's own seconds until there are two: its time includes pulling the data). Of a run longer than
    MAX_EPOCH_LINES epochs, every n-th epoch's line is printed (and the first, the last and a diverged one)."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.every = max(1, math.ceil(epochs / MAX_EPOCH_LINES))
        self.first_report: tuple[float, int] | None = None

    def line(self, metrics: dict) -> Optional[str]:
        """The console line of one epoch's report, with its ETA; None for an epoch not printed."""
        now, epoch = time.monotonic(), int(metrics["epoch"])
        shown = epoch % self.every == 0 or epoch in (1, self.epochs) or "diverged_because" in metrics
        eta = None
        if self.first_report is not None and epoch > self.first_report[1]:
            per_epoch = (now - self.first_report[0]) / (epoch - self.first_report[1])
            eta = per_epoch * (self.epochs - epoch)
        elif self.first_report is None:
            eta = float(metrics.get("epoch_seconds", 0)) * (self.epochs - epoch)
            self.first_report = (now, epoch)
        return epoch_line(metrics, self.epochs, eta) if shown else None


def epoch_console(board, epochs: int):
    """The callback for `training.trainer.build_trainer`: rank 0's metrics of every report → one line on `board`
    (`EpochEta`; a run in one process prints the same lines itself: `training.in_process`)."""
    from ray.train import UserCallback

    class EpochLines(UserCallback):
        def __init__(self):
            self.eta = EpochEta(epochs)

        def after_report(self, run_context, metrics, checkpoint):
            if not metrics or "epoch" not in metrics[0]:
                return
            line = self.eta.line(metrics[0])
            if line is not None:
                board.post.remote(line)

    return EpochLines()
