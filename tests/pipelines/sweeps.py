"""The digits sweep the tune and MLflow tests share, and the MLflow tracking server it is tracked to.

The budget is built so that ASHA must stop a trial: 4 epochs, grace 1, reduction factor 2, and a grid
where half the trials have a learning rate (1e-6) too small to learn anything in 4 epochs. The first
trials launched are good ones, so a bad trial always reaches a rung after a good one and is cut.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.ray_nodes import free_port

GOOD_LR, BAD_LR = 0.005, 1e-6
LATENT_DIMS = (4, 16)
EPOCHS = 4
SWEEP_EXPERIMENT = "digits-sweep"
MLFLOW = Path(sys.executable).with_name("mlflow")


def sweep_settings(prefix: str, name: str) -> dict:
    return {
        "name": name, "dataset": "digits", "storage": prefix, "max_failures": 0,
        "train": {"epochs": EPOCHS, "batch_size": 64, "lr": GOOD_LR, "kl_warmup_epochs": 0},
        "checkpoint": {"every_epochs": 1, "keep": 1},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5},
        "search": {"num_samples": 1, "max_concurrent_trials": 2,
                   "space": {"lr": {"grid": [GOOD_LR, BAD_LR]}, "latent_dim": {"grid": list(LATENT_DIMS)}},
                   "early_stopping": {"grace_period": 1, "reduction_factor": 2}},
    }


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real MLflow tracking server (`mlflow server` on 127.0.0.1, SQLite backend, artifacts under `folder`);
    yields its URL. The first start creates its SQLite tables (20-30 s here)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
