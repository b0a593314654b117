"""In-process synthesis (`pipelines.training.tabular_synthesis`): the source's schema back, skewed columns'
quantiles kept, and no posterior collapse on a small table."""
import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.metrics.synthesis_quality import quality_scores
from pipelines.training.tabular_synthesis import SynthesisConfig, fit, training_budget

FAST = SynthesisConfig(steps=600, threads=1)


def mixed_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Related columns of every dtype a user hands over, in a deliberately mixed order."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=3.0, sigma=1.0, size=n)  # skewed, long right tail
    age = rng.integers(18, 80, size=n)
    return pd.DataFrame({
        "region": np.where(income > np.median(income), "north", "south"),
        "income": income,
        "age": age,                                                   # int64
        "children": np.minimum(age // 20, 3).astype(np.float64),      # whole numbers held in a float column
        "grade": np.where(age > 50, 2.0, 1.0),                        # a category coded as floats
        "spend": 0.3 * income + rng.normal(scale=2.0, size=n),
    })


@pytest.fixture(scope="module")
def mixed_fit():
    torch.manual_seed(0)
    table = mixed_table(1000)
    return table, fit(table, categorical=["region", "grade"], config=FAST)


def test_sampled_rows_have_the_source_columns_order_and_dtypes(mixed_fit):
    table, synthesizer = mixed_fit
    rows = synthesizer.sample(300, seed=1)
    assert list(rows.columns) == list(table.columns)
    assert rows.dtypes.astype(str).to_dict() == table.dtypes.astype(str).to_dict()
    assert set(rows["grade"]) <= {1.0, 2.0} and set(rows["region"]) <= {"north", "south"}
    assert np.all(np.mod(rows["children"], 1) == 0)
    assert rows["income"].between(table["income"].min(), table["income"].max()).all()


def test_the_same_seed_gives_the_same_rows(mixed_fit):
    _, synthesizer = mixed_fit
    pd.testing.assert_frame_equal(synthesizer.sample(50, seed=3), synthesizer.sample(50, seed=3))
    assert not synthesizer.sample(50, seed=3).equals(synthesizer.sample(50, seed=4))


def test_a_skewed_column_keeps_its_quantiles(mixed_fit):
    table, synthesizer = mixed_fit
    rows = synthesizer.sample(4000, seed=2)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        real, generated = np.quantile(table["income"], q), np.quantile(rows["income"], q)
        assert generated == pytest.approx(real, rel=0.25), f"income quantile {q}: {generated:.1f} vs {real:.1f}"


@pytest.mark.slow  # the full 3,000-step budget: ~4.5 CPU-s
def test_a_200_row_table_trains_without_collapse_and_keeps_pair_trends():
    table = mixed_table(200, seed=5)
    synthesizer = fit(table, categorical=["region", "grade"], config=SynthesisConfig(threads=1))
    assert synthesizer.report.kl > 1.0, synthesizer.report  # nats per row: the latent code carries information
    rows = synthesizer.sample(2000, seed=0)
    rng = np.random.default_rng(0)
    independent = pd.DataFrame({c: rng.choice(table[c].to_numpy(), 2000) for c in table.columns})
    ours = quality_scores(table, rows, ["region", "grade"])["column_pair_trends"]
    baseline = quality_scores(table, independent, ["region", "grade"])["column_pair_trends"]
    assert ours > baseline + 0.1, (ours, baseline)


def test_small_tables_get_small_batches_and_the_same_step_budget():
    (small_batch, small_steps), (large_batch, large_steps) = training_budget(200), training_budget(20_000)
    assert small_batch == 32 and large_batch == 512
    assert small_steps == large_steps
