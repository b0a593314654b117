"""`vaepipe train`: Ray Data streams a prepared dataset into Ray Train workers; the best
checkpoint is calibrated on the validation split and registered as a new model version.

Everything Ray-specific (datasets, scaling, storage, failure policy) is built
here from the job config; the per-worker loop is in `train_loop.py`.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Optional, Sequence, TypeVar

import numpy as np
import torch

from pipelines.config_loading import StrictModel
from pipelines.datasets.catalog import load_manifest, verify_shards
from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import batch_tensor, read_split, to_model_input
from pipelines.errors import UserError
from pipelines.layout import dataset_uri, run_uri, runs_uri, storage_root
from pipelines.train_config import ModelConfig, ScalingConfig, TrainJobConfig
from vae_core import VAE, ModelSpec, anomaly_scores, model_to_bytes

if TYPE_CHECKING:
    from pipelines.storage import Location

JOB_FILE = "vaepipe_job.json"
C = TypeVar("C", bound=StrictModel)


class TrainingError(UserError, RuntimeError):
    """A training job that could not run or finish; the message says why and what to do."""


@dataclass
class TrainOutcome:
    run_id: str
    run_uri: str
    model: str  # name@version
    version: int
    best_epoch: int
    metrics: dict
    history: list[dict]
    seconds: float


def model_spec_for(manifest: DatasetManifest, config: ModelConfig) -> ModelSpec:
    """The default architecture per data kind: conv + Bernoulli (or Gaussian) pixels for images, MLP + per-column
    likelihoods (Gaussian numeric, zero-inflated Gaussian for mostly-zero numeric columns,
    categorical one-hot groups) for tables."""
    if manifest.kind == "image":
        if config.architecture == "mlp":
            raise TrainingError("model.architecture 'mlp' is for tabular datasets; image datasets use 'conv' "
                                "(or 'auto')")
        return ModelSpec.for_images(shape=tuple(manifest.image.shape), latent_dim=config.latent_dim,
                                    hidden=tuple(config.hidden or (32, 64)), pixels=config.image_likelihood,
                                    variance=config.gaussian_variance or "shared")
    if config.architecture == "conv":
        raise TrainingError("model.architecture 'conv' needs an image dataset; tables use 'mlp' (or 'auto')")
    zero_inflated = sum(c.zero_inflated for c in manifest.numeric)
    return ModelSpec.for_table(num_numeric=len(manifest.numeric) - zero_inflated, num_zero_inflated=zero_inflated,
                               categorical_levels=[len(c.levels) for c in manifest.categorical],
                               latent_dim=config.latent_dim, hidden=tuple(config.hidden or (256, 128)),
                               variance=config.gaussian_variance or "learned")


def new_run_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


# Ray Data's read and map tasks need a CPU beside a job's train workers, or the job
# waits forever (RAY_NOTES.md, hangs 1 and 2).
READ_CPUS = 1.0


def job_cpus(scaling: ScalingConfig) -> float:
    """Logical CPUs one training job needs to never hang: its workers' CPUs plus one for Ray Data reads."""
    return scaling.num_workers * scaling.cpus_per_worker + READ_CPUS


def check_resources(config: TrainJobConfig) -> None:
    """Fail at once, naming the fields, when the Ray cluster could never schedule the workers: a Ray that
    vaepipe started as it is, an autoscaling cluster at its largest; on the latter, ask its autoscaler for
    the workers and wait for them (ray.scale_up_timeout_s)."""
    from pipelines.cluster_capacity import cluster_capacity, scale_up_for, worker_bundles

    scaling = config.scaling
    capacity = cluster_capacity()
    cpus, gpus = capacity.total("CPU"), capacity.total("GPU")
    if job_cpus(scaling) > cpus:
        raise TrainingError(
            f"scaling.num_workers ({scaling.num_workers}) × scaling.cpus_per_worker ({scaling.cpus_per_worker}) = "
            f"{scaling.num_workers * scaling.cpus_per_worker:g} CPUs, but {capacity.phrase} {cpus:g} and Ray Data "
            f"needs {READ_CPUS:g} of them; lower scaling.cpus_per_worker (e.g. "
            f"{max(0.1, (cpus - READ_CPUS) / scaling.num_workers):.2g}) or raise ray.num_cpus")
    if scaling.use_gpu and scaling.num_workers * scaling.gpus_per_worker > gpus:
        raise TrainingError(f"scaling.use_gpu is true but {capacity.phrase} {gpus:g} GPUs for "
                            f"{scaling.num_workers} workers; set scaling.use_gpu=false or run on a GPU cluster")
    bundles = worker_bundles(scaling.num_workers, scaling.cpus_per_worker, scaling.gpus_per_worker, scaling.use_gpu)
    scale_up_for(capacity, bundles + [{"CPU": READ_CPUS}], config.ray.scale_up_timeout_s, print,
                 f"{scaling.num_workers} train worker(s) and {READ_CPUS:g} CPU for Ray Data reads")


def _resolve_dataset(root: str, dataset: str) -> str:
    return dataset.rstrip("/") if "://" in dataset or dataset.startswith("/") else dataset_uri(root, dataset)


# the score column that is calibrated, thresholded and ranked (cards written before it existed say "neg_elbo")
SCORE_COLUMN = "anomaly_score"


@torch.no_grad()
def validation_scores(model: VAE, dataset: str, manifest: DatasetManifest, batch_size: int = 4096) -> np.ndarray:
    """Deterministic anomaly scores (`vae_core.anomaly_scores`' SCORE_COLUMN, at z = posterior mean)
    of every validation row."""
    model.eval()
    scores = []
    for batch in read_split(dataset, manifest, "val").iter_batches(batch_size=batch_size, batch_format="numpy"):
        x = to_model_input(batch_tensor(batch["x"]), manifest)
        scores.append(anomaly_scores(model, x)[SCORE_COLUMN].numpy())
    return np.concatenate(scores) if scores else np.empty(0)


def calibration_card(scores: np.ndarray, contamination: float) -> dict:
    quantiles = np.linspace(0.0, 1.0, 201)
    return {
        "score": SCORE_COLUMN,
        "contamination": contamination,
        "threshold": float(np.quantile(scores, 1.0 - contamination)),
        "val_rows": int(scores.size),
        "val_quantile_levels": quantiles.tolist(),
        "val_quantiles": np.quantile(scores, quantiles).tolist(),
    }


def save_job_config(run: str, config: StrictModel) -> None:
    """Keep a run's (or sweep's) config beside its checkpoints, so `--resume` needs only the id."""
    from pipelines.storage import write_json

    write_json(f"{run}/{JOB_FILE}", config.model_dump(mode="json"))


def load_run_config(root: str, run_id: str, model: type[C] = TrainJobConfig) -> C:
    from pipelines.storage import exists, read_json

    run = run_uri(root, run_id)
    if not exists(f"{run}/{JOB_FILE}"):
        raise TrainingError(f"no run {run_id!r} under {runs_uri(root)} (nothing to resume)")
    return model.model_validate(read_json(f"{run}/{JOB_FILE}"))


def failure_message(err: Exception) -> str:
    failures = getattr(err, "worker_failures", None)
    if failures:
        rank, cause = sorted(failures.items())[0]
        return f"worker {rank} failed: {type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def load_training_data(config: TrainJobConfig, root: str) -> tuple[str, DatasetManifest]:
    """(dataset URI, manifest) of the job's dataset, after checking the shards and that every worker gets rows."""
    from pipelines.storage import check_access

    check_access(root)
    dataset = _resolve_dataset(root, config.dataset)
    manifest = load_manifest(dataset)
    verify_shards(dataset, manifest, checksums=config.verify_checksums)
    if manifest.split_rows["train"] < config.scaling.num_workers or manifest.split_rows["val"] == 0:
        raise TrainingError(f"dataset {dataset} has {manifest.split_rows} rows per split: training needs at least "
                            f"one train row per worker and a non-empty val split")
    return dataset, manifest


def validation_split(dataset: str, manifest: DatasetManifest, config: TrainJobConfig):
    """The val split for the workers: read once and kept in the object store when it fits the
    cache budget, since every worker iterates all of it (a separate read and decode per worker
    otherwise — measured 15-18 s of a 60 s digits run on 2 cores)."""
    from pipelines.train_loop import should_cache

    split = read_split(dataset, manifest, "val")
    return split.materialize() if should_cache(config.train, manifest, config.scaling.num_workers) else split


def build_trainer(config: TrainJobConfig, dataset: str, manifest: DatasetManifest, spec: ModelSpec, run_name: str,
                  storage: Location, callbacks: Sequence = ()):
    """The TorchTrainer of one training run: `train_loop_per_worker` on `config.scaling` workers, checkpoints
    (best kept by validation negative ELBO) under `storage`/`run_name`/; an existing run there is resumed."""
    from ray.train import (
        CheckpointConfig,
        DataConfig,
        FailureConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer

    from pipelines.train_loop import train_loop_per_worker

    resources = {"CPU": config.scaling.cpus_per_worker}
    if config.scaling.use_gpu:
        resources["GPU"] = config.scaling.gpus_per_worker
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"loop": config.train.model_dump(mode="json"), "spec": spec.to_json(),
                           "manifest": manifest.model_dump(mode="json"),
                           "checkpoint_every": config.checkpoint.every_epochs,
                           "threads": config.scaling.threads},
        scaling_config=ScalingConfig(num_workers=config.scaling.num_workers, use_gpu=config.scaling.use_gpu,
                                     resources_per_worker=resources,
                                     placement_strategy=config.scaling.placement_strategy),
        run_config=RunConfig(
            name=run_name, storage_path=storage.path, storage_filesystem=storage.filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoint.keep,
                                               checkpoint_score_attribute="val_neg_elbo",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=config.max_failures),
            callbacks=list(callbacks),
            # Ray's own setting, read by a worker process when it starts (Ray Jobs un-nice drivers the same way)
            worker_runtime_env={"env_vars": {"RAY_worker_niceness": str(config.scaling.worker_niceness)}}),
        datasets={"train": read_split(dataset, manifest, "train"), "val": validation_split(dataset, manifest, config)},
        # val is not split: each worker evaluates every world_size-th row of the whole split
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )


@dataclass
class ExportedModel:
    version: int
    card: dict
    history: list[dict]


def export_model(root: str, config: TrainJobConfig, dataset: str, manifest: DatasetManifest, checkpoint,
                 best_metrics: dict, run_id: str, run: str, progress: Callable[[str], None] = print,
                 training_extra: Optional[dict] = None, latest_checkpoint=None) -> ExportedModel:
    """Calibrate a training checkpoint's anomaly threshold on the validation split (needs Ray) and register it
    as a new version of `config.name`, with a card naming the data, run, config and metrics.

    The card's history is the whole run's, read from `latest_checkpoint` when given (the best
    checkpoint knows only the epochs up to itself)."""
    from pipelines.checkpoints import load_checkpoint, load_checkpoint_state
    from pipelines.registry import register_model

    with checkpoint.as_directory() as directory:
        model, _, state = load_checkpoint(directory)
    if latest_checkpoint is not None:
        with latest_checkpoint.as_directory() as directory:
            state = load_checkpoint_state(directory)
    progress(f"best epoch {best_metrics['epoch']}: val -ELBO {best_metrics['val_neg_elbo']:.3f}; "
             "calibrating the anomaly threshold on the validation split")
    calibration = calibration_card(validation_scores(model, dataset, manifest), config.contamination)
    weights, spec_json = model_to_bytes(model)
    card = {
        "spec": json.loads(spec_json),
        "dataset": {"uri": dataset, "name": manifest.name, "fingerprint": manifest.fingerprint,
                    "manifest": manifest.model_dump(mode="json")},
        "training": {"run_id": run_id, "run_uri": run, "best_epoch": int(best_metrics["epoch"]),
                     "config": config.model_dump(mode="json"), "history": state["history"],
                     "resumed_at_epochs": state.get("resumed_at", []), **(training_extra or {})},
        "metrics": {k: best_metrics[k] for k in ("val_neg_elbo", "val_recon_nll", "val_kl", "epoch")},
        "calibration": calibration,
    }
    return ExportedModel(register_model(root, config.name, weights, card), card, state["history"])


def run_training(config: TrainJobConfig, resume: Optional[str] = None,
                 progress: Callable[[str], None] = print) -> TrainOutcome:
    import ray.train

    from pipelines.ray_runtime import ray_session
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.training import build_training_report
    from pipelines.storage import resolve

    started = time.monotonic()
    root = storage_root(config.storage)
    dataset, manifest = load_training_data(config, root)
    spec = model_spec_for(manifest, config.model)
    run_id = resume or new_run_id(config.name)
    run = run_uri(root, run_id)
    if not resume:
        save_job_config(run, config)
    progress(f"run {run_id}: {manifest.kind} dataset {manifest.name} ({manifest.split_rows['train']} train / "
             f"{manifest.split_rows['val']} val rows), {spec.architecture} VAE latent {spec.latent_dim}, "
             f"{config.scaling.num_workers} worker(s){' on GPU' if config.scaling.use_gpu else ''}")

    with ray_session(config.ray):
        check_resources(config)
        trainer = build_trainer(config, dataset, manifest, spec, run_id, resolve(runs_uri(root)))
        try:
            result = trainer.fit()
        except ray.train.TrainingFailedError as err:
            raise TrainingError(f"training run {run_id} failed: {failure_message(err)}; checkpoints are kept "
                                f"under {run}/ — fix the cause and `vaepipe train --resume {run_id}`") from None
        if not result.best_checkpoints:
            raise TrainingError(f"training run {run_id} reported no checkpoint")
        best_checkpoint, best_metrics = min(result.best_checkpoints, key=lambda item: item[1]["val_neg_elbo"])
        exported = export_model(root, config, dataset, manifest, best_checkpoint, best_metrics, run_id, run, progress,
                                latest_checkpoint=result.checkpoint)

    report_after_job(build_training_report, root, f"{config.name}@{exported.version}", progress=progress)
    return TrainOutcome(run_id=run_id, run_uri=run, model=f"{config.name}@{exported.version}",
                        version=exported.version, best_epoch=int(best_metrics["epoch"]),
                        metrics=exported.card["metrics"], history=exported.history,
                        seconds=time.monotonic() - started)
