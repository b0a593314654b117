"""A tiny tabular model shared by the tabular report tests (2 epochs, 1 worker)."""
from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def fair_tiny_model(s3_store, ray_cluster) -> dict:
    from pipelines.datasets.prepare import PrepareConfig, prepare_dataset
    from pipelines.train import run_training
    from pipelines.train_config import TrainJobConfig

    storage = f"s3://{s3_store.bucket}/fair-reports-{uuid.uuid4().hex[:12]}"
    prepare_dataset(PrepareConfig(name="fair", source="fair", storage=storage))
    outcome = run_training(TrainJobConfig(
        name="fair", dataset="fair", storage=storage, model={"latent_dim": 3, "hidden": [32]},
        train={"epochs": 2, "batch_size": 128}, scaling={"num_workers": 1, "cpus_per_worker": 0.5}),
        progress=lambda _: None)
    return {"storage": storage, "model": outcome.model, "version": outcome.version}
