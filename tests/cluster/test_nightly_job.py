"""The nightly entrypoint run exactly as the RayJob runs it (`vaepipe nightly configs/nightly.yaml`),
submitted through the Ray Jobs API to a real `ray start --head` cluster whose own environment holds
the storage credentials; the day's scores land on the S3 server with `_SUCCESS`."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.storage.commit import is_complete, read_success
from tests.ray_nodes import node_env, start_head

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
# a date no other test of the shared session model scores
DATE = "2026-08-31"


@pytest.fixture(scope="module")
def head(s3_store):
    node = start_head(node_env())
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(node.temp_dir, ignore_errors=True)


def test_nightly_job_on_a_cluster_writes_the_days_scores(head, digits_zero_model, monkeypatch):
    storage, name = digits_zero_model["storage"], digits_zero_model["name"]
    assert main(["promote", digits_zero_model["model"], "--storage", storage]) == 0
    # what the RayJob's ConfigMap provides: the storage root, not credentials
    monkeypatch.setenv("VAEPIPE_STORAGE", storage)
    code = main(["submit", "nightly", "configs/nightly.yaml", "--date", DATE, "--set", f"model={name}", "--set", "engine=ray",
                 "--address", head.dashboard, "--working-dir", str(ROOT)])
    assert code == 0
    version = digits_zero_model["model"].split("@")[1]
    scores = f"{storage}/scores/{name}-v{version}/digits/{DATE}"
    assert is_complete(scores)
    assert read_success(scores)["rows"] == 1797
