"""Two Ray nodes on one machine, each with its own temp dir: prepare, train and score spread their work over both
nodes and reach the data through the S3 server, so nothing depends on a shared local disk; prepare's dataset
and score's parts are row for row what one process or one node writes."""
from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.storage.registry import load_registered
from pipelines.storage.objects import list_files
from pipelines.runtime.ray_session import explicit_address
from tests.ray_nodes import node_env, outside_session_ray, start_head, start_worker, wait_for_nodes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def two_nodes(s3_store):
    head = start_head(node_env())
    worker = None
    try:
        worker = start_worker(head, node_env())
        wait_for_nodes(head, 2)
        yield head, worker
    finally:
        for node in (worker, head):
            if node is not None:
                node.stop()
                shutil.rmtree(node.temp_dir, ignore_errors=True)


def test_training_spread_over_two_nodes_checkpoints_to_s3(two_nodes, s3_store):
    from ray.util.state import list_actors

    head, worker = two_nodes
    root = f"s3://{s3_store.bucket}/multinode-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    env = {**outside_session_ray(), "RAY_ADDRESS": head.gcs_address}
    command = [sys.executable, "-m", "pipelines.cli", "train", "configs/digits.yaml", "--storage", root,
               "--set", "train.epochs=2", "--set", "scaling.num_workers=2",
               "--set", "scaling.placement_strategy=STRICT_SPREAD", "--engine", "ray"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stderr[-3000:]

    # the state API lets $RAY_ADDRESS (the session's Ray, once started) win over `address`
    with explicit_address():
        workers = list_actors(address=head.dashboard, filters=[("class_name", "=", "RayTrainWorker")], detail=True)
    assert len({actor["node_id"] for actor in workers}) == 2, "the two workers should run on different nodes"
    _, card = load_registered(root, "digits")
    checkpoints = [f.uri for f in list_files(card["training"]["run_uri"], include_hidden=True)
                   if f.uri.endswith("model.safetensors")]
    assert checkpoints and all(uri.startswith("s3://") for uri in checkpoints)
    assert [epoch["epoch"] for epoch in card["training"]["history"]] == [1, 2]
    # each node really has its own temp dir: the worker node's session lives under its own
    assert any(worker.temp_dir.glob("session_*"))


def test_prepare_reads_the_files_on_both_nodes_and_writes_what_one_process_writes(two_nodes, s3_store):
    """`prepare --engine ray` on a cluster: a task per file, spread over the nodes, reading the source from S3
    (no shared disk); the dataset is row for row the one a single process prepares."""
    import numpy as np
    import statsmodels.api as sm
    from ray.util.state import list_tasks

    from pipelines.batch.parts import read_committed_parts
    from pipelines.storage.objects import write_bytes

    head, _ = two_nodes
    root = f"s3://{s3_store.bucket}/multinode-prepare-{uuid.uuid4().hex[:8]}"
    frame = sm.datasets.fair.load_pandas().data
    frame.insert(0, "respondent", [f"r{i:05d}" for i in range(len(frame))])
    for index, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        write_bytes(f"{root}/source/part-{index}.csv", frame.iloc[rows].to_csv(index=False).encode())
    env = {**outside_session_ray(), "RAY_ADDRESS": head.gcs_address}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "prepare", f"{root}/source", "--name", "on-ray",
                          "--storage", root, "--id-column", "respondent", "--engine", "ray"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "engine: ray" in run.stdout + run.stderr
    with explicit_address():
        tasks = list_tasks(address=head.dashboard, filters=[("func_or_class_name", "=", "_call")], detail=True,
                           limit=1000)
    assert len(tasks) == 12  # 3 passes x 4 files
    assert len({task["node_id"] for task in tasks}) == 2, "the file tasks should run on both nodes"

    prepare_dataset(PrepareConfig(name="in-process", source=f"{root}/source", storage=root,
                                  id_column="respondent", engine="local"), progress=lambda _: None)
    on_ray, in_process = (read_committed_parts(f"{root}/datasets/{name}").sort_by("row_id")
                          for name in ("on-ray", "in-process"))
    assert on_ray.num_rows == len(frame) and on_ray.equals(in_process)


def test_scoring_over_two_nodes_writes_what_one_node_writes_row_for_row(two_nodes, digits_zero_model):
    """`vaepipe score --engine ray` on the two-node cluster: its model actors on both nodes, each reading its
    blocks from S3; the parts are row for row the ones the session's single-node Ray writes (to float rounding:
    the batches are cut from other blocks)."""
    import pandas as pd
    import pyarrow.dataset as ds
    from ray.util.state import list_actors

    from pipelines.jobs.score import ScoreJobConfig, run_scoring
    from pipelines.storage.commit import read_success
    from pipelines.storage.layout import scores_date_uri, scores_series_uri
    from pipelines.storage.objects import resolve

    head, _ = two_nodes
    storage, model = digits_zero_model["storage"], digits_zero_model["model"]
    compute = {"actors": 2, "cpus_per_actor": 0.5, "batch_size": 64}  # smaller than a shard: blocks cut anew
    # an output root of its own: the model is the session's, and other tests score it for their own dates
    output = f"multinode-scores-{uuid.uuid4().hex[:8]}"
    one_node = run_scoring(ScoreJobConfig(model=model, input="digits", storage=storage, date="2026-12-01",
                                          output=output, engine="ray", compute=compute), progress=lambda _: None)
    env = {**outside_session_ray(), "RAY_ADDRESS": head.gcs_address}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "score", "--model", model, "--input", "digits",
                          "--storage", storage, "--output", output, "--date", "2026-12-02", "--engine", "ray",
                          "--actors", str(compute["actors"]), "--cpus-per-actor", str(compute["cpus_per_actor"]),
                          "--batch-size", str(compute["batch_size"])],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    with explicit_address():  # Ray Data's actor-pool workers: the job's model actors (no other test here has any)
        actors = [actor for actor in list_actors(address=head.dashboard, detail=True, limit=1000)
                  if actor["class_name"].startswith("MapWorker(")]
    assert len(actors) == compute["actors"] and len({actor["node_id"] for actor in actors}) == 2, actors

    two_nodes_uri = scores_date_uri(scores_series_uri(one_node.output_uri), "2026-12-02")
    assert read_success(two_nodes_uri) is not None

    def parts(prefix: str) -> pd.DataFrame:
        location = resolve(prefix)
        rows = ds.dataset(location.path, format="parquet", filesystem=location.filesystem).to_table().to_pandas()
        return rows.sort_values("row_id").reset_index(drop=True)

    single, spread = parts(one_node.output_uri), parts(two_nodes_uri)
    assert len(single) == one_node.rows == 1_797 and list(single.columns) == list(spread.columns)
    assert single["row_id"].tolist() == spread["row_id"].tolist()
    pd.testing.assert_frame_equal(single, spread, check_exact=False, rtol=1e-5, atol=1e-5)
    assert single["is_anomaly"].tolist() == spread["is_anomaly"].tolist()


@pytest.mark.reliability("bad input")
@pytest.mark.parametrize("field, job", [
    ("scaling.cpus_per_worker", ["train", "configs/digits.yaml", "--set", "scaling.num_workers=1",
                                 "--set", "scaling.cpus_per_worker=3"]),
    ("compute.cpus_per_actor", ["score", "--input", "digits", "--actors", "1", "--cpus-per-actor", "3"]),
])
def test_a_worker_no_node_can_hold_is_refused_though_the_cluster_totals_fit(two_nodes, digits_zero_model, field,
                                                                             job):
    """Two 2-CPU nodes have the 4 CPUs a 3-CPU worker and Ray Data's read CPU need, but neither node holds the
    worker: Ray would wait for it forever. Refused at once, naming the field and the nodes; nothing written."""
    head, _ = two_nodes
    storage = digits_zero_model["storage"]
    if job[0] == "score":
        job = job + ["--model", digits_zero_model["model"]]
    before = {(f.uri, f.size) for f in list_files(storage, include_hidden=True)}
    env = {**outside_session_ray(), "RAY_ADDRESS": head.gcs_address}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", *job, "--storage", storage, "--engine", "ray"],
                         env=env, capture_output=True, text=True, timeout=180)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1, run.stderr[-3000:]
    assert field in errors[0] and "2 node(s), 2 × {CPU: 2}" in errors[0], errors[0]
    assert "Traceback" not in run.stderr
    assert {(f.uri, f.size) for f in list_files(storage, include_hidden=True)} == before
