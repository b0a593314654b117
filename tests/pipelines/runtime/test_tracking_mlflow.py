"""Experiment tracking against a real MLflow tracking server (`tests/pipelines/conftest.py`'s `mlflow_server`:
`mlflow server` on 127.0.0.1, SQLite backend, a local artifact root): a training run and the session's 4-trial
sweep appear with their params, per-epoch metrics and nested trials; the registered version is mirrored into
MLflow's model registry; a promotion moves the alias in both registries."""
from __future__ import annotations

import pytest

from tests.pipelines.sweeps import BAD_LR, GOOD_LR, LATENT_DIMS, SWEEP_EXPERIMENT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(url)


def _runs(url: str, experiment: str) -> list:
    client = _client(url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} was not created"
    return client.search_runs([found.experiment_id], max_results=100)


@pytest.fixture(scope="module")
def trained(mlflow_server, digits_root):
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    config = TrainJobConfig(
        name="digits", dataset="digits", storage=digits_root, model={"latent_dim": 4, "hidden": [8, 16]},
        train={"epochs": 3, "batch_size": 64, "lr": 0.003}, scaling={"num_workers": 1, "cpus_per_worker": 0.5},
        tracking={"mlflow": {"tracking_uri": mlflow_server, "experiment": "digits-train"}})
    lines: list[str] = []
    return run_training(config, progress=lines.append), lines


def test_a_training_run_has_its_config_as_params_and_every_epochs_metrics(mlflow_server, trained):
    outcome, lines = trained
    (run,) = _runs(mlflow_server, "digits-train")
    assert run.info.run_id == outcome.tracked.run_id and run.info.status == "FINISHED"
    assert run.info.run_name == outcome.run_id
    assert run.data.params["train.epochs"] == "3" and run.data.params["model.latent_dim"] == "4"
    history = _client(mlflow_server).get_metric_history(run.info.run_id, "val_neg_elbo")
    assert sorted(metric.step for metric in history) == [1, 2, 3]
    assert run.data.metrics["best.val_neg_elbo"] == pytest.approx(outcome.metrics["val_neg_elbo"])
    assert any(line.startswith("MLflow run: http://127.0.0.1") for line in lines)
    # one console line per epoch, from the driver
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]


def test_the_registered_version_is_mirrored_with_its_card_as_tags(mlflow_server, trained, digits_root):
    from pipelines.storage.registry import read_card

    outcome, _ = trained
    # the sweep's best trial is mirrored too, as another version of `digits`
    (mirrored,) = [version for version in _client(mlflow_server).search_model_versions("name = 'digits'")
                   if version.run_id == outcome.tracked.run_id]
    assert mirrored.tags["vaepipe.version"] == str(outcome.version)
    assert mirrored.tags["card.dataset.name"] == "digits"
    assert float(mirrored.tags["card.calibration.threshold"]) > 0
    card = read_card(f"{digits_root}/models/digits/{outcome.version}/model.json")
    assert card["tracking"]["mlflow"]["run_id"] == outcome.tracked.run_id


def test_a_sweep_is_a_parent_run_with_one_nested_run_per_trial(mlflow_server, sweep):
    runs = _runs(mlflow_server, SWEEP_EXPERIMENT)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    (parent,) = parents
    assert parent.info.run_name == sweep.sweep_id and parent.info.status == "FINISHED"
    assert parent.data.tags["vaepipe.best_trial"] == sweep.best_trial
    assert len(trials) == 4
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {parent.info.run_id}
    assert {(run.data.params["lr"], run.data.params["latent_dim"]) for run in trials} == {
        (str(lr), str(dim)) for lr in (GOOD_LR, BAD_LR) for dim in LATENT_DIMS}
    client = _client(mlflow_server)
    epochs = dict(zip(sweep.trials["trial_id"], sweep.trials["epochs"]))
    for run in trials:
        # trials ASHA stopped early end FINISHED too, with the epochs they ran
        assert run.info.status == "FINISHED"
        ran = epochs[run.data.tags["vaepipe.trial_id"]]
        assert run.data.tags["vaepipe.epochs_run"] == str(ran)
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_neg_elbo")) == list(
            range(1, ran + 1))


def test_promotion_moves_the_alias_in_the_registry_and_in_mlflow(mlflow_server, trained, sweep, digits_root):
    from pipelines.jobs.promote import promote_model
    from pipelines.storage.registry import ModelRef, resolve_version

    client = _client(mlflow_server)
    first, _ = trained
    assert sweep.version != first.version
    promote_model(f"digits@{first.version}", digits_root, alias="champion", why="first model")
    assert client.get_model_version_by_alias("digits", "champion").tags["vaepipe.version"] == str(first.version)

    done = promote_model(f"digits@{sweep.version}", digits_root, alias="champion", why="the sweep's best")
    assert done.mlflow and "MLflow version" in done.mlflow
    assert resolve_version(digits_root, ModelRef.parse("digits@champion")) == sweep.version
    assert client.get_model_version_by_alias("digits", "champion").tags["vaepipe.version"] == str(sweep.version)
