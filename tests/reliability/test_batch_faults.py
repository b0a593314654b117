"""Process faults and concurrency in a scoring job on the session's Ray: a model actor killed
mid-job is restarted and the output is exact; two jobs for the same date at once never mix."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipelines.datasets.catalog import load_manifest, shard_uris
from pipelines.datasets.reader import to_model_input
from pipelines.storage.layout import dataset_uri
from pipelines.storage.commit import is_complete, list_committed_parts, read_success
from pipelines.storage.registry import load_registered
from pipelines.jobs.score import ScoreJobConfig, run_scoring
from pipelines.storage.objects import list_files, read_bytes
from vae_core import anomaly_scores

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def committed_rows(prefix: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(io.BytesIO(read_bytes(uri))) for uri in list_committed_parts(prefix)])


def plain_torch_scores(model: dict) -> dict[str, float]:
    """neg_elbo per row_id computed in one process without Ray: what any complete output must hold."""
    vae, card = load_registered(model["storage"], model["model"])
    uri = dataset_uri(model["storage"], model["dataset"])
    manifest = load_manifest(uri)
    table = pa.concat_tables([pq.read_table(io.BytesIO(read_bytes(part))) for part in shard_uris(uri, manifest)])
    images = torch.from_numpy(table.column("image").combine_chunks().to_numpy_ndarray())
    with torch.no_grad():
        neg_elbo = anomaly_scores(vae, to_model_input(images, manifest))["neg_elbo"].numpy()
    return dict(zip(table.column("row_id").to_pylist(), neg_elbo.tolist()))


def alive_score_actors() -> list:
    from ray.util.state import list_actors

    return [actor for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if "ScoreActor" in actor.class_name]


def kill_live_actors(listed, keep_trying, deadline: float) -> list:
    """SIGKILL every listed actor whose process exists, listing again until at least one kill lands."""
    while True:
        killed = []
        for actor in listed():
            try:
                os.kill(actor.pid, signal.SIGKILL)
                killed.append(actor)
            except ProcessLookupError:
                pass
        if killed or not keep_trying() or time.monotonic() > deadline:
            return killed
        time.sleep(0.2)


@pytest.mark.reliability("process fault")
def test_killed_scoring_actor_is_restarted_and_the_output_is_exact(digits_zero_model, record_property):
    config = ScoreJobConfig(model=digits_zero_model["model"], input=digits_zero_model["dataset"],
                            storage=digits_zero_model["storage"], date="2026-10-01", iw_samples=300,
                            compute={"actors": 2, "cpus_per_actor": 0.25, "batch_size": 32}, engine="ray")
    outcome: dict = {}

    def score() -> None:
        try:
            outcome["result"] = run_scoring(config, progress=lambda _: None)
        except Exception as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err

    earlier = {actor.actor_id for actor in alive_score_actors()}  # an earlier job's pool may still be closing
    job = threading.Thread(target=score, daemon=True)
    job.start()
    prefix = f"{digits_zero_model['storage']}/scores/{digits_zero_model['model'].replace('@', '-v')}/digits/2026-10-01"
    deadline = time.monotonic() + 180
    while not any(a.actor_id not in earlier for a in alive_score_actors()):
        assert job.is_alive(), outcome
        assert time.monotonic() < deadline, "no model actor came up within 180 s"
        time.sleep(0.2)
    # iw_samples makes the batches slow, so 2 s after start-up the actors are mid-job: kill them all.
    # The state API can still list an actor whose process has just exited, so list again until a kill lands.
    time.sleep(2)
    killed = kill_live_actors(lambda: [a for a in alive_score_actors() if a.actor_id not in earlier],
                              keep_trying=job.is_alive, deadline=time.monotonic() + 60)
    assert killed, "no listed model actor had a live process while the job ran"
    assert not is_complete(prefix), "the job finished before the kill; the test needs a slower job"
    job.join(240)

    assert "error" not in outcome, outcome.get("error")
    from ray.util.state import get_actor

    # an actor killed while idle may never be restarted: the pool finishes on the others and shuts down
    restarts = [get_actor(actor.actor_id).num_restarts for actor in killed]
    assert sum(restarts) >= 1, restarts
    table = committed_rows(prefix)
    expected = plain_torch_scores(digits_zero_model)
    record_property("faults_injected", len(killed))
    record_property("rows_lost", len(expected) - len(set(table.column("row_id").to_pylist())))
    assert sorted(table.column("row_id").to_pylist()) == sorted(expected)
    got = dict(zip(table.column("row_id").to_pylist(), table.column("neg_elbo").to_pylist()))
    np.testing.assert_allclose([got[r] for r in expected], list(expected.values()), rtol=1e-5)


@pytest.mark.reliability("concurrency")
def test_two_scoring_jobs_for_the_same_date_at_once_leave_one_complete_output(digits_zero_model, ray_cluster,
                                                                              record_property):
    command = [sys.executable, "-m", "pipelines.cli", "score", "--model", digits_zero_model["model"],
               "--input", digits_zero_model["dataset"], "--split", "test", "--storage", digits_zero_model["storage"],
               "--date", "2026-10-02", "--actors", "1", "--cpus-per-actor", "0.25", "--batch-size", "64",
               "--engine", "ray"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}  # RAY_ADDRESS: both join the session's cluster
    jobs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(job.wait(240), *job.communicate()) for job in jobs]

    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    losers = [out + err for code, out, err in results if code == 2 or "already complete" in out]
    assert len(losers) == 1, results
    assert "another job (holder" in losers[0] or "already complete" in losers[0], losers[0]
    prefix = next(f for f in list_files(f"{digits_zero_model['storage']}/scores", include_hidden=True)
                  if "2026-10-02" in f.path and f.path.endswith("_SUCCESS")).uri.rsplit("/", 1)[0]
    names = [f.path.rsplit("/", 1)[-1] for f in list_files(prefix, include_hidden=True)]
    attempt = read_success(prefix)["attempt_id"]
    row_ids = committed_rows(prefix).column("row_id").to_pylist()
    record_property("rows_lost", digits_zero_model["test_rows"] - len(set(row_ids)))
    assert names.count("_SUCCESS") == 1 and "_LEASE" not in names
    assert all(attempt in name for name in names if name.endswith(".parquet"))
    assert len(row_ids) == len(set(row_ids)) == digits_zero_model["test_rows"]
