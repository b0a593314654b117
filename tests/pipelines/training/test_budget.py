"""`train.epochs`, `train.batch_size`, `train.kl_warmup_epochs` and `checkpoint.every_epochs` left at `auto`
(`pipelines.training.budget`): small tables get as many optimizer steps as large ones, images keep 20 epochs,
numbers a user gave are kept, and nothing unresolved reaches a worker."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pipelines.datasets.preparation import PrepareConfig, prepare_in_memory
from pipelines.datasets.sources import SourceTable, load_builtin
from pipelines.training.budget import TABLE_STEPS, early_best_warning, plan_budget, with_budget
from pipelines.training.config import TrainJobConfig
from pipelines.training.epoch_console import MAX_EPOCH_LINES, EpochEta
from pipelines.training.worker_config import WorkerConfig
from pipelines.training.sweep_config import SweepJobConfig


def table_manifest(rows: int):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows),
                          "c": rng.choice(["x", "y"], size=rows)})
    source = SourceTable("tabular", "generated", np.array([str(i) for i in range(rows)], dtype=object), table=frame)
    manifest, _ = prepare_in_memory(source, PrepareConfig(name="t", source="generated"))
    return manifest


def config(**train) -> TrainJobConfig:
    return TrainJobConfig(name="m", dataset="t", train=train)


def total_steps(budget) -> int:
    return budget.epochs * budget.steps_per_epoch


def test_a_300_row_table_gets_as_many_steps_as_a_30000_row_one():
    small, large = table_manifest(300), table_manifest(30_000)
    small_budget, large_budget = plan_budget(config(), small, processes=1), plan_budget(config(), large, processes=1)
    assert small_budget.batch_size == 32 and large_budget.batch_size == 512
    for budget in (small_budget, large_budget):
        assert TABLE_STEPS <= total_steps(budget) < TABLE_STEPS + budget.steps_per_epoch
    # the old fixed budget (20 epochs of 128 rows on 2 workers) gave the small table 20 steps
    assert total_steps(plan_budget(config(epochs=20, batch_size=128), small, processes=2)) == 20
    assert small_budget.auto == ("epochs", "batch_size", "kl_warmup_epochs", "every_epochs")


def test_workers_share_the_rows_of_a_step_and_a_large_table_runs_at_least_ten_epochs():
    manifest = table_manifest(200_000)
    one, two = plan_budget(config(), manifest, processes=1), plan_budget(config(), manifest, processes=2)
    assert (one.batch_size, two.batch_size) == (512, 256)
    assert one.epochs == two.epochs == 10  # 3,000 steps are under 10 epochs of 200k rows


def test_warm_up_and_checkpoints_follow_the_epochs():
    budget = plan_budget(config(), table_manifest(300), processes=1)
    assert budget.kl_warmup_epochs == round(0.1 * budget.epochs)
    assert budget.epochs // budget.every_epochs <= 20 and budget.every_epochs > 1
    digits = prepare_in_memory(load_builtin("digits"), PrepareConfig(name="digits", source="digits"))[0]
    images = plan_budget(config(), digits, processes=2)
    assert (images.epochs, images.batch_size, images.kl_warmup_epochs, images.every_epochs) == (20, 128, 2, 1)


def test_numbers_a_user_gave_are_kept():
    given = TrainJobConfig(name="m", dataset="t", train={"epochs": 7, "batch_size": 50, "kl_warmup_epochs": 0},
                           checkpoint={"every_epochs": 3})
    budget = plan_budget(given, table_manifest(300), processes=1)
    assert (budget.epochs, budget.batch_size, budget.kl_warmup_epochs, budget.every_epochs, budget.auto) == (
        7, 50, 0, 3, ())
    assert "as configured" in budget.line(1)


def test_the_resolved_config_is_plain_numbers_and_a_sweep_checkpoints_every_epoch():
    manifest = table_manifest(300)
    resolved = with_budget(config(), plan_budget(config(), manifest, processes=1))
    assert isinstance(resolved.train.epochs, int) and isinstance(resolved.checkpoint.every_epochs, int)
    sweep = SweepJobConfig(name="m", dataset="t", search={"space": {"latent_dim": {"grid": [4, 8]}}})
    assert plan_budget(sweep, manifest, processes=1, sweep=True).every_epochs == 1
    assert type(with_budget(sweep, plan_budget(sweep, manifest, 1, sweep=True))) is SweepJobConfig


def test_a_worker_refuses_a_budget_left_at_auto():
    manifest = table_manifest(300)
    with pytest.raises(ValidationError, match="train.epochs, train.batch_size, train.kl_warmup_epochs still auto"):
        WorkerConfig(loop=config().train, spec={}, manifest=manifest, checkpoint_every=1, threads=1, run_uri="x")


def test_an_early_best_epoch_is_a_warning_naming_the_cure():
    assert "first 5%" in early_best_warning(4, 100) and "--transform" in early_best_warning(4, 100)
    assert early_best_warning(30, 100) is None
    assert early_best_warning(1, 15) is None  # a short run has no "early" to speak of


def test_a_run_of_hundreds_of_epochs_prints_about_forty_lines_with_the_first_and_the_last():
    eta = EpochEta(375)
    metrics = {"beta": 1.0, "train_loss": 1.0, "val_neg_elbo": 1.0, "val_recon_nll": 1.0, "val_kl": 0.0,
               "samples_per_s": 1.0, "epoch_seconds": 0.1}
    shown = [epoch for epoch in range(1, 376) if eta.line({**metrics, "epoch": epoch}) is not None]
    assert shown[0] == 1 and shown[-1] == 375 and len(shown) <= MAX_EPOCH_LINES + 2
    assert eta.line({"epoch": 7, "diverged_because": "train_loss became NaN/inf"}) is not None
    every = EpochEta(15)
    assert all(every.line({**metrics, "epoch": epoch}) for epoch in range(1, 16))
