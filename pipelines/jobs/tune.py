"""`vaepipe tune`: a Ray Tune sweep over latent size, β, learning rate and widths, where every trial is a
real Ray Train run (the same trainer `vaepipe train` builds), ASHA stops poor trials on the validation
negative ELBO at β=1, and the best trial's best checkpoint is calibrated and registered.

Layout under <storage>/runs/<sweep>/ (`storage.layout`): Tune's experiment state, `train/<trial_id>/` (each
trial's Train run and checkpoints), `trials.parquet` + `trials.csv` (rewritten as trials end), and the
sweep's config (so `--resume <sweep>` needs nothing else). The registered trial is the one `ResultGrid`
reports best; its config is the trial's own `result.config`.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from pipelines.errors import SweepError
from pipelines.runtime import ray_private
from pipelines.runtime.cluster_capacity import READ_CPUS
from pipelines.storage.layout import REGISTERED_FILE, run_uri, runs_uri, storage_root, sweep_trials_uri
from pipelines.training.budget import plan_budget, with_budget
from pipelines.training.registration import export_model, mirror_registration
from pipelines.training.runs import load_run_config, load_training_data, new_run_id, save_job_config
from pipelines.training.sweep_config import SEARCHED_FIELDS, SearchConfig, SearchSpace, SweepJobConfig, trial_config
from pipelines.training.trainer import job_cpus
from pipelines.training.trial import run_trial

# Each trial's Tune actor only builds a Ray Train trainer and waits; Tune refuses 0 CPUs (docs/design.md).
TRIAL_DRIVER_CPUS = 0.01
# Tune saves its experiment state (which trials finished) at most every 10 s by default; a driver killed in
# between would re-run trials that had finished. Every 2 s costs a few small writes.
EXPERIMENT_STATE_PERIOD_S = "2"


@dataclass
class SweepOutcome:
    sweep_id: str
    sweep_uri: str
    model: str  # name@version
    name: str
    version: int
    promoted: bool
    best_trial: str
    metrics: dict
    trials: pd.DataFrame
    concurrency: int
    seconds: float
    metric: str = "neg_elbo"              # what the registered trial was selected on (search.metric)
    best_mig: Optional[float] = None      # its MIG on the validation rows, on datasets with factor columns
    tracked: Optional[Any] = None  # the sweep's parent MLflow run (`runtime.tracking.TrackedRun`), when tracked


def concurrent_trials(config: SweepJobConfig, cpus: float, gpus: float) -> int:
    """How many trials may run at once: each takes its workers' CPUs, `READ_CPUS` for Ray Data reads and
    `TRIAL_DRIVER_CPUS`, so concurrent trials never starve each other's reads (docs/design.md, "Ray on small machines").
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


# what a trial's nested MLflow run gets of each of its results
TRIAL_METRICS = ("epoch", "beta", "train_loss", "train_neg_elbo", "val_neg_elbo", "val_recon_nll", "val_kl",
                 "samples_per_s", "epoch_seconds")


def trial_lines(max_epochs: int, say: Callable[[str], None]):
    """A Tune callback printing one line per trial epoch and one when a trial ends (the workers do not print:
    runtime.ray_console)."""
    from ray.tune import Callback

    class Lines(Callback):
        # Tune pickles its callbacks with the experiment state (for `--resume`), and `say` need not pickle (a
        # caller's closure, or a `print` something replaced): a restored sweep says its lines through the
        # `vaepipe` logger, which is where `cli.console.progress` writes them too.
        def __init__(self, say_to: Callable[[str], None]):  # an argument, not a closure cell the class carries
            self.say = say_to

        def __getstate__(self):
            return {}

        def __setstate__(self, state):
            self.say = logging.getLogger("vaepipe").info

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "epoch" in result and "val_neg_elbo" in result:
                self.say(f"trial {trial.trial_id} epoch {int(result['epoch'])}/{max_epochs}  val -ELBO "
                         f"{result['val_neg_elbo']:.3f} (recon {result.get('val_recon_nll', math.nan):.3f}, "
                         f"KL {result.get('val_kl', math.nan):.3f})")

        def on_trial_complete(self, iteration, trials, trial, **info):
            epochs = int((trial.last_result or {}).get("epoch", 0))
            early = ", stopped early by ASHA" if epochs < max_epochs else ""
            self.say(f"trial {trial.trial_id} finished after {epochs} epoch(s){early}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.say(f"trial {trial.trial_id} failed (see errors in the sweep's trials.csv)")

    return Lines(say)


@dataclass
class BestTrial:
    trial_id: str
    params: dict        # the trial's own config: its searched values (`Result.config`)
    metrics: dict       # the best epoch's validation metrics
    checkpoint_path: str
    mig: Optional[float] = None  # MIG of that checkpoint on the validation rows (datasets with factor columns)


def trial_candidates(grid) -> list:
    """(Tune `Result`, the metrics row of its best checkpointed epoch by validation −ELBO) of every trial that
    reported a checkpoint and never diverged — even a checkpoint from before it diverged is never registered."""
    from pipelines.training.sweep_table import METRIC

    candidates = []
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or "checkpoint_path" not in frame:
            continue
        if "diverged_at_epoch" in frame and frame["diverged_at_epoch"].notna().any():
            continue
        usable = frame[frame["checkpoint_path"].notna() & np.isfinite(frame[METRIC].astype(float))]
        if not usable.empty:
            candidates.append((result, usable.loc[usable[METRIC].astype(float).idxmin()]))
    return candidates


def best_trial(grid, sweep_uri: str, metric: str = "neg_elbo", mig_by_trial: Optional[dict] = None) -> BestTrial:
    """From Tune's `ResultGrid`, among `trial_candidates`: the trial whose best checkpointed epoch has the lowest
    validation −ELBO (at β = 1, so trials with different β compare), over every epoch of every trial
    (`scope="all"`); with `metric` "mig", the trial whose that checkpoint has the highest MIG (`mig_by_trial`)."""
    from pipelines.training.sweep_table import METRIC

    mig_by_trial = mig_by_trial or {}
    candidates = trial_candidates(grid)
    if not candidates:
        raise SweepError(f"no trial of the sweep reported a checkpoint without diverging (see the errors and "
                         f"diverged_at_epoch in {sweep_uri}/trials.csv; diverged trials need a lower lr)")
    if metric == "mig":
        measured = [c for c in candidates if np.isfinite(mig_by_trial.get(str(c[1]["trial_id"]), np.nan))]
        if not measured:
            raise SweepError(f"no trial's checkpoint has a finite MIG on the validation rows (see the mig column of "
                             f"{sweep_uri}/trials.csv): their latent means are constant or not finite")
        result, row = max(measured, key=lambda candidate: mig_by_trial[str(candidate[1]["trial_id"])])
    else:
        result, row = min(candidates, key=lambda candidate: float(candidate[1][METRIC]))
    metrics = {"epoch": int(row["epoch"]), **{key: float(row[key]) for key in ("val_neg_elbo", "val_recon_nll",
                                                                                 "val_kl")}}
    params = {name: result.config[name] for name in SEARCHED_FIELDS if name in result.config}
    return BestTrial(str(row["trial_id"]), params, metrics, str(row["checkpoint_path"]),
                     mig_by_trial.get(str(row["trial_id"])))


def measure_trials_mig(grid, dataset: str, manifest, filesystem, progress: Callable[[str], None]) -> dict[str, float]:
    """MIG of each candidate trial's best checkpoint (by validation −ELBO) on the dataset's validation rows, by
    trial id; empty when the dataset has no factor columns."""
    import ray.train

    from pipelines.training.checkpoint_mig import checkpoint_mig, validation_factor_rows

    if not manifest.factor_columns:
        return {}
    rows = validation_factor_rows(dataset, manifest)
    progress(f"measuring each trial's MIG on {len(rows.x)} validation rows (factors {', '.join(rows.factors.columns)})")
    return {str(row["trial_id"]): checkpoint_mig(ray.train.Checkpoint(path=str(row["checkpoint_path"]),
                                                                      filesystem=filesystem), rows)
            for _, row in trial_candidates(grid)}


# Ray Tune copies these from the driver's environment into every trial actor (ray_private.stop_tune_propagating);
# trials read storage credentials from the cluster's own environment, the identity every Ray worker uses.
_SECRET_ENV_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}


def run_sweep(config: SweepJobConfig, resume: Optional[str] = None, promote: bool = False,
              progress: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or resume) a sweep to its end, write its results table and figure, and register the trial with
    the lowest validation negative ELBO (β=1) as a new version of `config.name` (promoted with `promote`)."""
    from pipelines.runtime import ray_console
    from pipelines.runtime.cluster_capacity import cluster_capacity, scale_up_for, worker_bundles
    from pipelines.runtime.ray_session import ray_session
    from pipelines.runtime.tracking import after_the_job, sweep_tracking_callback, tracked_run, tracking_for
    from pipelines.storage.objects import exists, read_json, resolve_without_secrets, write_json

    started = time.monotonic()
    tracking = tracking_for(config.tracking, config.name)  # before anything starts: MLflow missing is one line
    root = storage_root(config.storage)
    dataset, manifest = load_training_data(config, root)
    # every trial's auto budget from the template's worker count (a searched batch_size is each trial's own)
    config = with_budget(config, plan_budget(config, manifest, config.scaling.num_workers, sweep=True))
    template = config.trial_template()
    if config.search.metric == "mig" and not manifest.factor_columns:
        raise SweepError(f"search.metric mig selects on the factors a dataset records, and {manifest.name} has no "
                         "factor columns: prepare one that does (vaepipe prepare shapes | factor_table), or use "
                         "search.metric neg_elbo")
    sweep_id = resume or new_run_id(f"{config.name}-sweep")
    sweep_uri = run_uri(root, sweep_id)
    runs = resolve_without_secrets(runs_uri(root))
    if resume and exists(f"{sweep_uri}/{REGISTERED_FILE}"):
        raise SweepError(f"sweep {sweep_id} already finished and registered "
                         f"{read_json(f'{sweep_uri}/{REGISTERED_FILE}')['model']}; nothing to resume")
    save_job_config(sweep_uri, config)

    with tracked_run(tracking, sweep_id, config.model_dump(mode="json"), {"vaepipe.sweep_uri": sweep_uri},
                     say=progress) as tracked, \
            ray_session(config.ray, {"TUNE_GLOBAL_CHECKPOINT_S": EXPERIMENT_STATE_PERIOD_S}):
        import ray.train
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        from pipelines.training.sweep_table import METRIC, TrialTable, read_table, with_mig_column

        # sized on what the cluster has, or can grow to (an autoscaling cluster), then asked for and waited for
        capacity = cluster_capacity()
        scaling = config.scaling
        trial = worker_bundles(scaling.num_workers, scaling.cpus_per_worker, scaling.gpus_per_worker,
                               scaling.use_gpu) + [{"CPU": READ_CPUS}, {"CPU": TRIAL_DRIVER_CPUS}]
        concurrency = max(1, capacity.copies_that_fit(trial, concurrent_trials(
            config, capacity.total("CPU"), capacity.total("GPU"))))  # 0 fits: scale_up_for names what never can
        scale_up_for(capacity, trial * concurrency, config.ray.scale_up_timeout_s, progress,
                     f"{concurrency} trial(s) at once: their workers, Ray Data reads and trial drivers")
        early = config.search.early_stopping
        stopping = (f"ASHA on {METRIC} (grace {early.grace_period} epoch(s), max {config.train.epochs})"
                    if config.search.metric == "neg_elbo" else
                    f"every trial runs its {config.train.epochs} epochs (ASHA's signal would be −ELBO, which "
                    "favours low β), then the highest MIG on the validation rows is registered")
        progress(f"sweep {sweep_id}: {config.search.num_samples} sample(s) of {list(tune_search_space(config.search.space))} "
                 f"on {manifest.name}, {concurrency} trial(s) at a time ({config.scaling.num_workers} worker(s) × "
                 f"{config.scaling.cpus_per_worker:g} CPU + {READ_CPUS:g} for reads each), {stopping}")
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, template=template.model_dump(mode="json"), dataset=dataset,
                                 manifest=manifest.model_dump(mode="json"), train_uri=sweep_trials_uri(sweep_uri)),
            {"cpu": TRIAL_DRIVER_CPUS})
        ray_private.stop_tune_propagating(_SECRET_ENV_VARS)
        if resume:
            progress("resuming: finished trials are kept, unfinished ones continue from their last checkpoint")
            tuner = tune.Tuner.restore(f"{runs.path}/{sweep_id}", trainable, resume_unfinished=True,
                                       resume_errored=False, storage_filesystem=runs.filesystem)
        else:
            callbacks = [TrialTable(sweep_uri, config.train.epochs, config.template_values()),
                         trial_lines(config.train.epochs, progress)]
            if tracked is not None:
                callbacks.append(sweep_tracking_callback(tracked, TRIAL_METRICS))
            tuner = tune.Tuner(
                trainable,
                param_space=tune_search_space(config.search.space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="min", num_samples=config.search.num_samples,
                    search_alg=search_algorithm(config.search, concurrency),
                    scheduler=ASHAScheduler(time_attr="epoch", max_t=config.train.epochs,
                                            grace_period=early.grace_period,
                                            reduction_factor=early.reduction_factor)
                    if config.search.metric == "neg_elbo" else None),
                run_config=tune.RunConfig(
                    name=sweep_id, storage_path=runs.path, storage_filesystem=runs.filesystem,
                    # Tune's own status tables only with `vaepipe --verbose`: TrialLines says what happens
                    verbose=1 if ray_console.is_verbose() else 0, callbacks=callbacks))
        grid = tuner.fit()

        mig_by_trial = measure_trials_mig(grid, dataset, manifest, runs.filesystem, progress)
        table = with_mig_column(sweep_uri, read_table(sweep_uri), mig_by_trial) if mig_by_trial else read_table(sweep_uri)
        best = best_trial(grid, sweep_uri, config.search.metric, mig_by_trial)
        checkpoint = ray.train.Checkpoint(path=best.checkpoint_path, filesystem=runs.filesystem)
        progress(f"best trial {best.trial_id}: {best.params}"
                 + (f" (MIG {best.mig:.3f} on the validation rows)" if best.mig is not None else ""))
        selection = {"metric": config.search.metric, **({"mig": best.mig} if best.mig is not None else {})}
        exported = export_model(root, trial_config(template, best.params), dataset, manifest, checkpoint, best.metrics,
                                sweep_id, f"{sweep_trials_uri(sweep_uri)}/{best.trial_id}", progress,
                                training_extra={"sweep": {"id": sweep_id, "uri": sweep_uri, "trial_id": best.trial_id,
                                                          **selection}},
                                tracking=tracked.card_entry() if tracked is not None else None)
        if tracked is not None:
            tracked.set_tags({"vaepipe.best_trial": best.trial_id})
            after_the_job("the registered model was not mirrored into MLflow",
                          lambda: mirror_registration(tracked, root, config.name, exported, progress))
    model = f"{config.name}@{exported.version}"
    write_json(f"{sweep_uri}/{REGISTERED_FILE}", {"model": model, "trial_id": best.trial_id})
    if promote:
        from pipelines.jobs.promote import promote_model

        promote_model(model, root, why=f"best trial {best.trial_id} of sweep {sweep_id}", progress=progress)
    return SweepOutcome(sweep_id=sweep_id, sweep_uri=sweep_uri, model=model, name=config.name,
                        version=exported.version, promoted=promote, best_trial=best.trial_id,
                        metrics=exported.card["metrics"], trials=table, concurrency=concurrency,
                        seconds=time.monotonic() - started, metric=config.search.metric, best_mig=best.mig,
                        tracked=tracked)


def load_sweep_config(root: str, sweep_id: str) -> SweepJobConfig:
    return load_run_config(root, sweep_id, SweepJobConfig)
