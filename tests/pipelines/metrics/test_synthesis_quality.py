"""SDMetrics' quality definitions and the DCR privacy share, on tables whose answer is known by construction.
(benchmarks/synthesis.py checks the same functions against sdmetrics itself on real tables.)"""
import numpy as np
import pandas as pd
import pytest

from pipelines.metrics.synthesis_quality import (
    column_pair_trend_scores, column_shape_scores, contingency_similarity, correlation_similarity,
    dcr_closer_to_training_share, distance_to_closest_record, ks_complement, quality_scores, tv_complement,
)


def related_table(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + 0.1 * rng.normal(size=n),
                         "level": np.where(x > 0, "high", "low")})


def test_a_table_scored_against_itself_is_perfect():
    table = related_table()
    assert quality_scores(table, table, ["level"]) == {"column_shapes": 1.0, "column_pair_trends": 1.0, "overall": 1.0}


def test_ks_complement_is_one_minus_the_largest_cdf_gap():
    # real 0..9, synthetic 5..14: the empirical CDFs differ by at most one half
    assert ks_complement(pd.Series(np.arange(10.0)), pd.Series(np.arange(5.0, 15.0))) == pytest.approx(0.5)


def test_tv_complement_counts_levels_missing_from_either_side():
    real = pd.Series(["a"] * 50 + ["b"] * 50)
    synthetic = pd.Series(["a"] * 50 + ["c"] * 50)
    assert tv_complement(real, synthetic) == pytest.approx(0.5)
    assert tv_complement(real, pd.Series(["c"] * 10)) == pytest.approx(0.0)


def test_column_shapes_use_tv_for_categorical_and_ks_for_numeric_columns():
    real = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "c": ["1", "1", "2", "2"]})
    synthetic = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "c": ["1", "1", "1", "1"]})
    assert column_shape_scores(real, synthetic, ["c"]) == {"n": 1.0, "c": pytest.approx(0.5)}


def test_a_flipped_correlation_scores_one_minus_r():
    real = related_table()[["x", "y"]]
    flipped = real.assign(y=-real["y"])
    r = np.corrcoef(real["x"], real["y"])[0, 1]
    assert correlation_similarity(real, flipped) == pytest.approx(1 - r)


def test_contingency_similarity_of_independent_columns_against_dependent_ones():
    real = pd.DataFrame({"a": ["0", "0", "1", "1"], "b": ["0", "0", "1", "1"]})
    independent = pd.DataFrame({"a": ["0", "0", "1", "1"], "b": ["0", "1", "0", "1"]})
    # real puts 1/2 on (0,0) and (1,1); independent 1/4 on each of the four cells: TVD 1/2
    assert contingency_similarity(real, independent) == pytest.approx(0.5)


def test_pairs_the_real_table_does_not_relate_are_left_out():
    rng = np.random.default_rng(1)
    real = related_table().assign(noise=rng.normal(size=400))
    scores = column_pair_trend_scores(real, real, ["level"])
    assert scores[("x", "y")] == 1.0 and scores[("x", "level")] == 1.0
    assert np.isnan(scores[("x", "noise")]) and np.isnan(scores[("level", "noise")])
    assert not np.isnan(column_pair_trend_scores(real, real, ["level"], 0.0, 0.0)[("x", "noise")])


def test_shuffling_one_column_breaks_its_pairs_but_not_its_shape():
    real = related_table()
    shuffled = real.assign(y=np.random.default_rng(2).permutation(real["y"].to_numpy()))
    scores = quality_scores(real, shuffled, ["level"])
    assert scores["column_shapes"] == 1.0
    assert scores["column_pair_trends"] < 0.75


def test_distance_to_closest_record_is_the_range_scaled_mean_over_columns():
    reference = pd.DataFrame({"n": [0.0, 10.0], "c": ["a", "b"]})
    rows = pd.DataFrame({"n": [1.0, 10.0, 30.0], "c": ["b", "b", "z"]})
    # row 0: to (0,a) (0.1 + 1)/2, to (10,b) (0.9 + 0)/2 → 0.45; row 1 equals (10,b); row 2: capped 1 + 1
    assert distance_to_closest_record(rows, reference, ["c"]) == pytest.approx([0.45, 0.0, 1.0])


def test_a_missing_value_is_0_from_another_missing_value_and_1_from_any_value_as_sdmetrics_counts_it():
    # gaps made every distance NaN, and the share of rows closer to training 0 % (NaN < NaN is false); the
    # column's range is its present values' (sdmetrics' calculate_dcr, checked equal on a holed table)
    reference = pd.DataFrame({"n": [0.0, np.nan, 10.0], "c": ["a", None, "b"]})
    rows = pd.DataFrame({"n": [np.nan, np.nan, 5.0], "c": [None, "a", "a"]})
    # row 0 equals reference row 1; row 1: (1 + 0)/2 to (0, a); row 2: (0.5 + 0)/2 to (0, a)
    assert distance_to_closest_record(rows, reference, ["c"]) == pytest.approx([0.0, 0.5, 0.25])
    table = related_table(600)
    table.loc[::4, "x"] = np.nan
    training, holdout = table.iloc[:300], table.iloc[300:]
    assert dcr_closer_to_training_share(training, training, holdout, ["level"]) == 1.0


def test_dcr_share_is_one_for_copies_of_training_rows_and_zero_for_copies_of_holdout_rows():
    table = related_table(600)
    training, holdout = table.iloc[:300], table.iloc[300:]
    assert dcr_closer_to_training_share(training, training, holdout, ["level"]) == 1.0
    assert dcr_closer_to_training_share(holdout, training, holdout, ["level"]) == 0.0


def test_dcr_share_of_fresh_rows_from_the_same_distribution_is_near_one_half():
    training, holdout, fresh = related_table(900, 3), related_table(300, 4), related_table(2000, 5)
    # the training rows are subsampled to the holdout's size first, so neither side is favoured
    assert dcr_closer_to_training_share(fresh, training, holdout, ["level"]) == pytest.approx(0.5, abs=0.05)
