"""Secrets stay in the environment: a full job (prepare, train, score) leaves the store's secret key in no
output, object, log or Ray job record; model loading never runs code from a planted pickle."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.storage.registry import ModelLoadError, load_registered, register_model
from pipelines.storage.objects import list_files, read_bytes, read_json

pytestmark = [pytest.mark.reliability("security"), pytest.mark.timeout(300)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_secret_key_appears_in_no_output_object_log_or_job_record(digits_zero_model, s3_store, capfd):
    """The session model was prepared and trained with these credentials; scoring runs here through the CLI."""
    import ray
    from ray.util.state import list_jobs

    secret = s3_store.secret_key.encode()
    code = main(["score", "--model", digits_zero_model["model"], "--input", digits_zero_model["dataset"],
                 "--split", "test", "--storage", digits_zero_model["storage"], "--date", "2026-10-03",
                 "--actors", "1", "--cpus-per-actor", "0.25"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert secret not in (out + err).encode()

    # every object in the bucket: datasets and manifests, run checkpoints, model cards, scores, summaries
    objects = list_files(f"s3://{s3_store.bucket}", include_hidden=True)
    names = {entry.path.rsplit("/", 1)[-1] for entry in objects}
    assert {"_manifest.json", "model.json", "model.safetensors", "_SUCCESS", "_summary.json"} <= names
    leaking = [entry.uri for entry in objects if secret in read_bytes(entry.uri)]
    assert leaking == []

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    leaking_logs = [str(path) for path in logs.rglob("*") if path.is_file() and secret in path.read_bytes()]
    assert leaking_logs == []
    jobs = json.dumps([job.__dict__ for job in list_jobs(detail=True)], default=str)
    assert secret.decode() not in jobs


class WritesMarker:
    """A pickle that creates a file when it is unpickled: the proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("pickler", ["pickle", "torch.save"])
def test_a_pickle_planted_as_registered_weights_is_refused_without_running_it(digits_zero_model, tmp_path, pickler):
    import io

    import torch

    marker = tmp_path / "pwned"
    if pickler == "pickle":
        payload = pickle.dumps(WritesMarker(marker))
    else:
        buffer = io.BytesIO()
        torch.save({"encoder.weight": WritesMarker(marker)}, buffer)
        payload = buffer.getvalue()
    storage, model = digits_zero_model["storage"], digits_zero_model["model"]
    card = read_json(f"{storage}/models/{model.replace('@', '/')}/model.json")
    version = register_model(storage, f"evil-{pickler.replace('.', '-')}", payload, card)

    with pytest.raises(ModelLoadError, match="is not a safetensors file") as refused:
        load_registered(storage, f"evil-{pickler.replace('.', '-')}@{version}")
    assert f"models/evil-{pickler.replace('.', '-')}/{version}/model.safetensors" in str(refused.value)
    assert not marker.exists()
