"""`vaepipe score` end to end on local Ray + the session's SeaweedFS."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.storage.commit import AlreadyComplete, list_committed_parts, read_success
from pipelines.jobs.score import ScoreJobConfig, run_scoring
from pipelines.storage.objects import read_json, resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def read_output(prefix: str):
    location = resolve(prefix)
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                             for uri in list_committed_parts(prefix)])


def score(model: dict, **fields):
    config = ScoreJobConfig(model=model["model"], input=model["dataset"], storage=model["storage"],
                            compute={"actors": 2, "cpus_per_actor": 0.25, "batch_size": 64}, **fields)
    return run_scoring(config, progress=lambda _: None)


@pytest.fixture(scope="module")
def scored(digits_zero_model):
    return score(digits_zero_model, split="test", date="2026-11-24", normal_label="0")


def test_scores_one_row_per_input_row_with_unique_ids(scored, digits_zero_model):
    table = read_output(scored.output_uri)
    ids = table["row_id"].to_pylist()
    assert table.num_rows == digits_zero_model["test_rows"] == read_success(scored.output_uri)["rows"]
    assert len(set(ids)) == len(ids)


def test_the_input_is_read_in_blocks_for_every_model_actor(scored):
    # Ray Data's default Parquet reader packs small shards into one block: one part, one busy actor
    assert len(list_committed_parts(scored.output_uri)) >= 2  # compute.actors


def test_other_digits_score_above_the_trained_digit(scored):
    assert scored.summary["roc_auc"] >= 0.9, scored.summary


def test_a_model_with_gaussian_pixels_scores_by_squared_error_and_ranks_other_digits_higher(digits_zero_model):
    from pipelines.storage.registry import load_registered
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig
    from vae_core import LikelihoodBlock

    storage = digits_zero_model["storage"]
    outcome = run_training(TrainJobConfig(
        name="zeros-gaussian", dataset="zeros", storage=storage,
        model={"latent_dim": 4, "hidden": [16, 32], "image_likelihood": "gaussian"},
        train={"epochs": 15, "batch_size": 16, "lr": 0.003}, checkpoint={"every_epochs": 15},
        engine="local"), progress=lambda _: None)
    model, _ = load_registered(storage, outcome.model)
    assert model.spec.likelihood == (LikelihoodBlock("gaussian", 64, variance="shared", init_std=0.1),)

    result = score({**digits_zero_model, "model": outcome.model}, split="test", date="2026-11-23", normal_label="0")
    assert result.summary["roc_auc"] >= 0.9, result.summary
    table = read_output(result.output_uri).to_pandas()
    # one noise level: the saturated log-likelihood is the same for every image, so the score is -ELBO shifted
    shift = table["anomaly_score"] - table["neg_elbo"]
    assert shift.max() - shift.min() < 1e-3


def test_summary_is_stored_beside_success(scored):
    stored = read_json(f"{scored.output_uri}/_summary.json")
    assert stored == read_success(scored.output_uri)["summary"]
    assert set(stored) >= {"rows", "anomaly_rate", "score_quantiles", "roc_auc", "precision_at_k"}
    assert stored["score"] == "anomaly_score"


def test_score_columns_are_consistent(scored):
    table = read_output(scored.output_uri).to_pandas()
    assert {"row_id", "anomaly_score", "neg_elbo", "recon_nll", "kl", "percentile", "is_anomaly",
            "label"} <= set(table.columns)
    np.testing.assert_allclose(table["neg_elbo"], table["recon_nll"] + table["kl"], rtol=1e-5)
    assert table["percentile"].between(0, 100).all()
    assert (table["is_anomaly"] == (table["anomaly_score"] > scored.summary["threshold"])).all()
    # the deviance drops each grey pixel's own entropy from -ELBO: never more, and never below the KL
    assert (table["anomaly_score"] <= table["neg_elbo"] + 1e-3).all()
    assert (table["anomaly_score"] >= table["kl"] - 1e-3).all()
    assert (table["anomaly_score"] < table["neg_elbo"] - 1).mean() > 0.9  # digits are mostly grey


def test_rescoring_a_complete_date_is_refused_without_overwrite(scored, digits_zero_model):
    with pytest.raises(AlreadyComplete):
        score(digits_zero_model, split="test", date="2026-11-24")



def deterministic_columns(prefix: str):
    return read_output(prefix).select(["row_id", "anomaly_score", "neg_elbo", "recon_nll", "kl"]).to_pandas() \
        .sort_values("row_id").reset_index(drop=True)


@pytest.mark.reliability("process fault")
def test_killed_scoring_job_rerun_gives_exact_output_and_one_success(digits_zero_model, s3_store, tmp_path):
    """A real SIGKILL of `vaepipe score` (and the local Ray it started) after its first parts land."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipelines.storage.commit import is_complete
    from pipelines.storage.objects import list_files

    reference = score(digits_zero_model, date="2026-11-01")
    prefix = reference.output_uri.replace("2026-11-01", "2026-11-02")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"PYTHONPATH": os.getcwd(), "RAY_AUTH_MODE": "disabled"})
    # iw_samples makes each part slow enough that the kill lands mid-way
    command = [sys.executable, "-m", "pipelines.cli", "score", "--model", digits_zero_model["model"],
               "--input", "digits", "--storage", digits_zero_model["storage"], "--date", "2026-11-02",
               "--iw-samples", "3000", "--batch-size", "64", "--cpus-per-actor", "0.25",
               "--engine", "ray"]  # the Ray job (and its local Ray) is what gets killed: never auto's local
    log = tmp_path / "score.log"
    with log.open("wb") as out:
        job = subprocess.Popen(command, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not [f for f in list_files(prefix) if f.path.endswith(".parquet")]:
            assert job.poll() is None, \
                f"the scoring job ended (status {job.poll()}) before writing a part:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, "no part appeared within 240 s"
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert not is_complete(prefix), "the job finished before the kill; the test needs a slower job"
    assert list_files(prefix)  # partial output left behind

    rerun = score(digits_zero_model, date="2026-11-02")
    assert rerun.output_uri == prefix
    names = [f.path.rsplit("/", 1)[-1] for f in list_files(prefix, include_hidden=True)]
    assert names.count("_SUCCESS") == 1
    assert all(read_success(prefix)["attempt_id"] in n for n in names if n.endswith(".parquet"))
    rerun_rows, reference_rows = deterministic_columns(prefix), deterministic_columns(reference.output_uri)
    assert rerun_rows["row_id"].tolist() == reference_rows["row_id"].tolist()
    # same rows, same model; only the float rounding of differently composed batches may differ
    np.testing.assert_allclose(rerun_rows.drop(columns="row_id"), reference_rows.drop(columns="row_id"), rtol=1e-5)


# --- bad input: a clear error, exit 2, no _SUCCESS --------------------------------


def cli_score(model: dict, capsys, *args: str) -> tuple[int, str]:
    from pipelines.cli.main import main

    code = main(["score", "--storage", model["storage"], "--date", "2026-12-31", *args])
    return code, capsys.readouterr().err


def assert_no_scores_written(model: dict) -> None:
    from pipelines.storage.objects import list_files

    assert not [f for f in list_files(f"{model['storage']}/scores", include_hidden=True)
                if "2026-12-31" in f.path and f.path.endswith("_SUCCESS")]


@pytest.mark.reliability("bad input")
def test_unknown_model_version_is_a_clear_error(digits_zero_model, capsys):
    code, err = cli_score(digits_zero_model, capsys, "--model", "zeros@99", "--input", "digits")
    assert code == 2 and "no version 99" in err and "registered: [1]" in err
    assert_no_scores_written(digits_zero_model)


@pytest.mark.reliability("bad input")
def test_input_with_another_schema_is_a_clear_error(digits_zero_model, capsys):
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    prepare_dataset(PrepareConfig(name="fair", source="fair", storage=digits_zero_model["storage"]))
    code, err = cli_score(digits_zero_model, capsys, "--model", digits_zero_model["model"], "--input", "fair")
    assert code == 2 and "tabular dataset but the model was trained on image data" in err
    assert_no_scores_written(digits_zero_model)


@pytest.mark.reliability("bad input")
def test_empty_input_is_a_clear_error(digits_zero_model, capsys):
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    prepare_dataset(PrepareConfig(name="digits-train-only", source="digits", storage=digits_zero_model["storage"],
                                  split={"train": 1.0, "val": 0.0, "test": 0.0}))
    code, err = cli_score(digits_zero_model, capsys, "--model", digits_zero_model["model"],
                          "--input", "digits-train-only", "--split", "test")
    assert code == 2 and "is empty (0 rows)" in err
    assert_no_scores_written(digits_zero_model)


def assert_nothing_under_the_date(model: dict) -> None:
    from pipelines.storage.objects import list_files

    assert not [f.path for f in list_files(f"{model['storage']}/scores", include_hidden=True)
                if "2026-12-31" in f.path], "the refused job left files (a lease or parts) behind"


@pytest.mark.reliability("bad input")
@pytest.mark.timeout(180)  # the bug: Ray Data waited forever for a GPU the cluster does not have
@pytest.mark.parametrize("flags, names", [
    (("--use-gpu",), ("compute.use_gpu is true", "compute.gpus_per_actor (1) = 2 GPUs", "has 0")),
    (("--actors", "3", "--cpus-per-actor", "2"), ("compute.actors (3) × 2 CPUs per actor", "= 6 CPUs")),
], ids=["a GPU where the cluster has none", "more CPUs than the cluster has"])
def test_an_actor_pool_the_ray_cluster_can_never_schedule_is_refused_at_once(digits_zero_model, capsys, flags,
                                                                             names):
    code, err = cli_score(digits_zero_model, capsys, "--model", digits_zero_model["model"], "--input", "digits",
                          "--engine", "ray", *flags)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert all(name in errors[0] for name in names), errors[0]
    assert_nothing_under_the_date(digits_zero_model)


@pytest.mark.reliability("bad input")
def test_use_gpu_in_this_process_without_a_gpu_is_refused_not_run_on_the_cpu(digits_zero_model, capsys,
                                                                            monkeypatch):
    import torch

    if torch.cuda.is_available():  # the machine without a GPU, on one that has one: the only way to make it here
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = cli_score(digits_zero_model, capsys, "--model", digits_zero_model["model"], "--input", "digits",
                          "--engine", "local", "--use-gpu")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "compute.use_gpu is true" in errors[0] and "no CUDA GPU" in errors[0]
    assert_nothing_under_the_date(digits_zero_model)
