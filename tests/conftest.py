"""Shared fixtures. Group new ones by topic under a comment header like below."""

from __future__ import annotations

import os
import uuid

import pytest

from pipelines.storage.embedded_server import StoreInfo, running_store
from pipelines.storage.objects import clear_caches

# --- test workers ------------------------------------------------------


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # `make test-fast` runs three workers on two cores: one torch thread each, as vaepipe itself trains small
        # steps (training.budget.SMALL_STEP_ROWS) — with torch's two per worker, each op's threads waited for cores
        # the other workers held (test-fast 99-108 s against 73 s)
        import torch

        torch.set_num_threads(1)


# --- object storage --------------------------------------------------------

_AWS_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory) -> StoreInfo:
    """A real SeaweedFS S3 server for the whole session; AWS_* point at it."""
    # the session's data is thrown away: no need to wait out SeaweedFS's ~12 s clean stop
    with running_store(tmp_path_factory.mktemp("store"), stop_timeout=1) as info, \
            pytest.MonkeyPatch.context() as env:
        for name in _AWS_VARS:
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", info.endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", info.access_key)
        env.setenv("AWS_SECRET_ACCESS_KEY", info.secret_key)
        env.setenv("AWS_REGION", info.region)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        clear_caches()
        yield info
    clear_caches()


@pytest.fixture
def s3_prefix(s3_store: StoreInfo) -> str:
    """A fresh prefix in the store's bucket, unique to the test."""
    return f"s3://{s3_store.bucket}/test-{uuid.uuid4().hex[:12]}"


# --- ray -------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster(s3_store: StoreInfo) -> str:
    """One local Ray for the whole session, started after AWS_* point at the test store
    (its workers inherit the environment). 4 logical CPUs on 2 cores leave room for
    Ray Data tasks beside fractional train workers (docs/design.md). Yields the GCS address."""
    import shutil
    import tempfile

    from pipelines.runtime.ray_session import configure_data_context, local_ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # unix socket paths must stay short, so not under pytest's deep tmp_path
    temp_dir = tempfile.mkdtemp(prefix="vr", dir="/tmp")
    # local_ray sets RAY_ADDRESS for the session: the state API and the `vaepipe`
    # subprocesses of the tests find this cluster, not another Ray on the machine
    # daemons (and workers that do not train) at idle priority, as `vaepipe train` runs its own local Ray
    # (RayConfig.daemon_priority)
    with local_ray(4, "idle", _temp_dir=temp_dir, configure_logging=False,
                   log_to_driver=True) as address:
        configure_data_context()
        yield address
    shutil.rmtree(temp_dir, ignore_errors=True)


# --- trained models: once per session, in this process (engine local: ~20 s less each than a job on the
# session's Ray). The tests using them check what follows training (scoring, generating, reports);
# training on Ray is tests/pipelines/jobs/test_train.py's, the clusters' and the benchmarks' ---


def write_training_report(storage: str, model: str) -> None:
    """What `vaepipe train` writes after the job (the CLI writes reports, the job does not)."""
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.training import build_training_report

    assert report_after_job(build_training_report, storage, model, progress=lambda _: None) is not None


@pytest.fixture(scope="session")
def digits_zero_model(s3_store: StoreInfo, ray_cluster, tmp_path_factory) -> dict:
    """A conv VAE trained on digit 0 only (the normal class) and the full digits dataset to score.

    The training images are written as an image folder of the zeros that are *not*
    in the full dataset's test split, so the normals scored later were never seen.
    """
    import numpy as np
    from PIL import Image

    from pipelines.datasets.preparation import PrepareConfig, assign_splits
    from pipelines.jobs.prepare import prepare_dataset
    from pipelines.datasets.sources import load_builtin
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    storage = f"s3://{s3_store.bucket}/models-{uuid.uuid4().hex[:12]}"
    digits = load_builtin("digits")
    full = PrepareConfig(name="digits", source="digits", storage=storage)
    prepare_dataset(full)
    splits = assign_splits(digits.row_ids, full.split)
    folder = tmp_path_factory.mktemp("zeros") / "0"
    folder.mkdir()
    for row_id, image, label, split in zip(digits.row_ids, digits.images, digits.labels, splits):
        if label == 0 and split != "test":
            Image.fromarray(image[0]).save(folder / f"{row_id}.png")
    prepare_dataset(PrepareConfig(name="zeros", source=str(folder.parent), storage=storage))
    outcome = run_training(TrainJobConfig(
        name="zeros", dataset="zeros", storage=storage, model={"latent_dim": 4, "hidden": [16, 32]},
        train={"epochs": 30, "batch_size": 16, "lr": 0.003}, checkpoint={"every_epochs": 5},
        engine="local"), progress=lambda _: None)
    write_training_report(storage, outcome.model)
    return {"storage": storage, "model": outcome.model, "name": "zeros", "dataset": "digits",
            "test_rows": int(np.sum(splits == "test"))}


# --- reliability suite (tests/reliability/report.py reads these from the JUnit XML) ---


@pytest.fixture(scope="session")
def fair_model(s3_store: StoreInfo, ray_cluster) -> dict:
    """An MLP VAE on the mixed-type `fair` table (8 epochs, 1 worker), shared by the generate and
    tabular report tests, with the table's share of exact zeros per numeric column."""
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
    from pipelines.datasets.sources import load_builtin
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    storage = f"s3://{s3_store.bucket}/fair-{uuid.uuid4().hex[:12]}"
    manifest = prepare_dataset(PrepareConfig(name="fair", source="fair", storage=storage))
    outcome = run_training(TrainJobConfig(
        name="fair", dataset="fair", storage=storage, model={"latent_dim": 4, "hidden": [64, 32]},
        train={"epochs": 8, "batch_size": 128, "lr": 0.003}, checkpoint={"every_epochs": 4},
        engine="local"), progress=lambda _: None)
    write_training_report(storage, outcome.model)
    source = load_builtin("fair").table
    zero_share = {c.name: float((source[c.name] == 0).mean()) for c in manifest.numeric}
    return {"storage": storage, "model": outcome.model, "version": outcome.version, "manifest": manifest,
            "zero_share": zero_share}


def pytest_collection_modifyitems(items) -> None:
    """`@pytest.mark.reliability("bad input")`: the kind of fault goes into the test's JUnit properties.

    A test that uses the session's Ray (directly or through a trained model) is `slow`, whether or not it
    says so: `make test-fast` (-m "not slow") must never start Ray."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
        marker = item.get_closest_marker("reliability")
        if marker is not None and marker.args:
            item.user_properties.append(("kind", marker.args[0]))
