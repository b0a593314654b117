"""`vaepipe train`: a prepared dataset trains a VAE — in this process or on Ray Train workers fed by Ray Data
(`runtime.engine`) — and the best checkpoint is calibrated on the validation split and registered as a new
model version.

The pieces are `pipelines.training`'s: the trainer (workers, datasets, checkpoints) or the in-process run,
the loop both run, the run on storage, and registration. This module runs them in order.
"""
from __future__ import annotations

from contextlib import ExitStack
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import TrainingError
from pipelines.runtime.engine import EngineChoice, EngineError, choose_engine
from pipelines.storage.layout import DIVERGED_FILE, run_uri, runs_uri, storage_root
from pipelines.training.budget import early_best_warning, plan_budget, with_budget
from pipelines.training.config import TrainJobConfig
from pipelines.training.worker_config import should_cache
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
    epochs: int  # the run's (train.epochs, auto resolved)
    metrics: dict
    history: list[dict]
    seconds: float
    engine: str = "ray"            # where it ran (`runtime.engine`): ray or local
    tracked: Optional[Any] = None  # the run's MLflow run (`runtime.tracking.TrackedRun`), when tracked


def local_blocker(config: TrainJobConfig, manifest: DatasetManifest) -> Optional[str]:
    """Why this training job cannot run in one process, or None when it can (its rows fit in memory)."""
    if config.train.data_loading == "stream":
        return "train.data_loading is stream (batches streamed from storage by Ray Data every epoch)"
    if not should_cache(config.train, manifest, 1):
        return f"the training rows do not fit in train.cache_limit_mb ({config.train.cache_limit_mb} MB) in one process"
    return None


def training_engine(config: TrainJobConfig, manifest: DatasetManifest, run: str, resume: Optional[str]) -> EngineChoice:
    """The engine of this run; a resumed run continues on the engine that wrote its checkpoints (Ray Train does
    not read a local run's checkpoints, nor the local engine Ray Train's)."""
    from pipelines.training.in_process import LocalRun

    rows = manifest.split_rows["train"] + manifest.split_rows["val"]
    if resume is None:
        return choose_engine(config.engine, rows, config.ray.address, local_blocker(config, manifest))
    written = "local" if LocalRun(run, config.checkpoint.keep).checkpoints() else "ray"
    if config.engine not in ("auto", written):
        raise EngineError(f"run {resume} has checkpoints of engine {written}; resume it with --engine {written} "
                          f"(or auto)")
    if written == "local":
        return choose_engine("local", rows, config.ray.address, local_blocker(config, manifest))
    return EngineChoice("ray", f"run {resume} was trained on Ray" if config.engine == "auto" else "asked for")


def run_training(config: TrainJobConfig, resume: Optional[str] = None,
                 progress: Callable[[str], None] = print) -> TrainOutcome:
    """Train (or with `resume`, continue the run of that id) and register the best checkpoint."""
    from pipelines.runtime.tracking import after_the_job, tracked_run, tracking_for

    started = time.monotonic()
    tracking = tracking_for(config.tracking, config.name)  # before anything starts: MLflow missing is one line
    root = storage_root(config.storage)
    dataset, manifest = load_training_data(config, root)
    spec = model_spec_for(manifest, config.model)
    run_id = resume or new_run_id(config.name)
    run = run_uri(root, run_id)
    choice = training_engine(config, manifest, run, resume)
    processes = 1 if choice.engine == "local" else config.scaling.num_workers
    budget = plan_budget(config, manifest, processes)
    config = with_budget(config, budget)
    with ExitStack() as ray_up:
        if choice.engine == "ray":
            # Ray first: workers the cluster can never hold are refused before the run leaves any record
            from pipelines.runtime.ray_session import ray_session

            ray_up.enter_context(ray_session(config.ray))
            check_resources(config)
        # a resumed run keeps the overrides it was resumed with (epochs, lr, ...): the stored config is what ran
        save_job_config(run, config)
        if choice.engine == "local":
            from pipelines.training.in_process import describe_in_process

            layout = describe_in_process(config)
        else:
            layout = f"{config.scaling.num_workers} worker(s){' on GPU' if config.scaling.use_gpu else ''}"
        progress(f"run {run_id}{' (resumed from its last checkpoint)' if resume else ''}: {manifest.kind} dataset "
                 f"{manifest.name} ({manifest.split_rows['train']} train / {manifest.split_rows['val']} val rows), "
                 f"{spec.architecture} VAE latent {spec.latent_dim}, {layout}")
        progress(choice.line)
        progress(budget.line(processes))
        train = train_in_process if choice.engine == "local" else train_on_ray
        with tracked_run(tracking, run_id, config.model_dump(mode="json"), {"vaepipe.run_uri": run},
                         say=progress) as tracked:
            best_metrics, exported = train(config, root, dataset, manifest, spec, run_id, run, progress, tracked)
            warning = early_best_warning(int(best_metrics["epoch"]), config.train.epochs)
            if warning:
                progress(warning)
            if tracked is not None:
                after_the_job("the registered model was not mirrored into MLflow",
                              lambda: mirror_registration(tracked, root, config.name, exported, progress))
        return TrainOutcome(run_id=run_id, run_uri=run, model=f"{config.name}@{exported.version}", name=config.name,
                            version=exported.version, best_epoch=int(best_metrics["epoch"]), epochs=config.train.epochs,
                            metrics=exported.card["metrics"], history=exported.history,
                            seconds=time.monotonic() - started, engine=choice.engine, tracked=tracked)


def train_on_ray(config: TrainJobConfig, root: str, dataset: str, manifest: DatasetManifest, spec, run_id: str,
                 run: str, progress: Callable[[str], None], tracked=None):
    """Ray Train workers fed by Ray Data, in the Ray session run_training opened (and checked the resources
    in); (best metrics, exported model)."""
    import ray.train

    from pipelines.runtime.job_progress import progress_board
    from pipelines.runtime.tracking import train_metrics_callback
    from pipelines.storage.objects import delete_file, resolve
    from pipelines.training.epoch_console import epoch_console

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
    return register_best(config, root, dataset, manifest, run_id, run, result, progress, tracked)


def train_in_process(config: TrainJobConfig, root: str, dataset: str, manifest: DatasetManifest, spec, run_id: str,
                     run: str, progress: Callable[[str], None], tracked=None):
    """The same loop in this process over the splits read with pyarrow; (best metrics, exported model)."""
    from pipelines.runtime.tracking import epoch_metrics_logger
    from pipelines.storage.objects import delete_file
    from pipelines.training import in_process

    delete_file(f"{run}/{DIVERGED_FILE}")  # a resumed run is judged by how it goes now
    x_train = in_process.read_split_tensor(dataset, manifest, "train")
    x_val = in_process.read_split_tensor(dataset, manifest, "val")
    result = in_process.train_in_process(config, manifest, spec, x_train, x_val, run, progress,
                                         epoch_metrics_logger(tracked) if tracked is not None else None)
    return register_best(config, root, dataset, manifest, run_id, run, result, progress, tracked)


def register_best(config: TrainJobConfig, root: str, dataset: str, manifest: DatasetManifest, run_id: str, run: str,
                  result, progress: Callable[[str], None], tracked=None):
    """Register the best checkpoint of a finished run (Ray Train's `Result` or `in_process.InProcessResult`);
    (best metrics, exported model)."""
    check_not_diverged(run, config, run_id)
    if not result.best_checkpoints:
        raise TrainingError(f"training run {run_id} reported no checkpoint")
    best_checkpoint, best_metrics = min(result.best_checkpoints, key=lambda item: item[1]["val_neg_elbo"])
    exported = export_model(root, config, dataset, manifest, best_checkpoint, best_metrics, run_id, run, progress,
                            latest_checkpoint=result.checkpoint,
                            tracking=tracked.card_entry() if tracked is not None else None)
    return best_metrics, exported
