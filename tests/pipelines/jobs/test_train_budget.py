"""A user's own small table through `vaepipe train` with a copy of the example table config, no Ray: the training
budget left at auto gives it thousands of optimizer steps and a latent code that carries information, where the
old fixed budget (20 epochs of 128 rows) gave it 40 steps; the run keeps the numbers it ran with."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.storage.layout import JOB_FILE

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "pipelines" / "training"))
from test_tabular_synthesis import mixed_table  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
OLD_FIXED_BUDGET = ["--set", "train.epochs=20", "--set", "train.batch_size=128", "--set", "train.kl_warmup_epochs=5",
                    "--set", "checkpoint.every_epochs=1"]


def train_small(store: Path, *extra: str) -> dict:
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--set", "name=small", "--set", "dataset=small",
                 "--storage", str(store), "--engine", "local", *extra]) == 0
    versions = sorted((store / "models" / "small").glob("[0-9]*"), key=lambda p: int(p.name))
    return json.loads((versions[-1] / "model.json").read_text())


@pytest.fixture(scope="module")
def small_table_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    csv = store / "small.csv"
    mixed_table(300, seed=5).to_csv(csv, index=False)
    assert main(["prepare", str(csv), "--name", "small", "--categorical", "region,grade", "--storage", str(store)]) == 0
    return store


def test_a_300_row_table_gets_the_step_budget_and_beats_the_old_fixed_epochs(small_table_store, capsys):
    auto = train_small(small_table_store)
    out = capsys.readouterr().out
    budget_line = next(line for line in out.splitlines() if "training budget" in line)
    steps = int(budget_line.split("= ")[1].split(" optimizer")[0].replace(",", ""))
    assert "auto: epochs, batch_size, kl_warmup_epochs, every_epochs" in budget_line and steps >= 3000
    assert len([line for line in out.splitlines() if line.strip().startswith("epoch ")]) <= 42  # not hundreds
    fixed = train_small(small_table_store, *OLD_FIXED_BUDGET)
    assert auto["metrics"]["val_kl"] > 2.0, auto["metrics"]  # nats per row: the code is used
    assert auto["metrics"]["val_neg_elbo"] < fixed["metrics"]["val_neg_elbo"] - 1.0, (auto["metrics"],
                                                                                    fixed["metrics"])
    # the card and the stored run keep the numbers it ran with, so a resume trains the same budget
    ran = auto["training"]["config"]
    assert isinstance(ran["train"]["epochs"], int) and ran["train"]["batch_size"] == 32
    run_id = auto["training"]["run_id"]
    stored = json.loads((small_table_store / "runs" / run_id / JOB_FILE).read_text())
    assert stored["train"]["epochs"] == ran["train"]["epochs"]
