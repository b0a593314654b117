"""`vaepipe tune`: Ray Tune over Ray Train trials on digits, on the session's local Ray and SeaweedFS.

The budget is built so that ASHA must stop a trial: 4 epochs, grace 1, reduction factor 2, and a grid
where half the trials have a learning rate (1e-6) too small to learn anything in 4 epochs. The first
trials launched are good ones, so a bad trial always reaches a rung after a good one and is cut.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from pipelines.training.sweep_config import SweepJobConfig
from tests.ray_processes import TorchInProcesses

REPO = Path(__file__).resolve().parents[3]
GOOD_LR, BAD_LR = 0.005, 1e-6


def sweep_settings(prefix: str, name: str) -> dict:
    return {
        "name": name, "dataset": "digits", "storage": prefix, "max_failures": 0,
        "train": {"epochs": 4, "batch_size": 64, "lr": GOOD_LR, "kl_warmup_epochs": 0},
        "checkpoint": {"every_epochs": 1, "keep": 1},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5},
        "search": {"num_samples": 1, "max_concurrent_trials": 2,
                   "space": {"lr": {"grid": [GOOD_LR, BAD_LR]}, "latent_dim": {"grid": [4, 16]}},
                   "early_stopping": {"grace_period": 1, "reduction_factor": 2}},
    }


@pytest.fixture(scope="module")
def digits_root(s3_store, ray_cluster) -> str:
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    root = f"s3://{s3_store.bucket}/test-tune-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    return root


@pytest.fixture(scope="module")
def sweep_and_trial_actors(digits_root):
    from pipelines.cli.tune import report_sweep
    from pipelines.jobs.tune import run_sweep

    with TorchInProcesses("ImplicitFunc") as trial_actors:  # Tune's actor of a function trial
        outcome = run_sweep(SweepJobConfig.model_validate(sweep_settings(digits_root, "digits")), promote=True)
    report_sweep(outcome, digits_root)  # what `vaepipe tune` leaves beside the sweep
    print(f"sweep wall time {outcome.seconds:.0f} s\n{outcome.trials.to_string()}")  # shown with pytest -s
    return outcome, trial_actors.loaded


@pytest.fixture(scope="module")
def sweep(sweep_and_trial_actors):
    return sweep_and_trial_actors[0]


def test_no_trials_actor_imports_torch(sweep_and_trial_actors):
    # a trial builds and fits a trainer; the workers train (training.trial, docs/design.md)
    outcome, torch_in_actor = sweep_and_trial_actors
    assert len(torch_in_actor) >= 2 and not any(torch_in_actor.values()), torch_in_actor


# --- the resource rule and config errors (no Ray) ---------------------------


def test_concurrency_is_what_fits_the_cluster_cpus():
    from pipelines.jobs.tune import concurrent_trials

    config = SweepJobConfig.model_validate({**sweep_settings("/tmp/x", "d"), "search": {
        **sweep_settings("/tmp/x", "d")["search"], "max_concurrent_trials": 8}})
    # a trial: 1 worker × 0.5 CPU + 1 CPU for reads + 0.01 for the trial actor = 1.51 CPUs
    assert concurrent_trials(config, cpus=4, gpus=0) == 2
    assert concurrent_trials(config, cpus=16, gpus=0) == 8


def test_a_trial_that_cannot_fit_is_refused_with_the_fields_to_change():
    from pipelines.jobs.tune import SweepError, concurrent_trials

    config = SweepJobConfig.model_validate(sweep_settings("/tmp/x", "d"))
    with pytest.raises(SweepError, match="scaling.cpus_per_worker"):
        concurrent_trials(config, cpus=1.5, gpus=0)


def test_optuna_without_the_package_is_a_clear_error(monkeypatch):
    import sys

    # the package missing, whether or not it is installed here (None in sys.modules makes import fail)
    monkeypatch.setitem(sys.modules, "optuna", None)
    from pipelines.jobs.tune import SweepError, search_algorithm
    from pipelines.training.sweep_config import SearchConfig

    with pytest.raises(SweepError, match="pip install optuna"):
        search_algorithm(SearchConfig(algorithm="optuna"), concurrency=2)


def test_checkpoints_every_epoch_are_required():
    from pipelines.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="checkpoint.every_epochs"):
        build_config(SweepJobConfig, sweep_settings("/tmp/x", "d"), ["checkpoint.every_epochs=2"])


# --- a whole sweep -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_trial_has_a_finished_row_in_the_results_table(sweep):
    from pipelines.training.sweep_table import read_table

    table = read_table(sweep.sweep_uri)
    assert len(table) == 4
    assert set(table["status"]) == {"TERMINATED"}
    assert sorted(zip(table["lr"], table["latent_dim"])) == sorted(
        (lr, dim) for lr in (GOOD_LR, BAD_LR) for dim in (4, 16))
    assert table["best_val_neg_elbo"].notna().all()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_asha_stops_a_trial_with_a_useless_learning_rate_early(sweep):
    stopped = sweep.trials[sweep.trials["stopped_early"]]
    assert len(stopped) >= 1
    assert (stopped["epochs"] < 4).all()
    assert BAD_LR in set(stopped["lr"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_registered_and_promoted_model_is_the_trial_with_the_lowest_validation_nll(sweep, digits_root):
    from pipelines.storage.registry import load_registered

    table = sweep.trials
    best = table.loc[table["best_val_neg_elbo"].idxmin()]
    _, card = load_registered(digits_root, "digits@PROMOTED")
    assert card["training"]["sweep"]["trial_id"] == best["trial_id"]
    assert card["metrics"]["val_neg_elbo"] == pytest.approx(best["best_val_neg_elbo"])
    assert card["spec"]["latent_dim"] == best["latent_dim"]
    assert card["training"]["config"]["train"]["lr"] == best["lr"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sweep_figure_is_a_png(sweep):
    from pipelines.storage.objects import read_bytes

    assert read_bytes(f"{sweep.sweep_uri}/sweep.png").startswith(b"\x89PNG")


@pytest.mark.reliability("process fault")
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sweep_ends_with_its_report(sweep, digits_root, tmp_path):
    from pipelines.storage.layout import REPORT_INDEX as INDEX, report_uri
    from tests.pipelines.reports.report_checks import check_report

    check_report(f"{report_uri(digits_root, sweep.sweep_id)}/{INDEX}", tmp_path, {"sweep.png"})


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_killed_sweep_resumes_without_repeating_finished_trials(digits_root, tmp_path):
    import ray

    from pipelines.storage.layout import runs_uri
    from pipelines.storage.objects import list_files
    from pipelines.storage.layout import SWEEP_TABLE as TABLE_FILE
    from pipelines.training.sweep_table import read_table
    from pipelines.jobs.tune import load_sweep_config, run_sweep

    # four good trials of 2 epochs, one at a time: the kill comes after the first finished, before the last. With
    # three, on a fast host (a trial ending every ~8 s) all had finished by the kill: the table said a trial had
    # ended only when the next one did (fixed in sweep_table.TrialTable.on_trial_complete)
    resumed_dims = (2, 4, 8, 16)
    settings = sweep_settings(digits_root, "digits-resumed")
    settings["train"]["epochs"] = 2
    settings["search"].update(max_concurrent_trials=1, space={"latent_dim": {"grid": list(resumed_dims)}})
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "tune", str(config_file)], cwd=REPO,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        before = None
        deadline = time.monotonic() + 600
        while before is None and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(2)
            tables = [f.uri for f in list_files(runs_uri(digits_root)) if f.uri.endswith(f"/{TABLE_FILE}")
                      and "digits-resumed-sweep" in f.uri]
            if tables:
                table = read_table(tables[0].rsplit("/", 1)[0])
                if (table["status"] == "TERMINATED").any():
                    before = table
        assert before is not None, f"no trial finished before the deadline; see {tmp_path / 'driver.log'}"
        # Tune saves which trials finished every 2 s (pipelines.jobs.tune.EXPERIMENT_STATE_PERIOD_S)
        time.sleep(6)
        before = read_table(tables[0].rsplit("/", 1)[0])
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    finished = before[before["status"] == "TERMINATED"]
    assert len(finished) < len(resumed_dims), "the sweep ended before it was killed; nothing was left to resume"

    sweep_id = tables[0].rsplit("/", 2)[1]
    outcome = run_sweep(load_sweep_config(digits_root, sweep_id), resume=sweep_id)

    after = outcome.trials.set_index("trial_id")
    assert len(after) == len(resumed_dims) and set(after["status"]) == {"TERMINATED"}
    for _, row in finished.iterrows():
        # a re-run trial would have reported again, later
        assert after.loc[row["trial_id"], "last_report_at"] == row["last_report_at"]
        assert after.loc[row["trial_id"], "epochs"] == row["epochs"]
