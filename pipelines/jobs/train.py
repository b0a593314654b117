"""`vaepipe train`: Ray Data streams a prepared dataset into Ray Train workers; the best checkpoint is
calibrated on the validation split and registered as a new model version.

The pieces are `pipelines.training`'s: the trainer (workers, datasets, checkpoints), the per-worker
loop, the run on storage, and registration. This module runs them in order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pipelines.errors import TrainingError
from pipelines.storage.layout import DIVERGED_FILE, run_uri, runs_uri, storage_root
from pipelines.training.config import TrainJobConfig
from pipelines.training.model_spec import model_spec_for
from pipelines.training.registration import export_model, mirror_registration
from pipelines.training.runs import check_not_diverged, load_training_data, new_run_id, save_job_config
from pipelines.training.trainer import build_trainer, check_resources, failure_message


@dataclass
class TrainOutcome:
    run_id: str
    run_uri: str
    model: str  # name@version
    name: str
    version: int
    best_epoch: int
    metrics: dict
    history: list[dict]
    seconds: float
    tracked: Optional[Any] = None  # the run's MLflow run (`runtime.tracking.TrackedRun`), when tracked


def run_training(config: TrainJobConfig, resume: Optional[str] = None,
                 progress: Callable[[str], None] = print) -> TrainOutcome:
    """Train (or with `resume`, continue the run of that id) and register the best checkpoint."""
    from pipelines.runtime.job_progress import progress_board
    from pipelines.runtime.ray_session import ray_session
    from pipelines.runtime.tracking import after_the_job, tracked_run, tracking_for, train_metrics_callback
    from pipelines.storage.objects import delete_file, resolve
    from pipelines.training.epoch_console import epoch_console

    started = time.monotonic()
    tracking = tracking_for(config.tracking, config.name)  # before anything starts: MLflow missing is one line
    root = storage_root(config.storage)
    dataset, manifest = load_training_data(config, root)
    spec = model_spec_for(manifest, config.model)
    run_id = resume or new_run_id(config.name)
    run = run_uri(root, run_id)
    # a resumed run keeps the overrides it was resumed with (epochs, lr, ...): the stored config is what ran
    save_job_config(run, config)
    progress(f"run {run_id}{' (resumed from its last checkpoint)' if resume else ''}: {manifest.kind} dataset "
             f"{manifest.name} ({manifest.split_rows['train']} train / {manifest.split_rows['val']} val rows), "
             f"{spec.architecture} VAE latent {spec.latent_dim}, "
             f"{config.scaling.num_workers} worker(s){' on GPU' if config.scaling.use_gpu else ''}")

    with tracked_run(tracking, run_id, config.model_dump(mode="json"), {"vaepipe.run_uri": run},
                     say=progress) as tracked, ray_session(config.ray):
        import ray.train

        check_resources(config)
        delete_file(f"{run}/{DIVERGED_FILE}")  # a resumed run is judged by how it goes now
        with progress_board(progress) as board:
            callbacks = [epoch_console(board, config.train.epochs)]
            if tracked is not None:
                callbacks.append(train_metrics_callback(tracked))
            trainer = build_trainer(config, dataset, manifest, spec, run_id, resolve(runs_uri(root)), callbacks)
            try:
                result = trainer.fit()
            except ray.train.TrainingFailedError as err:
                raise TrainingError(f"training run {run_id} failed: {failure_message(err)}; checkpoints are kept "
                                    f"under {run}/ — fix the cause and `vaepipe train --resume {run_id}`") from None
        check_not_diverged(run, config, run_id)
        if not result.best_checkpoints:
            raise TrainingError(f"training run {run_id} reported no checkpoint")
        best_checkpoint, best_metrics = min(result.best_checkpoints, key=lambda item: item[1]["val_neg_elbo"])
        exported = export_model(root, config, dataset, manifest, best_checkpoint, best_metrics, run_id, run, progress,
                                latest_checkpoint=result.checkpoint,
                                tracking=tracked.card_entry() if tracked is not None else None)
        if tracked is not None:
            after_the_job("the registered model was not mirrored into MLflow",
                          lambda: mirror_registration(tracked, root, config.name, exported, progress))

    return TrainOutcome(run_id=run_id, run_uri=run, model=f"{config.name}@{exported.version}", name=config.name,
                        version=exported.version, best_epoch=int(best_metrics["epoch"]),
                        metrics=exported.card["metrics"], history=exported.history,
                        seconds=time.monotonic() - started, tracked=tracked)

