"""Fixtures shared by the pipelines' tests of several modules."""
from __future__ import annotations

import uuid

import pytest

from tests.pipelines import sweeps

# --- a tracked sweep (one 4-trial sweep costs ~90 s here: the tune and MLflow tests read the same one) ---


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real MLflow tracking server for the session; yields its URL."""
    with sweeps.mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture(scope="session")
def digits_root(s3_store, ray_cluster) -> str:
    """A storage root with digits prepared, where the sweep and the MLflow tests' training run register."""
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    root = f"s3://{s3_store.bucket}/test-sweep-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    return root


@pytest.fixture(scope="session")
def sweep(digits_root, mlflow_server):
    """`vaepipe tune` of `sweeps.sweep_settings` (promoting its best trial), tracked to `mlflow_server`."""
    from pipelines.cli.tune import report_sweep
    from pipelines.jobs.tune import run_sweep
    from pipelines.training.sweep_config import SweepJobConfig

    settings = {**sweeps.sweep_settings(digits_root, "digits"),
                "tracking": {"mlflow": {"tracking_uri": mlflow_server, "experiment": sweeps.SWEEP_EXPERIMENT}}}
    outcome = run_sweep(SweepJobConfig.model_validate(settings), promote=True)
    report_sweep(outcome, digits_root)  # what `vaepipe tune` leaves beside the sweep
    print(f"sweep wall time {outcome.seconds:.0f} s\n{outcome.trials.to_string()}")  # shown with pytest -s
    return outcome
