"""Training in this process (engine local, and the notebook API `vaepipe`): the loop Ray Train workers run
(`loop.run_loop`), as one process, over splits held in memory, with checkpoints as folders under the run on
storage and the best ones kept by validation negative ELBO, as Ray Train keeps them.

Same seed, same rows in the same order, same loop: a run here and a one-worker Ray run differ only in the
order Ray Data delivers the rows.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.storage.layout import local_checkpoint_epoch, local_checkpoint_uri
from pipelines.training.budget import in_process_threads, torch_threads
from pipelines.training.checkpoints import STATE_FILE, load_checkpoint
from pipelines.training.config import TrainJobConfig
from pipelines.training.epoch_console import EpochEta
from pipelines.training.loop import CachedSplit, run_loop
from pipelines.training.worker_config import WorkerConfig
from vae_core import VAE, ModelSpec


def read_split_tensor(dataset: str, manifest: DatasetManifest, split: str) -> torch.Tensor:
    """A split's featurized rows (`x`: uint8 images or float32 features) read with pyarrow, in shard order."""
    from pipelines.datasets.reader import iter_split_batches

    parts = [batch["x"] for batch in iter_split_batches(dataset, manifest, split)]
    shape = ((0, manifest.feature_dim + manifest.condition_dim) if manifest.condition
             else (0, *((manifest.image.shape) if manifest.kind == "image" else (manifest.feature_dim,))))
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(shape, dtype=np.float32))


class StoredCheckpoint:
    """A checkpoint folder on storage, opened like a Ray Train checkpoint (`as_directory`)."""

    def __init__(self, uri: str, metrics: dict):
        self.uri, self.metrics = uri, metrics

    @contextmanager
    def as_directory(self) -> Iterator[str]:
        from pipelines.storage.objects import list_files, read_bytes, resolve

        location = resolve(self.uri)
        if not location.is_s3:
            yield location.path
            return
        with tempfile.TemporaryDirectory(prefix="vaepipe-checkpoint-") as directory:
            for entry in list_files(self.uri, recursive=False):
                (Path(directory) / entry.uri.rsplit("/", 1)[1]).write_bytes(read_bytes(entry.uri))
            yield directory


class LocalRun:
    """The checkpoints of a run trained in this process: `local-checkpoint-<epoch>/` folders under the run (the
    files of `save_checkpoint`, the loop's state last, so a folder without it is an interrupted upload). The best
    `keep` by validation negative ELBO and the latest are kept."""

    def __init__(self, run_uri: str, keep: int):
        self.run_uri, self.keep = run_uri, keep
        # epoch -> checkpoint: read from storage once, then kept up to date by save(), this process being the
        # run's only writer (listing and reading them back after every epoch cost ~1 s of a 15-epoch digits run)
        self._stored: Optional[dict[int, StoredCheckpoint]] = None

    def checkpoints(self) -> list[StoredCheckpoint]:
        """The run's complete checkpoints, oldest first, each with the metrics of its epoch."""
        if self._stored is None:
            self._stored = self._read_checkpoints()
        return [self._stored[epoch] for epoch in sorted(self._stored)]

    def _read_checkpoints(self) -> dict[int, StoredCheckpoint]:
        from pipelines.storage.objects import list_files, read_json, resolve

        base = resolve(self.run_uri).path.rstrip("/") + "/"
        folders = {}
        for entry in list_files(self.run_uri, recursive=True):
            folder, _, name = entry.path.removeprefix(base).partition("/")
            if name == STATE_FILE and local_checkpoint_epoch(folder) is not None:
                folders[local_checkpoint_epoch(folder)] = local_checkpoint_uri(self.run_uri, local_checkpoint_epoch(folder))
        return {epoch: StoredCheckpoint(uri, read_json(f"{uri}/{STATE_FILE}")["history"][-1])
                for epoch, uri in folders.items()}

    def latest(self) -> Optional[StoredCheckpoint]:
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None

    def best(self) -> list[tuple[StoredCheckpoint, dict]]:
        return [(checkpoint, checkpoint.metrics) for checkpoint in self._kept(self.checkpoints())]

    def _kept(self, checkpoints: list[StoredCheckpoint]) -> list[StoredCheckpoint]:
        ranked = sorted(checkpoints, key=lambda c: c.metrics["val_neg_elbo"])[:self.keep]
        return [c for c in checkpoints if c in ranked or c is checkpoints[-1]]

    def save(self, directory: str, metrics: dict) -> None:
        """Upload a checkpoint folder (`save_checkpoint`'s files, the state last), then drop those no longer kept."""
        from pipelines.storage.objects import delete_prefix, write_bytes

        epoch = int(metrics["epoch"])
        uri = local_checkpoint_uri(self.run_uri, epoch)
        files = sorted(Path(directory).iterdir(), key=lambda path: path.name == STATE_FILE)
        if self._stored is None:  # the run's earlier checkpoints (a resumed run), read before this one is written
            self._stored = self._read_checkpoints()
        for path in files:
            write_bytes(f"{uri}/{path.name}", path.read_bytes())
        self._stored[epoch] = StoredCheckpoint(uri, dict(metrics))
        kept = self._kept(self.checkpoints())
        for stored_epoch, checkpoint in list(self._stored.items()):
            if checkpoint not in kept:
                delete_prefix(checkpoint.uri)
                del self._stored[stored_epoch]


class InProcessSession:
    """`loop.TrainSession` for one process: rank 0 of 1, the splits in memory, checkpoints in a `LocalRun`."""

    rank, world_size = 0, 1

    def __init__(self, run: LocalRun, x_train: torch.Tensor, x_val: torch.Tensor, device: torch.device,
                 log: Callable[[str], None], epochs: int, on_report: Optional[Callable[[dict], None]] = None):
        self.run, self.x_train, self.x_val, self.device, self._log = run, x_train, x_val, device, log
        # the epoch lines a Ray run's driver prints from the reports (training.epoch_console), printed here
        self.eta, self.on_report = EpochEta(epochs), on_report

    def restore(self) -> Optional[tuple[VAE, dict, dict]]:
        latest = self.run.latest()
        if latest is None:
            return None
        with latest.as_directory() as directory:
            return load_checkpoint(directory)

    def prepare_model(self, model: VAE) -> torch.nn.Module:
        return model  # one process: nothing to synchronize

    def splits(self, cache: bool) -> tuple:
        # always in memory: a job that cannot hold its rows runs on Ray (jobs.train's engine choice)
        return CachedSplit(self.x_train, self.device), CachedSplit(self.x_val, self.device)

    def report(self, metrics: dict, checkpoint_directory: Optional[str]) -> None:
        if checkpoint_directory is not None:
            self.run.save(checkpoint_directory, metrics)
        line = self.eta.line(metrics) if "epoch" in metrics else None
        if line is not None:
            self._log(line)
        if self.on_report is not None:
            self.on_report(metrics)

    def log(self, line: str) -> None:
        self._log(line)


@dataclass
class InProcessResult:
    """What a run in this process left, shaped like Ray Train's `Result`."""

    best_checkpoints: list[tuple[StoredCheckpoint, dict]]
    checkpoint: Optional[StoredCheckpoint]  # the latest


def train_in_process(config: TrainJobConfig, manifest: DatasetManifest, spec: ModelSpec, x_train: torch.Tensor,
                     x_val: torch.Tensor, run_uri: str, log: Callable[[str], None] = print,
                     on_report: Optional[Callable[[dict], None]] = None) -> InProcessResult:
    """Run the training loop of `config` here on the given splits, checkpointing under `run_uri` (resuming from
    its latest local checkpoint when there is one); one line per epoch to `log`, every epoch's metrics to
    `on_report` (MLflow, when the run is tracked). Torch uses `describe_in_process`'s threads; the caller's thread
    count is restored after."""
    device = torch.device("cuda" if config.scaling.use_gpu and torch.cuda.is_available() else "cpu")
    worker = WorkerConfig(loop=config.train, spec=spec.to_dict(), manifest=manifest,
                          checkpoint_every=config.checkpoint.every_epochs, threads=_threads(config), run_uri=run_uri)
    run = LocalRun(run_uri, config.checkpoint.keep)
    with torch_threads(worker.threads):
        run_loop(worker, InProcessSession(run, x_train, x_val, device, log, config.train.epochs, on_report))
    return InProcessResult(run.best(), run.latest())


def _threads(config: TrainJobConfig) -> int:
    batch = config.train.batch_size  # planned by now; "auto" only if a caller skipped `with_budget`
    return in_process_threads(batch if isinstance(batch, int) else None, config.scaling.torch_threads)


def describe_in_process(config: TrainJobConfig) -> str:
    """How a run in this process is laid out, for the job's first lines: `scaling.torch_threads` threads, or
    (unset) one for small steps (`training.budget.in_process_threads`) and one per core otherwise."""
    return f"1 process × {_threads(config)} torch thread(s){' on GPU' if config.scaling.use_gpu else ''}"
