"""Experiment tracking against a real MLflow tracking server that this module starts (`mlflow server` on
127.0.0.1, SQLite backend, a local artifact root): a training run and a 2-trial sweep appear with their params,
per-epoch metrics and nested trials; the registered version is mirrored into MLflow's model registry; a
promotion moves the alias in both registries."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.ray_nodes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MLFLOW = Path(sys.executable).with_name("mlflow")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> str:
    """A real MLflow tracking server; yields its URL. The first start creates its SQLite tables (20-30 s here).
    Without the server's job execution (MLflow 3's eight huey consumers, for server-side GenAI jobs vaepipe does
    not use) its start took 6.1-6.4 core-seconds instead of 13.8-13.9, and eight fewer processes run beside the
    tests' jobs."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def tracked_root(s3_store, ray_cluster) -> str:
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    root = f"s3://{s3_store.bucket}/test-tracking-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    return root


def _client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(url)


def _runs(url: str, experiment: str) -> list:
    client = _client(url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} was not created"
    return client.search_runs([found.experiment_id], max_results=100)


@pytest.fixture(scope="module")
def trained(mlflow_server, tracked_root):
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    config = TrainJobConfig(
        name="digits", dataset="digits", storage=tracked_root, model={"latent_dim": 4, "hidden": [8, 16]},
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


def test_the_registered_version_is_mirrored_with_its_card_as_tags(mlflow_server, trained, tracked_root):
    from pipelines.storage.registry import read_card

    outcome, _ = trained
    (mirrored,) = _client(mlflow_server).search_model_versions("name = 'digits'")
    assert mirrored.run_id == outcome.tracked.run_id
    assert mirrored.tags["vaepipe.version"] == str(outcome.version)
    assert mirrored.tags["card.dataset.name"] == "digits"
    assert float(mirrored.tags["card.calibration.threshold"]) > 0
    card = read_card(f"{tracked_root}/models/digits/{outcome.version}/model.json")
    assert card["tracking"]["mlflow"]["run_id"] == outcome.tracked.run_id


@pytest.fixture(scope="module")
def swept(mlflow_server, tracked_root, trained):
    from pipelines.jobs.tune import run_sweep
    from pipelines.training.sweep_config import SweepJobConfig

    config = SweepJobConfig.model_validate({
        "name": "digits", "dataset": "digits", "storage": tracked_root, "max_failures": 0,
        "model": {"hidden": [8, 16]}, "train": {"epochs": 2, "batch_size": 64, "lr": 0.003},
        "checkpoint": {"every_epochs": 1, "keep": 1}, "scaling": {"num_workers": 1, "cpus_per_worker": 0.5},
        "search": {"num_samples": 1, "max_concurrent_trials": 2,
                   # two trials (each a Ray Train run: ~12 s here) show the nesting; two searched fields, both logged
                   "space": {"lr": {"grid": [0.003, 0.01]}, "latent_dim": {"grid": [4]}},
                   "early_stopping": {"grace_period": 2, "reduction_factor": 2}},
        "tracking": {"mlflow": {"tracking_uri": mlflow_server, "experiment": "digits-sweep"}}})
    return run_sweep(config, progress=lambda _: None)


def test_a_sweep_is_a_parent_run_with_one_nested_run_per_trial(mlflow_server, swept):
    runs = _runs(mlflow_server, "digits-sweep")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    (parent,) = parents
    assert parent.info.run_name == swept.sweep_id and parent.info.status == "FINISHED"
    assert parent.data.tags["vaepipe.best_trial"] == swept.best_trial
    assert len(trials) == 2
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {parent.info.run_id}
    assert {(run.data.params["lr"], run.data.params["latent_dim"]) for run in trials} == {("0.003", "4"), ("0.01", "4")}
    client = _client(mlflow_server)
    for run in trials:
        assert run.info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_neg_elbo")) == [1, 2]


def test_promotion_moves_the_alias_in_the_registry_and_in_mlflow(mlflow_server, trained, swept, tracked_root):
    from pipelines.jobs.promote import promote_model
    from pipelines.storage.registry import ModelRef, resolve_version

    client = _client(mlflow_server)
    first, _ = trained
    assert swept.version == first.version + 1
    promote_model(f"digits@{first.version}", tracked_root, alias="champion", why="first model")
    assert client.get_model_version_by_alias("digits", "champion").tags["vaepipe.version"] == str(first.version)

    done = promote_model(f"digits@{swept.version}", tracked_root, alias="champion", why="the sweep's best")
    assert done.mlflow and "MLflow version" in done.mlflow
    assert resolve_version(tracked_root, ModelRef.parse("digits@champion")) == swept.version
    assert client.get_model_version_by_alias("digits", "champion").tags["vaepipe.version"] == str(swept.version)
