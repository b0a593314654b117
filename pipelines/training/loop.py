"""The training loop: a plain PyTorch VAE loop (`run_loop`) and where it runs — a Ray Train worker
(`RayTrainSession`, `run_on_ray_train`) or this process (`training.in_process`, engine local).

Everything the loop needs from where it runs goes through a `TrainSession`: its rank and world size, the
device, the checkpoint to resume from, the model wrapped for data parallelism, the two splits, and where
each epoch's metrics and checkpoint go. On Ray, data arrives from Ray Data as one tensor column `x`. With
`data_loading: cache` a worker pulls its shard once and then shuffles in memory like a plain PyTorch
loop; with `stream` it iterates `iter_torch_batches` every epoch. Validation is the whole val split: each
worker takes every world_size-th row and the sums are all-reduced, so the number is the same whatever the
number of workers.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from contextlib import nullcontext
from typing import Iterator, Optional, Protocol

import numpy as np
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import batch_tensor, to_model_input
from pipelines.storage.layout import DIVERGED_FILE
from pipelines.training.checkpoints import load_checkpoint, save_checkpoint
from pipelines.training.config import LoopConfig
from pipelines.training.optimizer import FusedAdam
from pipelines.training.worker_config import HANDED_SPLITS, WorkerConfig, should_cache
from vae_core import VAE, ModelSpec, VAEOutput, beta_tc_loss


def x_column_collate():
    from ray.data.collate_fn import NumpyBatchCollateFn

    class XColumn(NumpyBatchCollateFn):
        """The one `x` column as a tensor (the default collation builds a dict of every column)."""

        def __call__(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
            return batch_tensor(batch["x"])

    return XColumn()


def warmup_at(loop: LoopConfig, epoch: int) -> float:
    """The share of the KL term's weights an epoch uses: 1/warmup, 2/warmup, … over `kl_warmup_epochs`, then 1."""
    return 1.0 if loop.kl_warmup_epochs == 0 else min(1.0, (epoch + 1) / loop.kl_warmup_epochs)


def beta_at(loop: LoopConfig, epoch: int) -> float:
    """β for an epoch: linear warm-up from β/warmup over `kl_warmup_epochs`, then β."""
    return loop.beta * warmup_at(loop, epoch)


def training_loss(loop: LoopConfig, out: VAEOutput, epoch: int, train_rows: int) -> torch.Tensor:
    """What the optimizer minimizes for one batch: the β-ELBO the model computed (`out.loss`), or β-TCVAE's loss
    from the same output. β-TCVAE's minibatch-weighted estimates use only this worker's batch, with the whole
    train split (every worker's rows) as the dataset size N; DDP then averages the gradients as for the ELBO."""
    if loop.objective == "elbo":
        return out.loss
    share = warmup_at(loop, epoch)
    return beta_tc_loss(out.recon_nll, out.mu, out.logvar, out.z, dataset_size=train_rows,
                        alpha=loop.alpha * share, beta=loop.beta * share, gamma=loop.gamma * share)


# Inputs per row up to which Kingma et al.'s α is kept as it is; above, it grows with the inputs (classifier_weight)
CLASSIFIER_WEIGHT_FEATURES = 64


def classifier_weight(loop: LoopConfig, manifest: DatasetManifest) -> float:
    """The weight of a label classifier's cross-entropy per labelled row (ignored by other models): as set, or
    Kingma et al.'s (2014) α = 0.1·N on the mean over labelled rows, 0.1 × train rows / labelled train rows, times
    the row's inputs over CLASSIFIER_WEIGHT_FEATURES when it has more. The reconstruction term is a sum over the
    inputs, so the pull it puts on q(y|x) through the unlabelled rows grows with them while the cross-entropy's
    does not: with 10 labels per class, 8×8 digits' classifier reached 0.97 at α alone (weight 1.4), mnist5k's
    28×28 one 0.45 (4.0, 30 epochs) and 0.87 at 40 (benchmarks/augmentation.py; README)."""
    if loop.classifier_weight != "auto":
        return float(loop.classifier_weight)
    labelled = sum(manifest.condition[0].train_counts) if manifest.condition else 0
    inputs = max(1.0, manifest.feature_dim / CLASSIFIER_WEIGHT_FEATURES)
    return 0.1 * manifest.split_rows["train"] / max(labelled, 1) * inputs


class CachedSplit:
    """A worker's rows in one tensor (on the GPU when there is one), shuffled in memory every epoch."""

    def __init__(self, x: torch.Tensor, device: torch.device, rows: slice = slice(None)):
        self.x = x[rows].contiguous().to(device)

    @classmethod
    def fetched(cls, pieces: list[tuple], device: torch.device, rows: slice = slice(None)) -> "CachedSplit":
        """The rows of the (batch reference, first row, end row) pieces the driver put in the object store
        (`trainer.worker_splits`)."""
        import ray

        batches = ray.get([ref for ref, _, _ in pieces])
        parts = [batch_tensor(x[first:end]) for x, (_, first, end) in zip(batches, pieces)]
        return cls(torch.cat(parts) if parts else torch.empty(0), device, rows)

    @classmethod
    def pulled(cls, data_iterator, device: torch.device, rows: slice = slice(None)) -> "CachedSplit":
        """The rows of a Ray Data shard, pulled once."""
        parts = list(data_iterator.iter_torch_batches(batch_size=4096, collate_fn=x_column_collate(), prefetch_batches=1))
        return cls(torch.cat(parts) if parts else torch.empty(0), device, rows)

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        n = len(self.x)
        order = torch.randperm(n, generator=generator).to(self.x.device) if generator is not None else None
        for start in range(0, n, batch_size):
            yield self.x[order[start:start + batch_size]] if order is not None else self.x[start:start + batch_size]


class StreamedSplit:
    """Batches streamed from Ray Data every epoch (for shards larger than memory)."""

    def __init__(self, data_iterator, pin_memory: bool, seed: int, rank: int = 0, world_size: int = 1,
                 strided: bool = False):
        self.data_iterator, self.pin_memory, self.seed = data_iterator, pin_memory, seed
        self.rank, self.world_size, self.strided = rank, world_size, strided

    def batches(self, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        shuffle = generator is not None
        iterator = self.data_iterator.iter_torch_batches(
            batch_size=batch_size, collate_fn=x_column_collate(), pin_memory=self.pin_memory,
            local_shuffle_buffer_size=batch_size * 8 if shuffle else None,
            local_shuffle_seed=int(torch.randint(0, 2**31, (1,), generator=generator)) if shuffle else None)
        for index, batch in enumerate(iterator):
            # the val split is not sharded by Ray: each worker takes every world_size-th batch
            if not self.strided or index % self.world_size == self.rank:
                yield batch


def _all_reduce(values: list[float], device: torch.device, op: str = "sum") -> list[float]:
    """Sums (or maxima) over the workers, as floats. The tensor sits on the workers' device: NCCL, the process
    group Ray Train starts for GPU workers, reduces CUDA tensors only."""
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor.tolist()


@torch.no_grad()
def evaluate(model: VAE, split, manifest: DatasetManifest, device: torch.device, batch_size: int) -> dict:
    """Mean β=1 negative ELBO, reconstruction NLL and KL over this worker's rows, all-reduced over workers."""
    model.eval()
    # summed on the device and read once: a float() per batch would wait for the GPU at every batch
    sums, rows = torch.zeros(3, dtype=torch.float64, device=device), 0
    for x in split.batches(batch_size, None):
        out = model(to_model_input(x.to(device, non_blocking=True), manifest))
        sums += torch.stack([out.neg_elbo.sum(), out.recon_nll.sum(), out.kl.sum()]).double()
        rows += len(x)
    neg_elbo, recon, kl, count = _all_reduce(sums.tolist() + [rows], device)
    count = max(count, 1.0)
    return {"val_neg_elbo": neg_elbo / count, "val_recon_nll": recon / count, "val_kl": kl / count,
            "val_rows": int(count)}


# A run has diverged when its validation loss ends up this many times its own scale above what the
# untrained model scored: learning made the model far worse than random weights (seen with lr 1000:
# val −ELBO 2.8e28 against ~40 untrained on digits). Overfitting stays far below this.
DIVERGENCE_FACTOR = 10.0


def divergence(metrics: dict, untrained_val_neg_elbo: float) -> str | None:
    """Why an epoch's metrics show a diverged run (non-finite, or val −ELBO exploded), or None."""
    bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if bad:
        return f"{', '.join(bad)} became NaN/inf"
    limit = untrained_val_neg_elbo + DIVERGENCE_FACTOR * max(abs(untrained_val_neg_elbo), 1.0)
    if metrics["val_neg_elbo"] > limit:
        return (f"val −ELBO {metrics['val_neg_elbo']:.4g} nats is far above the untrained model's "
                f"{untrained_val_neg_elbo:.4g}")
    return None


def _autocast(loop: LoopConfig, device: torch.device):
    enabled = loop.mixed_precision == "bf16" or (loop.mixed_precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if enabled else nullcontext()


class TrainSession(Protocol):
    """Where the loop runs: a Ray Train worker (`RayTrainSession`) or this process (`training.in_process`)."""

    rank: int
    world_size: int
    device: torch.device

    def restore(self) -> Optional[tuple[VAE, dict, dict]]:
        """(model, optimizer state, loop state) of the checkpoint to resume from, or None for a new run."""

    def prepare_model(self, model: VAE) -> torch.nn.Module:
        """The module the steps run through (DDP-wrapped across workers on Ray)."""

    def splits(self, cache: bool) -> tuple:
        """(train split, val split): `CachedSplit`s, or `StreamedSplit`s when not `cache`."""

    def report(self, metrics: dict, checkpoint_directory: Optional[str]) -> None:
        """Record an epoch's metrics, with the checkpoint saved in `checkpoint_directory` (rank 0 only)."""

    def log(self, line: str) -> None:
        """A progress line for a person (rank 0 only)."""


class RayTrainSession:
    """The loop inside a Ray Train worker: the few Ray Train calls."""

    def __init__(self, loop: LoopConfig, manifest: DatasetManifest, handed: Optional[dict] = None):
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()
        self.loop, self.manifest, self.handed = loop, manifest, handed or {}

    def restore(self) -> Optional[tuple[VAE, dict, dict]]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        # a private copy per worker: `as_directory` shares one download per node between processes, and a
        # worker that finishes first may delete it while another still reads (seen: a truncated optimizer.pt)
        with tempfile.TemporaryDirectory(prefix="vaepipe-resume-") as directory:
            return load_checkpoint(checkpoint.to_directory(directory))

    def prepare_model(self, model: VAE) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def splits(self, cache: bool) -> tuple:
        import ray.train

        if self.handed:  # read by the driver, cached here (`trainer.worker_splits` hands them only then)
            return (CachedSplit.fetched(self.handed["train"][self.rank], self.device),
                    CachedSplit.fetched(self.handed["val"], self.device, rows=slice(self.rank, None, self.world_size)))
        train_iterator = ray.train.get_dataset_shard("train")
        val_iterator = ray.train.get_dataset_shard("val")
        if cache:
            return (CachedSplit.pulled(train_iterator, self.device),
                    CachedSplit.pulled(val_iterator, self.device, rows=slice(self.rank, None, self.world_size)))
        pin = self.device.type == "cuda"
        return (StreamedSplit(train_iterator, pin, self.loop.seed),
                StreamedSplit(val_iterator, pin, self.loop.seed, self.rank, self.world_size, strided=True))

    def report(self, metrics: dict, checkpoint_directory: Optional[str]) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_directory) if checkpoint_directory else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def log(self, line: str) -> None:
        print(line, flush=True)  # Ray forwards a worker's stdout to the driver


def run_on_ray_train(config_dict: dict) -> None:
    """What each Ray Train worker runs (through `trainer.train_loop_per_worker`)."""
    # Ray Train logs every report and checkpoint at INFO; the epoch line of `run_loop` says it once
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    config = WorkerConfig.model_validate({key: value for key, value in config_dict.items() if key != HANDED_SPLITS})
    run_loop(config, RayTrainSession(config.loop, config.manifest, config_dict.get(HANDED_SPLITS)))


def run_loop(config: WorkerConfig, session: TrainSession) -> None:
    """Train `config.spec` for `config.loop.epochs` (from the session's checkpoint when it has one), reporting
    every epoch's metrics and, every `checkpoint_every` epochs and at the last, a checkpoint; stops without a
    checkpoint when training diverged, recording why in the run (DIVERGED_FILE)."""
    from pipelines.storage.objects import write_json

    loop, manifest, spec, every = config.loop, config.manifest, ModelSpec.from_dict(config.spec), config.checkpoint_every
    rank, world, device = session.rank, session.world_size, session.device
    torch.manual_seed(loop.seed * 1000 + rank)
    torch.set_num_threads(config.threads)

    model, optimizer_state, start_epoch, history, resumed_at = VAE(spec), None, 0, [], []
    untrained: float | None = None
    restored = session.restore()
    if restored is not None:
        restored_model, optimizer_state, state = restored
        model.load_state_dict(restored_model.state_dict())
        start_epoch, history = state["epoch"] + 1, state["history"]
        resumed_at = state.get("resumed_at", []) + [start_epoch]
        # checkpoints written before the yardstick was kept: the first epoch's value is the closest we have
        untrained = state.get("untrained_val_neg_elbo", history[0]["val_neg_elbo"] if history else None)
        if rank == 0:
            session.log(f"resumed from the checkpoint of epoch {state['epoch'] + 1}")
    model.to(device)
    # fused: one kernel updates every parameter (CPU and GPU) instead of a dozen small ops per tensor, which is
    # most of a small model's step; a 309-row table's 3,006 steps took 5.0 s through the notebook API unfused
    optimizer = FusedAdam(model.parameters(), lr=loop.lr, weight_decay=loop.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    trained = session.prepare_model(model)
    train_split, val_split = session.splits(should_cache(loop, manifest, world))

    if untrained is None:
        # the yardstick for divergence: what the model scores before any step
        untrained = evaluate(model, val_split, manifest, device, max(loop.batch_size, 512))["val_neg_elbo"]
    weight = classifier_weight(loop, manifest)
    autocast = _autocast(loop, device)  # entered once per step; a torch.autocast (or nullcontext) can be re-entered
    for epoch in range(start_epoch, loop.epochs):
        beta = beta_at(loop, epoch)
        generator = torch.Generator().manual_seed(loop.seed * 100_003 + epoch * 101 + rank)
        model.train()
        started = time.perf_counter()
        # on the device, read once per epoch: a float() per step would make every step wait for the GPU. Two
        # float64 sums added to in place: two ops a step where a stacked pair took six (a table's step is ~200 ops)
        sums, rows = torch.zeros(2, dtype=torch.float64, device=device), 0
        loss_total, neg_elbo_total = sums.unbind()  # views: adding to them adds to `sums`
        for x in train_split.batches(loop.batch_size, generator):
            x = to_model_input(x.to(device, non_blocking=True), manifest)
            batch_rows = len(x)
            with autocast:
                out = trained(x, beta=beta, free_bits=loop.free_bits, classifier_weight=weight)
                loss = training_loss(loop, out, epoch, manifest.split_rows["train"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if loop.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip)
            optimizer.step()
            loss_total.add_(loss.detach(), alpha=batch_rows)
            neg_elbo_total.add_(out.neg_elbo.detach().sum())
            rows += batch_rows
        loss_sum, neg_elbo_sum = sums.tolist()  # waits for the epoch's last step, so `elapsed` counts it
        elapsed = time.perf_counter() - started
        loss_sum, neg_elbo_sum, rows = _all_reduce([loss_sum, neg_elbo_sum, rows], device)
        (slowest,) = _all_reduce([elapsed], device, op="max")
        metrics = {
            "epoch": epoch + 1, "beta": beta,
            "train_loss": loss_sum / max(rows, 1), "train_neg_elbo": neg_elbo_sum / max(rows, 1),
            "samples_per_s": rows / max(slowest, 1e-9), "epoch_seconds": slowest,
            **evaluate(model, val_split, manifest, device, max(loop.batch_size, 512)),
        }
        why = divergence(metrics, untrained)
        if why is not None:
            # every worker sees the same all-reduced numbers, so all stop here, without a checkpoint: a
            # diverged epoch never becomes "best", and the driver refuses to register the run
            record = {"diverged_at_epoch": epoch + 1, "diverged_because": why}
            if rank == 0:
                # Train keeps only metrics that come with a checkpoint: the driver learns of this from the run
                # (the console line comes from training.epoch_console, which sees this report)
                write_json(f"{config.run_uri}/{DIVERGED_FILE}", record)
            session.report({**{k: (v if math.isfinite(v) else math.inf) for k, v in metrics.items()}, **record}, None)
            return
        # the epoch's console line is printed once, by the driver, from this report (training.epoch_console)
        history.append(metrics)
        if (epoch + 1) % every == 0 or epoch + 1 == loop.epochs:
            with tempfile.TemporaryDirectory() as directory:
                if rank == 0:
                    save_checkpoint(directory, model, optimizer,
                                    {"epoch": epoch, "history": history, "resumed_at": resumed_at,
                                     "untrained_val_neg_elbo": untrained})
                session.report(metrics, directory if rank == 0 else None)
        else:
            session.report(metrics, None)
