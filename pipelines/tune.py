"""`vaepipe tune`: a Ray Tune sweep over latent size, β, learning rate and widths, where every trial is a
real Ray Train run (the same trainer `vaepipe train` builds), ASHA stops poor trials on the validation
negative ELBO at β=1, and the best trial's best checkpoint is calibrated and registered.

Layout under <storage>/runs/<sweep>/: Tune's experiment state, `train/<trial_id>/` (each trial's Train
run and checkpoints), `trials.parquet` + `trials.csv` (rewritten as trials end), `sweep.png`, and the
sweep's config (so `--resume <sweep>` needs nothing else).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pandas as pd

from pipelines.errors import UserError
from pipelines.layout import run_uri, runs_uri, storage_root
from pipelines.train import (READ_CPUS, TrainingError, build_trainer, export_model, failure_message, job_cpus,
                             load_run_config, load_training_data, model_spec_for, new_run_id, save_job_config)
from pipelines.train_config import TrainJobConfig
from pipelines.tune_config import SearchConfig, SearchSpace, SweepJobConfig, SEARCHED_FIELDS, trial_config

# Each trial's Tune actor only builds a TorchTrainer and waits; Tune refuses 0 CPUs (RAY_NOTES.md).
TRIAL_DRIVER_CPUS = 0.01
REGISTERED_FILE = "vaepipe_registered.json"
# Tune saves its experiment state (which trials finished) at most every 10 s by default; a driver killed in
# between would re-run trials that had finished. Every 2 s costs a few small writes.
EXPERIMENT_STATE_PERIOD_S = "2"


class SweepError(UserError, RuntimeError):
    """A sweep that cannot run or produced nothing to register; the message says why and what to do."""


@dataclass
class SweepOutcome:
    sweep_id: str
    sweep_uri: str
    model: str  # name@version
    version: int
    promoted: bool
    best_trial: str
    metrics: dict
    trials: pd.DataFrame
    concurrency: int
    seconds: float


def concurrent_trials(config: SweepJobConfig, cpus: float, gpus: float) -> int:
    """How many trials may run at once: each takes its workers' CPUs, `READ_CPUS` for Ray Data reads and
    `TRIAL_DRIVER_CPUS`, so concurrent trials never starve each other's reads (the hang RAY_NOTES.md describes).
    Raises SweepError when not even one trial fits."""
    scaling = config.scaling
    per_trial = job_cpus(scaling) + TRIAL_DRIVER_CPUS
    fits = math.floor(cpus / per_trial + 1e-9)
    if scaling.use_gpu:
        fits = min(fits, math.floor(gpus / (scaling.num_workers * scaling.gpus_per_worker) + 1e-9))
    if fits < 1:
        raise SweepError(
            f"one trial needs scaling.num_workers ({scaling.num_workers}) × scaling.cpus_per_worker "
            f"({scaling.cpus_per_worker:g}) + {READ_CPUS:g} (Ray Data reads) + {TRIAL_DRIVER_CPUS:g} = "
            f"{per_trial:g} CPUs{f' and {scaling.num_workers * scaling.gpus_per_worker:g} GPUs' if scaling.use_gpu else ''}"
            f", but this Ray cluster has at most {cpus:g} CPUs{f' and {gpus:g} GPUs' if scaling.use_gpu else ''}"
            f"; lower "
            f"scaling.num_workers or scaling.cpus_per_worker, or raise ray.num_cpus")
    return min(config.search.max_concurrent_trials, fits)


def tune_search_space(space: SearchSpace) -> dict:
    from ray import tune

    domains = {}
    for name in SEARCHED_FIELDS:
        dim = getattr(space, name)
        if dim is None:
            continue
        if dim.choices is not None:
            domains[name] = tune.choice(dim.choices)
        elif dim.grid is not None:
            domains[name] = tune.grid_search(dim.grid)
        elif dim.log_uniform is not None:
            domains[name] = tune.loguniform(*dim.log_uniform)
        else:
            domains[name] = tune.uniform(*dim.uniform)
    return domains


def search_algorithm(search: SearchConfig, concurrency: int):
    """The sampler, limited to `concurrency` trials at once (TuneConfig.max_concurrent_trials is ignored
    when a BasicVariantGenerator is passed, so the limit goes to the generator itself)."""
    if search.algorithm == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(max_concurrent=concurrency, random_state=search.seed)
    try:
        import optuna  # noqa: F401  (OptunaSearch imports it lazily and fails later, less clearly)
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise SweepError("search.algorithm 'optuna' needs the optuna package: `pip install optuna` in the "
                         "environment of the Ray cluster, or use search.algorithm: random") from None
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(OptunaSearch(seed=search.seed), max_concurrent=concurrency)


def run_trial(params: dict, template: dict, dataset: str, manifest: dict, train_uri: str) -> None:
    """One trial (runs in a Tune actor): a Ray Train run of the template with the trial's values, whose
    per-epoch metrics reach Tune (and ASHA) through TuneReportCallback; resumes its run if one exists."""
    import ray.train
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipelines.datasets.manifest import DatasetManifest
    from pipelines.storage import resolve

    config = trial_config(TrainJobConfig.model_validate(template), params)
    data_manifest = DatasetManifest.model_validate(manifest)
    trial_id = tune.get_context().get_trial_id()
    trainer = build_trainer(config, dataset, data_manifest, model_spec_for(data_manifest, config.model), trial_id,
                            resolve(train_uri), callbacks=[TuneReportCallback()])
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as err:
        raise TrainingError(f"trial {trial_id} ({params}) failed: {failure_message(err)}") from None


def _best_row(table: pd.DataFrame, sweep_uri: str) -> pd.Series:
    ranked = table[table["best_val_neg_elbo"].notna() & table["best_checkpoint_path"].notna()]
    if ranked.empty:
        raise SweepError(f"no trial of the sweep reported a checkpoint (see the errors in {sweep_uri}/trials.csv)")
    return ranked.loc[ranked["best_val_neg_elbo"].idxmin()]


def _row_params(row: pd.Series) -> dict:
    return {"latent_dim": int(row["latent_dim"]), "beta": float(row["beta"]), "lr": float(row["lr"]),
            "hidden": json.loads(row["hidden"]) if isinstance(row["hidden"], str) else None}


# Ray Tune copies these from the driver's environment into every trial actor's runtime_env
# (ray/tune/execution/class_cache.py), where the runtime-env agent logs them and the dashboard
# shows them (ray#28276). Trials read storage credentials from the cluster's own environment
# instead — the same identity every other Ray worker uses — so the secrets never travel.
_SECRET_ENV_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}


def _stop_tune_copying_credentials() -> None:
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(_SECRET_ENV_VARS)


def run_sweep(config: SweepJobConfig, resume: Optional[str] = None, promote: bool = False,
              progress: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or resume) a sweep to its end, write its results table and figure, and register the trial with
    the lowest validation negative ELBO (β=1) as a new version of `config.name` (promoted with `promote`)."""
    import ray.train
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from pipelines.cluster_capacity import cluster_capacity, scale_up_for, worker_bundles
    from pipelines.ray_runtime import ray_session
    from pipelines.registry import ModelRef, promote as promote_version
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.sweep import build_sweep_report
    from pipelines.storage import exists, read_json, resolve_without_secrets, write_bytes, write_json
    from pipelines.sweep_plots import sweep_figure_png
    from pipelines.sweep_results import METRIC, TrialTable, read_table

    started = time.monotonic()
    root = storage_root(config.storage)
    template = config.trial_template()
    dataset, manifest = load_training_data(template, root)
    sweep_id = resume or new_run_id(f"{config.name}-sweep")
    sweep_uri = run_uri(root, sweep_id)
    runs = resolve_without_secrets(runs_uri(root))
    if resume and exists(f"{sweep_uri}/{REGISTERED_FILE}"):
        raise SweepError(f"sweep {sweep_id} already finished and registered "
                         f"{read_json(f'{sweep_uri}/{REGISTERED_FILE}')['model']}; nothing to resume")
    if not resume:
        save_job_config(sweep_uri, config)

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_STATE_PERIOD_S)
    with ray_session(config.ray):
        # sized on what the cluster has, or can grow to (an autoscaling cluster), then asked for and waited for
        capacity = cluster_capacity()
        scaling = config.scaling
        trial = worker_bundles(scaling.num_workers, scaling.cpus_per_worker, scaling.gpus_per_worker,
                               scaling.use_gpu) + [{"CPU": READ_CPUS}, {"CPU": TRIAL_DRIVER_CPUS}]
        concurrency = max(1, capacity.copies_that_fit(trial, concurrent_trials(
            config, capacity.total("CPU"), capacity.total("GPU"))))  # 0 fits: scale_up_for names what never can
        scale_up_for(capacity, trial * concurrency, config.ray.scale_up_timeout_s, progress,
                     f"{concurrency} trial(s) at once: their workers, Ray Data reads and trial drivers")
        progress(f"sweep {sweep_id}: {config.search.num_samples} sample(s) of {list(tune_search_space(config.search.space))} "
                 f"on {manifest.name}, {concurrency} trial(s) at a time ({config.scaling.num_workers} worker(s) × "
                 f"{config.scaling.cpus_per_worker:g} CPU + {READ_CPUS:g} for reads each), ASHA on {METRIC} "
                 f"(grace {config.search.early_stopping.grace_period} epoch(s), max {config.train.epochs})")
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, template=template.model_dump(mode="json"), dataset=dataset,
                                 manifest=manifest.model_dump(mode="json"), train_uri=f"{sweep_uri}/train"),
            {"cpu": TRIAL_DRIVER_CPUS})
        _stop_tune_copying_credentials()
        if resume:
            progress("resuming: finished trials are kept, unfinished ones continue from their last checkpoint")
            tuner = tune.Tuner.restore(f"{runs.path}/{sweep_id}", trainable, resume_unfinished=True,
                                       resume_errored=False, storage_filesystem=runs.filesystem)
        else:
            early = config.search.early_stopping
            template_values = {name: getattr(getattr(template, section), field)
                               for name, (section, field) in SEARCHED_FIELDS.items()}
            tuner = tune.Tuner(
                trainable,
                param_space=tune_search_space(config.search.space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="min", num_samples=config.search.num_samples,
                    search_alg=search_algorithm(config.search, concurrency),
                    scheduler=ASHAScheduler(time_attr="epoch", max_t=config.train.epochs,
                                            grace_period=early.grace_period,
                                            reduction_factor=early.reduction_factor)),
                run_config=tune.RunConfig(
                    name=sweep_id, storage_path=runs.path, storage_filesystem=runs.filesystem,
                    callbacks=[TrialTable(sweep_uri, config.train.epochs, template_values)]))
        tuner.fit()

        table = read_table(sweep_uri)
        write_bytes(f"{sweep_uri}/sweep.png", sweep_figure_png(table))
        best = _best_row(table, sweep_uri)
        best_config = trial_config(template, _row_params(best))
        best_metrics = {"epoch": int(best["best_epoch"]), "val_neg_elbo": float(best["best_val_neg_elbo"]),
                        "val_recon_nll": float(best["best_val_recon_nll"]), "val_kl": float(best["best_val_kl"])}
        checkpoint = ray.train.Checkpoint(path=best["best_checkpoint_path"], filesystem=runs.filesystem)
        progress(f"best trial {best['trial_id']}: {_row_params(best)}")
        exported = export_model(root, best_config, dataset, manifest, checkpoint, best_metrics, sweep_id,
                                f"{sweep_uri}/train/{best['trial_id']}", progress,
                                training_extra={"sweep": {"id": sweep_id, "uri": sweep_uri,
                                                          "trial_id": best["trial_id"]}})
    model = f"{config.name}@{exported.version}"
    write_json(f"{sweep_uri}/{REGISTERED_FILE}", {"model": model, "trial_id": best["trial_id"]})
    if promote:
        promote_version(root, ModelRef(config.name, str(exported.version)))
    report_after_job(build_sweep_report, root, sweep_id, progress=progress)
    return SweepOutcome(sweep_id=sweep_id, sweep_uri=sweep_uri, model=model, version=exported.version,
                        promoted=promote, best_trial=str(best["trial_id"]), metrics=exported.card["metrics"],
                        trials=table, concurrency=concurrency, seconds=time.monotonic() - started)


def load_sweep_config(root: str, sweep_id: str) -> SweepJobConfig:
    return load_run_config(root, sweep_id, SweepJobConfig)
