"""`vaepipe train --engine local`: the same loop in this process, checkpoints under the run, the model
registered as Ray Train's would be, one line per epoch; a run resumes on the engine that wrote it. No Ray."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.cli.main import main
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.jobs.train import run_training
from pipelines.storage.layout import local_checkpoint_epoch, run_uri
from pipelines.storage.objects import list_files
from pipelines.storage.registry import load_registered
from pipelines.training.config import TrainJobConfig
from tests.ray_nodes import outside_session_ray

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def digits_root(s3_store) -> str:
    root = f"s3://{s3_store.bucket}/train-local-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root, rows_per_shard=256))
    return root


def config(root: str, engine: str = "auto", epochs: int = 3) -> TrainJobConfig:
    return TrainJobConfig.model_validate({
        "name": "digits-local", "dataset": "digits", "storage": root, "engine": engine,
        "model": {"latent_dim": 4, "hidden": [16, 32]}, "train": {"epochs": epochs, "batch_size": 64},
        "checkpoint": {"every_epochs": 1, "keep": 2}})


# What the first test runs in a fresh process: `auto` must see no Ray, and the test session's own Ray is
# connected in-process (and named by RAY_ADDRESS), which makes `auto` pick Ray, as it should for a cluster.
AUTO_TRAINING = """
import json, sys
from pipelines.jobs.train import run_training
from pipelines.training.config import TrainJobConfig

lines = []
outcome = run_training(TrainJobConfig.model_validate(json.loads(sys.argv[1])), progress=lines.append)
ray = sys.modules.get("ray")
print("OUTCOME " + json.dumps({"engine": outcome.engine, "model": outcome.model, "best_epoch": outcome.best_epoch,
                               "run_uri": outcome.run_uri, "lines": lines,
                               "ray_started": bool(ray is not None and ray.is_initialized())}))
"""


@pytest.mark.slow  # trains digits to its budget: ~4 CPU-s
def test_auto_trains_digits_in_this_process_and_registers_the_best_epoch(digits_root):
    env = outside_session_ray()
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", AUTO_TRAINING, config(digits_root).model_dump_json()], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (result,) = [json.loads(line.removeprefix("OUTCOME ")) for line in run.stdout.splitlines()
                 if line.startswith("OUTCOME ")]
    outcome, lines = SimpleNamespace(**result), result["lines"]

    assert outcome.engine == "local" and not outcome.ray_started
    assert any(line.startswith("engine: local (auto: ") for line in lines), lines
    epochs = [line.split()[1] for line in lines if line.startswith("epoch ")]
    assert epochs == ["1/3", "2/3", "3/3"], lines  # each once, in order, with the figures
    model, card = load_registered(digits_root, outcome.model)
    assert [entry["epoch"] for entry in card["training"]["history"]] == [1, 2, 3]
    assert card["training"]["best_epoch"] == outcome.best_epoch
    assert card["calibration"]["threshold"] > 0 and card["training"]["config"]["engine"] == "auto"
    kept = {local_checkpoint_epoch(entry.uri.split("/")[-2]) for entry in list_files(outcome.run_uri, recursive=True)
            if "/local-checkpoint-" in entry.uri}
    # the best `keep` (2) by validation -ELBO and the latest are kept, as Ray Train keeps them
    assert 3 in kept and 1 <= len(kept) <= 3


@pytest.mark.slow  # two local runs: ~3 CPU-s
def test_a_local_run_resumes_locally_and_refuses_ray(digits_root, capsys):
    first = run_training(config(digits_root, "local", epochs=2), progress=lambda _: None)
    assert main(["train", "--resume", first.run_id, "--storage", digits_root, "--engine", "ray"]) == 2
    assert "has checkpoints of engine local; resume it with --engine local" in capsys.readouterr().err
    assert main(["train", "--resume", first.run_id, "--storage", digits_root, "--set", "train.epochs=3"]) == 0
    _, card = load_registered(digits_root, "digits-local")
    assert card["training"]["run_id"] == first.run_id and card["training"]["resumed_at_epochs"] == [2]
    assert [entry["epoch"] for entry in card["training"]["history"]] == [1, 2, 3]
    assert run_uri(digits_root, first.run_id) == first.run_uri
