"""`vaepipe train` end to end on local Ray + the S3 server: learning, checkpoints, registry,
a worker killed mid-run, resume, and the inputs it must refuse before starting Ray work."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest, shard_uris
from pipelines.datasets.features import image_features
from pipelines.datasets.manifest import DatasetManifest
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.storage.layout import dataset_uri, model_uri, run_uri, runs_uri
from pipelines.storage.registry import list_versions, load_registered
from pipelines.storage.objects import list_files, read_bytes, write_bytes
from pipelines.jobs.train import TrainingError, run_training
from pipelines.training.config import TrainJobConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


@pytest.fixture(scope="module")
def digits_root(s3_store, ray_cluster) -> str:
    import uuid

    root = f"s3://{s3_store.bucket}/train-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root, rows_per_shard=256))
    return root


def _config(root: str, **overrides) -> TrainJobConfig:
    data = {"name": "digits", "dataset": "digits", "storage": root,
            "model": {"latent_dim": 8, "hidden": [16, 32]},
            "train": {"epochs": 4, "batch_size": 64, "lr": 0.003, "kl_warmup_epochs": 0},
            "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
            "engine": "ray"}  # Ray Train is the point here (workers killed, DDP, checkpoints): never auto's local
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainJobConfig.model_validate(data)


def controller_probe(path: str):
    """A Ray Train callback that runs in Train's controller: each report appends the controller's pid, whether
    torch is imported there, and how many workers reported."""
    from ray.train import UserCallback

    class Probe(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            import os
            import sys

            with open(path, "a") as out:
                out.write(f"{os.getpid()} {'torch' in sys.modules} {len(metrics)}\n")

    return Probe()


@pytest.fixture(scope="module")
def trained_and_probed(digits_root, tmp_path_factory):
    from pipelines.jobs import train

    probed = tmp_path_factory.mktemp("probe") / "controller.txt"
    build_trainer = train.build_trainer
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "build_trainer", lambda *args: build_trainer(
            *args[:-1], [*args[-1], controller_probe(str(probed))]))
        outcome = run_training(_config(digits_root), progress=lambda _: None)
    return outcome, [line.split() for line in probed.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(trained_and_probed):
    return trained_and_probed[0]


def test_trains_controller_imports_no_torch_while_two_workers_train_in_one_process_group(trained_and_probed):
    # the process group is set up by training.process_group from the workers; Ray's TorchConfig imported torch in
    # the controller (2-3 s of CPU and ~300 MiB a run)
    outcome, reports = trained_and_probed
    assert len(reports) == outcome.epochs == 4, reports
    assert {pid for pid, _, _ in reports} != {str(os.getpid())} and len({pid for pid, _, _ in reports}) == 1
    assert all(torch_imported == "False" and workers == "2" for _, torch_imported, workers in reports), reports


def _val_inputs(root: str) -> tuple[torch.Tensor, DatasetManifest]:
    import io

    import pyarrow.parquet as pq

    uri = dataset_uri(root, "digits")
    manifest = load_manifest(uri)
    images = []
    for part in shard_uris(uri, manifest):
        table = pq.read_table(io.BytesIO(read_bytes(part)))
        mask = np.asarray(table.column("split").to_pylist()) == "val"
        images.append(table.column("image").combine_chunks().to_numpy_ndarray()[mask])
    return torch.from_numpy(image_features(manifest, np.concatenate(images))), manifest


@pytest.mark.parametrize(("workers", "data_loading"), [(2, "auto"), (3, "auto"), (2, "stream")])
def test_a_train_split_that_fits_a_worker_is_handed_to_the_workers_in_equal_shares(digits_root, workers,
                                                                                   data_loading):
    # handed with the workers' config, Train starts no split coordinator for it; streamed, Train's datasets
    from pipelines.training.loop import CachedSplit
    from pipelines.training.trainer import worker_splits

    config = _config(digits_root, scaling={"num_workers": workers}, train={"data_loading": data_loading})
    manifest = load_manifest(dataset_uri(digits_root, "digits"))
    datasets, handed = worker_splits(dataset_uri(digits_root, "digits"), manifest, config)
    if data_loading == "stream":
        assert handed == {} and set(datasets) == {"train", "val"}
        return
    assert datasets == {}
    shares = [CachedSplit.fetched(pieces, torch.device("cpu")).x for pieces in handed["train"]]
    train = CachedSplit.fetched([piece for pieces in handed["train"] for piece in pieces], torch.device("cpu")).x
    # equal shares of distinct rows, as Ray Train's streaming_split(equal=True) cuts: at most workers - 1 rows left out
    train_rows = manifest.split_rows["train"]
    assert len(shares) == workers and len({len(share) for share in shares}) == 1
    assert train_rows - workers < len(train) <= train_rows and torch.equal(torch.cat(shares), train)
    assert len(torch.unique(train.reshape(len(train), -1), dim=0)) > 0.95 * len(train)  # not one batch repeated
    val = CachedSplit.fetched(handed["val"], torch.device("cpu")).x
    assert len(val) == manifest.split_rows["val"] and val.dtype == train.dtype == torch.uint8


def test_a_train_split_above_the_handed_size_is_pulled_from_ray_trains_datasets_and_learns(digits_root,
                                                                                             monkeypatch):
    # the path of every table larger than HANDED_SPLITS_MAX_MB, which no test table reaches
    from pipelines.training import trainer

    monkeypatch.setattr(trainer, "HANDED_SPLITS_MAX_MB", 0)
    outcome = run_training(_config(digits_root, name="pulled"), progress=lambda _: None)
    val = [epoch["val_neg_elbo"] for epoch in outcome.history]
    assert len(val) == 4 and val[-1] < val[0] - 2.0


def test_validation_elbo_improves_over_epochs(trained):
    val = [epoch["val_neg_elbo"] for epoch in trained.history]
    assert [epoch["epoch"] for epoch in trained.history] == [1, 2, 3, 4]
    assert val[-1] < val[0] - 2.0


def test_checkpoints_are_objects_on_the_s3_store(trained, digits_root):
    files = [f.uri for f in list_files(trained.run_uri, include_hidden=True)]
    assert trained.run_uri.startswith("s3://")
    checkpoints = {uri.split("/")[-2] for uri in files if uri.endswith("model.safetensors")}
    assert len(checkpoints) == 2  # checkpoint.keep: the best two
    assert any(uri.endswith("optimizer.pt") for uri in files)


def test_registered_model_reproduces_the_logged_val_elbo_in_plain_torch(trained, digits_root):
    model, card = load_registered(digits_root, f"digits@{trained.version}")
    x, _ = _val_inputs(digits_root)
    assert len(x) == trained.history[0]["val_rows"]
    torch.manual_seed(0)
    with torch.no_grad():
        model.eval()
        estimates = [float(model(x).neg_elbo.mean()) for _ in range(20)]
    logged = card["metrics"]["val_neg_elbo"]
    assert np.mean(estimates) == pytest.approx(logged, rel=0.02)
    assert card["dataset"]["fingerprint"] == load_manifest(dataset_uri(digits_root, "digits")).fingerprint
    assert card["calibration"]["threshold"] > np.median(card["calibration"]["val_quantiles"])


def test_registry_files_are_safetensors_and_json_only(trained, digits_root):
    names = {f.uri.rsplit("/", 1)[1] for f in list_files(f"{model_uri(digits_root, 'digits')}/{trained.version}",
                                                         include_hidden=True)}
    assert names == {"model.safetensors", "model.json", "_SUCCESS"}


# --- faults ------------------------------------------------------------------------

def _kill_a_worker_after_first_checkpoint(root: str, known_runs: set[str], deadline_s: float = 300) -> int:
    """SIGKILL one RayTrainWorker process once the run has a registered checkpoint; returns its nice value.

    A checkpoint's files are on storage before Ray Train's controller registers it; a kill in between
    restarts the run from scratch. The controller writes its snapshot only after registering, so wait
    for that file, not for the checkpoint's.
    """
    from ray.util.state import list_actors

    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        runs = {f.uri.split("/runs/")[1].split("/")[0] for f in list_files(runs_uri(root), include_hidden=True)}
        new = runs - known_runs
        if new and any(f.uri.endswith("checkpoint_manager_snapshot.json")
                       for f in list_files(run_uri(root, new.pop()), include_hidden=True)):
            workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
            if workers:
                pid = int(workers[0]["pid"])
                niceness = os.getpriority(os.PRIO_PROCESS, pid)
                os.kill(pid, signal.SIGKILL)
                return niceness
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared in time")


def _existing_runs(root: str) -> set[str]:
    return {f.uri.split("/runs/")[1].split("/")[0] for f in list_files(runs_uri(root), include_hidden=True)}


def _train_in_background(config: TrainJobConfig, outcome: dict, **kwargs) -> threading.Thread:
    def target():
        try:
            outcome["result"] = run_training(config, progress=lambda _: None, **kwargs)
        except Exception as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.reliability("process fault")
def test_killed_worker_resumes_from_last_checkpoint_without_repeating_epochs(digits_root):
    config = _config(digits_root, name="digits-crash", max_failures=1,
                     train={"epochs": 6, "batch_size": 8})
    before, outcome = _existing_runs(digits_root), {}
    thread = _train_in_background(config, outcome)
    niceness = _kill_a_worker_after_first_checkpoint(digits_root, before)
    thread.join(400)
    assert niceness == 0, "training workers run at scaling.worker_niceness (0), not Ray's 15"
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    _, card = load_registered(digits_root, result.model)
    assert [e["epoch"] for e in card["training"]["history"]] == list(range(1, 7))
    assert card["training"]["resumed_at_epochs"], "the run should have restarted from a checkpoint"
    assert 1 <= card["training"]["resumed_at_epochs"][0] < 6


@pytest.mark.reliability("process fault")
def test_without_retries_a_crash_fails_clearly_and_resume_finishes_the_run(digits_root):
    config = _config(digits_root, name="digits-resume", max_failures=0, train={"epochs": 6, "batch_size": 8})
    before, outcome = _existing_runs(digits_root), {}
    thread = _train_in_background(config, outcome)
    _kill_a_worker_after_first_checkpoint(digits_root, before)
    thread.join(400)
    error = outcome.get("error")
    assert isinstance(error, TrainingError) and "--resume" in str(error)
    assert list_versions(digits_root, "digits-resume") == []
    (run_id,) = _existing_runs(digits_root) - before
    assert main(["train", "--resume", run_id, "--storage", digits_root]) == 0
    _, card = load_registered(digits_root, "digits-resume")
    assert card["training"]["run_id"] == run_id
    assert [e["epoch"] for e in card["training"]["history"]] == list(range(1, 7))


# --- refused before any Ray work -------------------------------------------------------

@pytest.mark.reliability("bad input")
def test_missing_dataset_is_a_clear_error_and_registers_nothing(digits_root, tmp_path, capsys):
    config = tmp_path / "job.yaml"
    config.write_text("name: ghost\ndataset: no-such-dataset\n")
    assert main(["train", str(config), "--storage", digits_root]) == 2
    err = capsys.readouterr().err
    assert "no dataset at" in err and "vaepipe prepare" in err
    assert list_versions(digits_root, "ghost") == []


@pytest.mark.parametrize("override, field", [
    ("train.beta=-1", "train.beta"),
    ("model.latent_dim=0", "model.latent_dim"),
    ("model.latnt_dim=4", "model.latnt_dim"),
    ("scaling.num_workers=0", "scaling.num_workers"),
])
@pytest.mark.reliability("bad input")
def test_config_errors_name_the_field(digits_root, override, field, capsys):
    assert main(["train", "configs/digits.yaml", "--storage", digits_root, "--set", override]) == 2
    assert field in capsys.readouterr().err


@pytest.mark.reliability("bad input")
def test_changed_shard_is_refused_before_training(digits_root, capsys, tmp_path):
    prepare_dataset(PrepareConfig(name="digits-copy", source="digits", storage=digits_root))
    uri = dataset_uri(digits_root, "digits-copy")
    first, second = shard_uris(uri, load_manifest(uri))[:2]
    write_bytes(first, read_bytes(second))  # a valid Parquet file, but not the one the manifest lists
    config = tmp_path / "job.yaml"
    config.write_text("name: copy\ndataset: digits-copy\n")
    assert main(["train", str(config), "--storage", digits_root]) == 2
    err = capsys.readouterr().err
    assert first in err and ("checksum" in err or "bytes" in err)
    assert list_versions(digits_root, "copy") == []


def test_resources_that_cannot_be_scheduled_fail_at_once(digits_root):
    config = _config(digits_root, scaling={"num_workers": 4, "cpus_per_worker": 1.0})
    started = time.monotonic()
    with pytest.raises(TrainingError, match="scaling.cpus_per_worker"):
        run_training(config, progress=lambda _: None)
    assert time.monotonic() - started < 30
