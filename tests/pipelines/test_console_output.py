"""What a person reads on the console, without a terminal (Ray Jobs, KubeRay, CI logs): `make demo` shows no
Ray internals and each epoch once; a scoring job of a million rows says how far it is while it runs."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.ray_nodes import outside_session_ray

VAEPIPE = Path(sys.executable).with_name("vaepipe")
# what people new to Ray read as failures (issue 23)
RAY_INTERNALS = ("Traceback", "core_worker", "RayDeprecationWarning", "Reporting training result", "(raylet)",
                 "Progress bars disabled", "Failed to kill actor", "logging.cc")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_demo_prints_no_ray_internals_and_each_epoch_once(tmp_path):
    env = outside_session_ray(drop=("AWS_",))
    # the demo's jobs on Ray, whose console output is what this checks (engine auto would run them in-process)
    env.update(VAEPIPE_HOME=str(tmp_path / "home"), RAY_AUTH_MODE="disabled", VAEPIPE_AUTO_LOCAL_MAX_ROWS="0")
    try:
        # what `make demo` runs, its output captured through a pipe: no terminal
        demo = subprocess.run([str(VAEPIPE), "demo"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1700)
    finally:
        subprocess.run([str(VAEPIPE), "storage", "down"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    output = demo.stdout
    print(output)  # shown with pytest -s
    assert demo.returncode == 0, output[-3000:]
    for internal in RAY_INTERNALS:
        assert internal not in output, f"{internal!r} in the demo's output"
    epochs = re.findall(r"^\s*epoch (\d+)/(\d+) ", output, flags=re.MULTILINE)
    total = int(epochs[0][1])
    assert [int(epoch) for epoch, _ in epochs] == list(range(1, total + 1)), "each epoch once, in order"
    assert "demo finished" in output


@pytest.fixture(scope="module")
def million_rows(s3_store, ray_cluster, tmp_path_factory) -> dict:
    """A tiny MLP VAE trained in this process on 2,000 rows of a 4-column table, and 1,000,000 rows of the same
    table to score."""
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    root = f"s3://{s3_store.bucket}/test-progress-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("table")
    generator = np.random.default_rng(0)
    for name, rows in (("small", 2_000), ("big", 1_000_000)):
        columns = {f"x{i}": generator.normal(size=rows).astype(np.float32) for i in range(4)}
        pq.write_table(pa.table({"id": np.arange(rows), **columns}), folder / f"{name}.parquet")
        prepare_dataset(PrepareConfig(name=name, source=str(folder / f"{name}.parquet"), id_column="id",
                                      storage=root, rows_per_shard=125_000))
    trained = run_training(TrainJobConfig(
        name="tiny", dataset="small", storage=root, model={"latent_dim": 2, "hidden": [8]},
        train={"epochs": 1, "batch_size": 256}, engine="local"), progress=lambda _: None)
    return {"root": root, "model": trained.model}


@pytest.mark.timeout(900)
def test_scoring_a_million_rows_without_a_terminal_prints_rows_done_rate_and_eta(million_rows):
    from pipelines.jobs.score import ScoreJobConfig, run_scoring

    assert not sys.stdout.isatty()
    lines: list[str] = []
    outcome = run_scoring(ScoreJobConfig(model=million_rows["model"], input="big", storage=million_rows["root"],
                                         compute={"actors": 2, "batch_size": 8192}, engine="ray"),
                          progress=lines.append)

    assert outcome.rows == 1_000_000
    progress = [line for line in lines if re.fullmatch(r"[\d,]+ / 1,000,000 rows \(\d+ %\)  [\d,]+ rows/s  "
                                                       r"(ETA \S+|in \S+)", line)]
    print("\n".join(lines))
    # how many lines depends on the job's speed (the reads run ahead while the actors start, then the actors
    # drain them in a burst: at 0127aea the first line came at 72 %); when lines are due is unit-tested with a
    # clock (tests/pipelines/runtime/test_job_progress.py). Here: every line is well formed (rows done, rate,
    # ETA or the time taken), the rows never go back, and the last line is the finished job's
    assert progress, lines
    done = [int(line.split(" / ")[0].replace(",", "")) for line in progress]
    assert done == sorted(done) and done[-1] == 1_000_000
    assert all(" ETA " in line for line in progress[:-1]) and "  in " in progress[-1], progress
