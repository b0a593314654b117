import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor

from pipelines.datasets.factor_table import FACTOR_NAMES, LEVELS, NOISE_STD, NUM_COLUMNS, factor_map, factor_table


def test_rows_and_factors_have_the_promised_layout():
    table, factors = factor_table(500, seed=0)
    assert table.shape == (500, NUM_COLUMNS) and list(factors.columns) == list(FACTOR_NAMES)
    assert np.isin(factors.to_numpy(), LEVELS).all()
    assert np.all(np.abs(table.std().to_numpy() - 1.0) < 0.3)


def test_the_same_seed_gives_the_same_rows_and_the_map_never_changes():
    table, factors = factor_table(200, seed=4)
    again, factors_again = factor_table(200, seed=4)
    pd.testing.assert_frame_equal(table, again)
    pd.testing.assert_frame_equal(factors, factors_again)
    other, other_factors = factor_table(200, seed=5)
    assert not table.equals(other)
    # Both seeds' rows are the one map of their factors, plus noise of NOISE_STD.
    for rows, f in ((table, factors), (other, other_factors)):
        residual = rows.to_numpy() - factor_map(f.to_numpy())
        assert residual.std() == pytest.approx(NOISE_STD, rel=0.1)


def test_the_factors_are_recoverable_from_the_rows_and_the_map_is_not_linear():
    table, factors = factor_table(4000, seed=1)
    train, test = slice(0, 3000), slice(3000, None)
    assert KNeighborsRegressor(10).fit(table[train], factors[train]).score(table[test], factors[test]) > 0.9
    # A linear map of the factors explains under 80 % of the columns' variance; the noise alone leaves ~0.25 %.
    assert LinearRegression().fit(factors, table).score(factors, table) < 0.8
