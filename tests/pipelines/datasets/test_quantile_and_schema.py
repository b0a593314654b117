"""The quantile transform of numeric columns and the source schema recorded by prepare (dtypes, order)."""
import numpy as np
import pandas as pd
import pytest

from pipelines.datasets.features import as_stored, features_to_table, table_features
from pipelines.datasets.manifest import DatasetManifest, SplitRule, quantile_normal, quantile_normal_inverse
from pipelines.datasets.preparation import PrepareConfig, build_arrow_table, numeric_dtype, numeric_stats
from pipelines.datasets.sources import SourceError, SourceTable


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


def _prepared(frame: pd.DataFrame, **config) -> tuple[DatasetManifest, pd.DataFrame]:
    """The manifest and the stored rows prepare makes of `frame`."""
    source = SourceTable("tabular", "test", np.asarray([str(i) for i in range(len(frame))], dtype=object), table=frame)
    config = PrepareConfig(name="t", source="test", split={"train": 1.0, "val": 0.0, "test": 0.0}, **config)
    arrow, fields = build_arrow_table(source, config)
    return DatasetManifest(name="t", kind="tabular", source="test", rows=len(frame),
                           split=SplitRule(fractions=config.split), arrow_schema={}, shards=[], created_at="now",
                           **fields), arrow.to_pandas()


def _manifest_of(frame: pd.DataFrame, **config) -> DatasetManifest:
    return _prepared(frame, **config)[0]


def test_timestamps_dates_durations_and_booleans_come_back_in_their_own_dtypes():
    """Were int64 microseconds and int64 0/1 in generated rows. Timestamps (any unit, with or without a time
    zone), dates and durations are modelled as microseconds and come back in their dtype; booleans, not
    declared, are a category of two levels and come back as booleans."""
    n = 40
    moments = pd.date_range("2024-03-01", periods=n, freq="37min")
    frame = pd.DataFrame({
        "at": moments.as_unit("us"),
        "at_paris": moments.tz_localize("UTC").tz_convert("Europe/Paris").as_unit("ns"),
        "day": [moment.date() for moment in moments],
        "took": pd.to_timedelta(np.arange(n) * 90, unit="s").as_unit("ns"),
        "ok": [True, False, False, True] * (n // 4),
    })
    manifest, stored = _prepared(frame)
    assert [c.name for c in manifest.categorical] == ["ok"]
    assert {c.name: c.dtype for c in manifest.numeric} == {"at": "datetime64[us]", "at_paris": "datetime64[ns, Europe/Paris]",
                                                          "day": "date", "took": "timedelta64[ns]"}
    back = features_to_table(manifest, table_features(manifest, {c: frame[c] for c in frame.columns}))
    assert back.dtypes.astype(str).to_dict() == frame.dtypes.astype(str).to_dict()
    assert back["day"].tolist() == frame["day"].tolist()  # datetime.date objects
    assert back["ok"].tolist() == frame["ok"].tolist()
    for column in ("at", "at_paris", "took"):  # features are float32: within a few ms over a day's spread
        assert (back[column] - frame[column]).abs().max() < pd.Timedelta(milliseconds=10), column
    # generated rows compared with stored ones (generate's quality, augment) are first put in the stored form
    again = as_stored(manifest, back)
    assert again["ok"].tolist() == stored["ok"].tolist()
    for column in ("at", "at_paris", "day", "took"):
        np.testing.assert_allclose(again[column], stored[column], rtol=0, atol=10_000)  # 10 ms in microseconds


def test_a_missing_timestamp_is_missing_not_the_year_1677():
    """pandas stores NaT as the smallest int64: it was read as a number, -9.2e18 microseconds, and modelled."""
    frame = pd.DataFrame({"at": pd.to_datetime(["2024-01-01", None, "2024-01-03"] * 10), "a": np.arange(30.0)})
    with pytest.raises(SourceError, match=r"column 'at' has 10 NaN/inf value\(s\), first at row '1'"):
        _manifest_of(frame)
    manifest = _manifest_of(frame, impute="median")
    at = next(c for c in manifest.numeric if c.name == "at")
    assert pd.Timestamp(at.min, unit="us") == pd.Timestamp("2024-01-01")


def test_generated_timestamps_keep_the_resolution_of_the_training_values():
    """A datetime64 column of dates (every value at midnight) was generated with any time of day, down to the
    microsecond (2026-02-08 13:09:36.235069); hourly and whole-second columns the same. Each comes back at the
    coarsest of a day, hour, minute, second or millisecond that every train value is a whole multiple of."""
    from pipelines.datasets.column_stats import NumericSummary
    from pipelines.datasets.column_values import numbers

    rng = np.random.default_rng(0)
    n = 200
    start = pd.Timestamp("2026-01-01")
    frame = pd.DataFrame({
        "day": start + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
        "hour": start + pd.to_timedelta(rng.integers(0, 3000, n), unit="h"),
        "took": pd.to_timedelta(rng.integers(0, 1000, n), unit="s"),
        "exact": start + pd.to_timedelta(rng.integers(0, 10**9, n), unit="us"),
    })
    manifest = _manifest_of(frame)
    assert {c.name: c.resolution for c in manifest.numeric} == {"day": 86_400e6, "hour": 3_600e6, "took": 1e6,
                                                                "exact": None}
    features = table_features(manifest, {c: frame[c] for c in frame.columns})
    back = features_to_table(manifest, features + rng.normal(scale=0.05, size=features.shape).astype(np.float32))
    assert (back["day"] == back["day"].dt.normalize()).all() and back["day"].nunique() > 20
    assert (back["hour"] == back["hour"].dt.floor("h")).all()
    assert (back["took"] == back["took"].dt.floor("s")).all()
    assert (back["exact"] != back["exact"].dt.floor("ms")).any()  # no resolution learned: left as generated
    # the statistics pass merges blocks: the same step as the whole column's
    values = numbers(frame["hour"])
    assert NumericSummary.of(values[:77]).merge(NumericSummary.of(values[77:])).step == NumericSummary.of(values).step
