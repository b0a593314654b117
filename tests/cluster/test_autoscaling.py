"""Train and tune on a cluster that must scale up, on Ray's own autoscaler.

Each test gets a fresh cluster shaped like the ones under cluster/: a head with 0 CPUs and one worker
node type with min_workers 0, so `ray.cluster_resources()` shows no CPU until the autoscaler adds a
node (tests/autoscaling_cluster.py: Ray's fake multi-node provider, on its own ports and temp dir; the
session's shared Ray is never touched). Whatever connects to it (`ray.init`) runs in a subprocess or
as a Ray job, because this pytest process may already be connected to the session's Ray.

Scale-up times are printed and recorded (`record_property`): from the request to a worker node alive.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.datasets.preparation import PrepareConfig
from pipelines.jobs.prepare import prepare_dataset
from pipelines.storage.registry import list_versions, load_registered
from tests.autoscaling_cluster import AutoscalingHead, start_autoscaling_head
from tests.ray_nodes import outside_session_ray

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# One kind of worker node, as the shipped clusters' CPU groups: 4 logical CPUs, none running until asked for.
# A small object store: each fake node is a raylet on this machine.
WORKER_TYPE = {"cpu": {"resources": {"CPU": 4, "object_store_memory": 300 * 1024 ** 2}, "node_config": {},
                       "min_workers": 0, "max_workers": 1}}


def test_rays_own_autoscaling_cluster_class_cannot_be_used_as_is_on_this_ray():
    """Why tests/autoscaling_cluster.py builds the cluster itself: when this fails, Ray ships the file again
    and AutoscalingCluster's config can be used (its start/shutdown still run `ray stop --force`)."""
    from ray.cluster_utils import AutoscalingCluster

    with pytest.raises(FileNotFoundError, match="fake_multi_node/example.yaml"):
        AutoscalingCluster(head_resources={"CPU": 0}, worker_node_types=WORKER_TYPE)


@pytest.fixture
def cluster(s3_store):
    head = start_autoscaling_head(WORKER_TYPE, head_cpus=0)
    try:
        yield head
    finally:
        head.stop()


def attached(head: AutoscalingHead, script: str, timeout_s: float) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Python with RAY_ADDRESS pointing at `head` (as `ray job submit` would)."""
    env = outside_session_ray()
    env.update(RAY_ADDRESS=head.gcs_address, RAY_AUTH_MODE="disabled")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s)


@pytest.mark.timeout(300)
def test_attached_with_no_cpu_up_the_train_check_asks_the_autoscaler_and_nodes_come_up(cluster, record_property):
    watch = cluster.watch()
    run = attached(cluster, """
        import json, ray, time
        from pipelines.jobs.train import check_resources
        from pipelines.training.config import TrainJobConfig

        ray.init()
        cpus_before = ray.cluster_resources().get("CPU", 0.0)
        config = TrainJobConfig(name="x", dataset="x", scaling={"num_workers": 1, "cpus_per_worker": 0.5},
                                ray={"scale_up_timeout_s": 180})
        started = time.monotonic()
        check_resources(config)  # refused at once before: 0 CPUs
        print("RESULT", json.dumps({"cpus_before": cpus_before, "cpus_after": ray.cluster_resources().get("CPU", 0.0),
                          "seconds": time.monotonic() - started}))
    """, timeout_s=240)
    watch.stop()

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (result,) = [json.loads(line.removeprefix("RESULT ")) for line in run.stdout.splitlines()
                 if line.startswith("RESULT ")]
    print(f"scale-up for the train check: {result['seconds']:.1f} s; first worker node after "
          f"{watch.first_worker_s:.1f} s")
    record_property("scale_up_s", round(result["seconds"], 1))
    assert result["cpus_before"] == 0.0
    assert result["cpus_after"] >= 1.5
    assert "the cluster grew to hold 1 × {CPU: 0.5} + 1 × {CPU: 1}" in run.stdout
    # the autoscaler saw the job's own bundles (nothing else ran that it could have scaled for) ...
    assert [[{"CPU": 0.5}, 1], [{"CPU": 1.0}, 1]] in [sorted(r, key=lambda x: x[0]["CPU"]) for r in watch.requests_seen]
    assert watch.max_workers == 1
    # ... and the request is withdrawn once the nodes are there, so they go when the job's work does
    time.sleep(3)  # the autoscaler reports every second
    assert cluster.resource_requests() == []


@pytest.mark.timeout(300)
def test_a_request_that_can_never_be_met_fails_naming_it(cluster, digits_root, record_property):
    # Through request_and_wait alone: the autoscaler is asked, nothing can come, the timeout names the request.
    timeout_s = 8
    run = attached(cluster, f"""
        import ray, time
        from pipelines.runtime.cluster_capacity import ScaleUpError, request_and_wait

        ray.init()
        started = time.monotonic()
        try:
            request_and_wait([{{"CPU": 1.0, "GPU": 2.0}}], timeout_s={timeout_s}, progress=print, purpose="two GPUs",
                             progress_every_s=2)
        except ScaleUpError as err:
            print(f"after {{time.monotonic() - started:.1f}} s: {{err}}")
    """, timeout_s=120)
    assert run.returncode == 0, run.stderr[-3000:]
    waiting = [line for line in run.stdout.splitlines() if line.startswith("waiting for the autoscaler")]
    (failure,) = [line for line in run.stdout.splitlines() if line.startswith("after ")]
    seconds = float(failure.split()[1])
    assert timeout_s <= seconds < timeout_s + 5
    assert "did not grow to hold 1 × {CPU: 1, GPU: 2} (two GPUs) within ray.scale_up_timeout_s = 8 s" in failure
    assert len(waiting) >= 3  # a line every 2 s while it waited

    # A training job for GPUs that no node type has: refused at once, naming the request and the node types.
    started = time.monotonic()
    job = attached(cluster, f"""
        import sys
        from pipelines.cli.main import main
        sys.exit(main(["train", "configs/digits.yaml", "--storage", {digits_root!r},
                       "--set", "scaling.use_gpu=true", "--set", "ray.scale_up_timeout_s=60",
                       "--engine", "ray"]))
    """, timeout_s=120)
    record_property("refusal_s", round(time.monotonic() - started, 1))
    assert job.returncode == 2, job.stdout[-2000:] + job.stderr[-2000:]
    (error,) = [line for line in job.stderr.splitlines() if line.startswith("error:")]
    assert "scaling.use_gpu is true but this cluster can grow to at most 0 GPUs" in error


@pytest.fixture(scope="module")
def digits_root(s3_store) -> str:
    root = f"s3://{s3_store.bucket}/autoscaling-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    return root


def submit(head: AutoscalingHead, *job: str) -> int:
    return main(["submit", *job, "--address", head.dashboard, "--working-dir", str(ROOT)])


def scale_up_seconds(output: str) -> float:
    (seconds,) = re.findall(r"the cluster grew to hold .* in (\d+) s", output)
    return float(seconds)


@pytest.mark.timeout(900)
def test_submitted_training_scales_the_cluster_up_from_zero_and_registers_a_model(cluster, digits_root, capsys,
                                                                                 record_property):
    watch = cluster.watch()
    code = submit(cluster, "train", "configs/digits.yaml", "--storage", digits_root, "--set", "train.epochs=1",
                  "--set", "scaling.num_workers=1", "--set", "checkpoint.keep=1", "--set", "engine=ray")
    watch.stop()

    out, err = capsys.readouterr()
    assert code == 0, out[-4000:] + err[-3000:]
    seconds = scale_up_seconds(out)
    print(f"train: scale-up {seconds:.0f} s in the job; first worker node {watch.first_worker_s:.1f} s after submit")
    record_property("train_scale_up_s", seconds)
    record_property("train_first_worker_after_submit_s", round(watch.first_worker_s, 1))
    assert watch.max_workers == 1
    version, card = load_registered(digits_root, "digits")
    assert card["training"]["config"]["scaling"]["num_workers"] == 1


@pytest.mark.timeout(900)
def test_submitted_sweep_sizes_its_trials_on_what_the_cluster_can_grow_to(cluster, digits_root, capsys,
                                                                         record_property):
    before = list_versions(digits_root, "digits")
    watch = cluster.watch()
    code = submit(cluster, "tune", "configs/digits-sweep.yaml", "--storage", digits_root,
                  "--set", "train.epochs=1", "--set", "search.num_samples=2",
                  "--set", "search.early_stopping.grace_period=1")
    watch.stop()

    out, err = capsys.readouterr()
    assert code == 0, out[-4000:] + err[-3000:]
    seconds = scale_up_seconds(out)
    print(f"tune: scale-up {seconds:.0f} s in the job; first worker node {watch.first_worker_s:.1f} s after submit")
    record_property("tune_scale_up_s", seconds)
    record_property("tune_first_worker_after_submit_s", round(watch.first_worker_s, 1))
    # 2 trials of 1.51 CPUs fit the one 4-CPU node the cluster can grow to; up at the start were 0 CPUs
    assert "2 trial(s) at a time" in out
    assert "the cluster grew to hold 2 × {CPU: 0.5} + 2 × {CPU: 1} + 2 × {CPU: 0.01}" in out
    assert len(list_versions(digits_root, "digits")) == len(before) + 1
