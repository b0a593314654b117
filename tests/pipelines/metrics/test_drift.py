"""Drift of a run's scores from the model card's validation quantiles: PSI, KS, the anomaly rate."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipelines.metrics.anomaly import calibration_card
from pipelines.metrics.drift import (
    drift_alarms,
    drift_figures,
    expected_anomaly_rate,
    population_stability_index,
    score_ks,
    score_psi,
)

RNG = np.random.default_rng(7)
VALIDATION = RNG.normal(size=5000)
CARD = calibration_card(VALIDATION, contamination=0.05)
LEVELS, QUANTILES = np.asarray(CARD["val_quantile_levels"]), np.asarray(CARD["val_quantiles"])


def test_psi_is_zero_for_equal_shares_and_the_textbook_value_otherwise():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)


def test_an_empty_bin_gives_a_finite_psi():
    assert math.isfinite(population_stability_index([0.5, 0.5], [1.0, 0.0]))


def test_scores_from_the_validation_distribution_do_not_drift():
    scores = RNG.normal(size=20000)
    assert score_psi(scores, LEVELS, QUANTILES) < 0.02
    assert score_ks(scores, LEVELS, QUANTILES) < 0.03


def test_a_shift_of_half_a_standard_deviation_drifts_past_the_usual_limits():
    scores = RNG.normal(loc=0.5, size=20000)
    assert score_psi(scores, LEVELS, QUANTILES) > 0.2
    # the KS distance of N(0.5, 1) from N(0, 1) is 2Φ(0.25) − 1
    assert score_ks(scores, LEVELS, QUANTILES) == pytest.approx(2 * stats.norm.cdf(0.25) - 1, abs=0.03)


def test_ks_is_scipys_against_a_distribution_the_quantiles_describe_exactly():
    levels = np.linspace(0, 1, 201)  # the quantiles of U(0, 1) are the levels themselves
    scores = RNG.uniform(size=300) ** 1.3
    assert score_ks(scores, levels, levels) == pytest.approx(stats.kstest(scores, "uniform").statistic, abs=1e-12)


def test_tied_quantiles_merge_bins_instead_of_dividing_by_zero():
    levels = np.linspace(0, 1, 201)
    discrete = np.quantile(np.repeat([1.0, 2.0, 3.0], [50, 30, 20]), levels)
    psi = score_psi(np.repeat([1.0, 2.0, 3.0], [50, 30, 20]), levels, discrete)
    assert math.isfinite(psi) and psi < 0.1  # "stable"; the linear CDF smears each jump a little


def test_the_cards_threshold_flags_its_contamination_of_validation_scores():
    assert expected_anomaly_rate(LEVELS, QUANTILES, CARD["threshold"]) == pytest.approx(0.05, abs=0.003)


def test_figures_compare_the_anomaly_rate_with_the_expected_one():
    figures = drift_figures(RNG.normal(size=1000), CARD, CARD["threshold"], anomaly_rate=0.15)
    assert figures["anomaly_rate_ratio"] == pytest.approx(3.0, rel=0.07)
    assert figures["validation_rows"] == 5000 and figures["psi_bins"] == 10
    above_every_score = drift_figures(RNG.normal(size=10), CARD, QUANTILES[-1] + 1, anomaly_rate=0.0)
    assert above_every_score["expected_anomaly_rate"] == 0.0 and above_every_score["anomaly_rate_ratio"] is None


def test_alarms_name_each_figure_above_its_limit_and_none_limits_never_alarm():
    figures = {"psi": 0.4, "ks": 0.2, "anomaly_rate": 0.2, "expected_anomaly_rate": 0.05, "anomaly_rate_ratio": 4.0}
    assert drift_alarms(figures, 0.25, 0.1, 3.0) == [
        "PSI 0.400 > 0.25", "KS 0.200 > 0.1", "anomaly rate 20.00% is 4.0× the 5.00% expected (limit 3×)"]
    assert drift_alarms(figures, None, None, None) == []
    assert drift_alarms(figures, 0.5, 0.3, 5.0) == []


def test_no_scores_no_drift():
    assert score_psi(np.empty(0), LEVELS, QUANTILES) == 0.0 and score_ks(np.empty(0), LEVELS, QUANTILES) == 0.0
