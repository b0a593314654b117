"""`vaepipe tune --metric mig`: a sweep on a dataset with factor columns records every trial's MIG and
registers the highest; without factor columns the metric is refused before Ray starts."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.errors import SweepError
from pipelines.training.sweep_config import SweepJobConfig


def sweep_settings(root: str, dataset: str, metric: str = "mig") -> dict:
    return {
        "name": "shapes", "dataset": dataset, "storage": root, "max_failures": 0,
        "model": {"latent_dim": 4, "hidden": [8, 16]},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "objective": "beta_tc"},
        "checkpoint": {"every_epochs": 1, "keep": 1},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5},
        "search": {"metric": metric, "num_samples": 1, "max_concurrent_trials": 2,
                   "space": {"beta": {"grid": [1.0, 8.0]}},
                   # with metric neg_elbo this would stop the second trial after one epoch
                   "early_stopping": {"grace_period": 1, "reduction_factor": 2}},
    }


def test_mig_on_a_dataset_without_factor_columns_is_refused_before_ray_starts(tmp_path):
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.jobs.prepare import prepare_dataset
    from pipelines.jobs.tune import run_sweep

    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=str(tmp_path)))
    with pytest.raises(SweepError, match="digits has no factor columns"):
        run_sweep(SweepJobConfig.model_validate(sweep_settings(str(tmp_path), "digits")))


def test_mig_with_optuna_is_refused():
    settings = sweep_settings("/tmp/x", "shapes")
    settings["search"] = {**settings["search"], "algorithm": "optuna", "space": {"beta": {"choices": [1.0, 8.0]}}}
    with pytest.raises(ValidationError, match="use search.algorithm random"):
        SweepJobConfig.model_validate(settings)


@pytest.fixture(scope="module")
def mig_sweep(s3_store, ray_cluster):
    from pipelines.cli.tune import report_sweep
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.jobs.prepare import prepare_dataset
    from pipelines.jobs.tune import run_sweep

    root = f"s3://{s3_store.bucket}/tune-mig-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="shapes", source="shapes", rows=1000, seed=2, storage=root))
    outcome = run_sweep(SweepJobConfig.model_validate(sweep_settings(root, "shapes")), progress=lambda _: None)
    report_sweep(outcome, root)
    return root, outcome


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_trial_runs_to_the_end_and_the_highest_mig_is_registered(mig_sweep):
    from pipelines.storage.layout import CARD_FILE, model_version_uri
    from pipelines.storage.registry import read_card

    root, outcome = mig_sweep
    trials = outcome.trials
    assert len(trials) == 2 and not trials["stopped_early"].any() and (trials["epochs"] == 2).all()
    assert trials["mig"].notna().all() and ((trials["mig"] >= 0) & (trials["mig"] <= 1)).all()
    best = trials.loc[trials["mig"].idxmax()]
    assert outcome.best_trial == best["trial_id"] and np.isclose(outcome.best_mig, best["mig"])
    card = read_card(f"{model_version_uri(root, 'shapes', outcome.version)}/{CARD_FILE}")
    assert card["training"]["sweep"]["metric"] == "mig" and np.isclose(card["training"]["sweep"]["mig"], best["mig"])
    assert card["training"]["config"]["train"]["beta"] == best["beta"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sweep_report_shows_mig_against_beta(mig_sweep, tmp_path):
    from pipelines.reports.page import write_report
    from pipelines.reports.sweep import build_sweep_report
    from tests.pipelines.reports.report_checks import check_report

    root, outcome = mig_sweep
    page = check_report(write_report(root, build_sweep_report(root, outcome.sweep_id)), tmp_path,
                        {"sweep.png"}).read_text()
    assert "best MIG" in page and "MIG of each trial" in page
