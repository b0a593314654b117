"""The quantile transform of numeric columns and the source schema recorded by prepare (dtypes, order)."""
import numpy as np
import pandas as pd
import pytest

from pipelines.datasets.features import features_to_table, table_features
from pipelines.datasets.manifest import DatasetManifest, SplitRule, quantile_normal, quantile_normal_inverse
from pipelines.datasets.preparation import PrepareConfig, build_arrow_table, numeric_dtype, numeric_stats
from pipelines.datasets.sources import SourceTable


def test_quantile_transform_maps_any_shape_to_a_standard_normal():
    values = np.random.default_rng(0).lognormal(0.0, 2.0, 20_000)  # heavy right tail
    column = numeric_stats("amount", values, "float64", transform="quantile")
    features = column.to_model(values)[:, 0]
    assert abs(features.mean()) < 0.02 and abs(features.std() - 1) < 0.03
    assert np.abs(features).max() < 3.1  # an outlier weighs no more than ~3 standard deviations


def test_quantile_transform_round_trips_and_keeps_a_spike_at_zero():
    values = np.r_[np.zeros(700), np.random.default_rng(1).exponential(5.0, 300)]
    quantiles = np.quantile(values, np.linspace(0, 1, 1001))
    drawn = quantile_normal_inverse(np.random.default_rng(2).standard_normal(50_000), quantiles)
    assert np.mean(drawn == 0) == pytest.approx(0.7, abs=0.01)
    assert np.quantile(drawn, 0.9) == pytest.approx(np.quantile(values, 0.9), rel=0.05)
    middle = np.quantile(values, [0.8, 0.9, 0.95])
    assert quantile_normal_inverse(quantile_normal(middle, quantiles), quantiles) == pytest.approx(middle, rel=1e-3)


def test_numeric_dtype_is_the_source_dtype_or_inferred_from_csv_text():
    assert numeric_dtype(pd.Series([1.0, 2.0]), np.array([1.0, 2.0])) == "float64"
    assert numeric_dtype(pd.Series(["1", "2"]), np.array([1.0, 2.0])) == "int64"
    assert numeric_dtype(pd.Series(["1.5", "2"]), np.array([1.5, 2.0])) == "float64"


def test_rows_come_back_in_the_source_order_with_its_dtypes():
    frame = pd.DataFrame({"flag": [True, False] * 10, "count": np.arange(20, dtype=np.int64),
                          "code": [1.0, 2.0] * 10, "whole": np.arange(20, dtype=np.float64), "name": ["a", "b"] * 10})
    source = SourceTable("tabular", "test", np.asarray([str(i) for i in range(20)], dtype=object), table=frame)
    config = PrepareConfig(name="t", source="test", categorical=["flag", "code"],
                           split={"train": 1.0, "val": 0.0, "test": 0.0})
    arrow, fields = build_arrow_table(source, config)
    manifest = DatasetManifest(name="t", kind="tabular", source="test", rows=20, split=SplitRule(fractions=config.split),
                               arrow_schema={}, shards=[], created_at="now", **fields)
    assert manifest.column_order == list(frame.columns)
    back = features_to_table(manifest, table_features(manifest, {c: frame[c].to_numpy() for c in frame.columns}))
    assert list(back.columns) == list(frame.columns)
    assert back.dtypes.astype(str).to_dict() == frame.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(back, frame, check_exact=False, rtol=1e-5)
