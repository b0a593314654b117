"""Has a scoring run's score distribution moved away from the model's validation scores? (pure numpy)

A model card keeps its validation scores as quantiles (`calibration.val_quantiles` at
`val_quantile_levels`), so a run is compared with that distribution -- linear between the quantiles --
rather than with raw validation rows:

- **PSI** (population stability index) over `PSI_BINS` bins cut at the validation deciles, so each bin
  holds a tenth of the validation scores: PSI = Σ (a − e)·ln(a / e) over the bins' shares a (this run)
  and e (validation). The usual reading: below 0.1 stable, 0.1–0.25 a moderate shift, above 0.25 a shift
  worth acting on. Its sampling noise is about (bins − 1)·(1/rows + 1/validation rows): small samples drift.
- **KS**: the largest gap between this run's empirical CDF and the validation CDF.
- **anomaly rate** against the rate the same threshold flags on validation data (for the card's own
  threshold, the calibrated contamination): their ratio.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

PSI_BINS = 10
# an empty bin would make ln(a/e) infinite; this floor is the usual one (a share of 0.01 %)
PSI_FLOOR = 1e-4


def validation_cdf(values: np.ndarray, levels: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """The share of validation scores at or below each value: linear between the card's quantiles,
    0 below the smallest and 1 above the largest."""
    quantiles = np.asarray(quantiles, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    # Tied quantiles (many equal scores) keep their highest level: at or below that score lie all of them.
    # np.interp needs strictly increasing points.
    last = quantiles.size - 1 - np.unique(quantiles[::-1], return_index=True)[1]
    return np.interp(np.asarray(values, dtype=np.float64), quantiles[last], levels[last], left=0.0, right=1.0)


def population_stability_index(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Σ (a − e)·ln(a / e) over bins with shares `expected` and `actual` (each summing to 1); shares below
    `floor` count as `floor`. 0 for identical shares, growing as they part."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def score_psi(scores: np.ndarray, levels: np.ndarray, quantiles: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of `scores` against the validation distribution, over `bins` bins cut at its 1/bins quantiles."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    # inner edges at the validation quantiles 1/bins … (bins-1)/bins; a flat stretch of quantiles (ties)
    # merges bins instead of making empty ones
    edges = np.unique(np.interp(np.linspace(0.0, 1.0, bins + 1)[1:-1], levels, quantiles))
    expected = np.diff(np.concatenate([[0.0], validation_cdf(edges, levels, quantiles), [1.0]]))
    actual = np.bincount(np.searchsorted(edges, scores, side="left"), minlength=edges.size + 1) / scores.size
    return population_stability_index(expected, actual)


def score_ks(scores: np.ndarray, levels: np.ndarray, quantiles: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance: max |F_run(x) − F_validation(x)| over x."""
    # sorted in the scores' own dtype (float32 sorts in ~60 % of the time), then widened: widening keeps the order
    ordered = np.sort(np.asarray(scores)).astype(np.float64, copy=False)
    n = ordered.size
    if n == 0:
        return 0.0
    reference = validation_cdf(ordered, levels, quantiles)
    above = np.arange(1, n + 1) / n - reference  # the run's CDF just after each score
    below = reference - np.arange(0, n) / n      # and just before it
    return float(max(above.max(), below.max()))


def expected_anomaly_rate(levels: np.ndarray, quantiles: np.ndarray, threshold: float) -> float:
    """The share of validation scores above `threshold`: the rate the threshold flags when nothing drifted."""
    return float(1.0 - validation_cdf(np.asarray([threshold]), levels, quantiles)[0])


def drift_figures(scores: np.ndarray, calibration: dict, threshold: float, anomaly_rate: float) -> dict:
    """PSI, KS and the anomaly rate against the expected one, for a run's `scores` and a card's `calibration`."""
    levels = np.asarray(calibration["val_quantile_levels"], dtype=np.float64)
    quantiles = np.asarray(calibration["val_quantiles"], dtype=np.float64)
    expected = expected_anomaly_rate(levels, quantiles, threshold)
    return {
        "psi": score_psi(scores, levels, quantiles),
        "psi_bins": PSI_BINS,
        "ks": score_ks(scores, levels, quantiles),
        "anomaly_rate": float(anomaly_rate),
        "expected_anomaly_rate": expected,
        # None when the threshold flags no validation score at all: no rate to compare with
        "anomaly_rate_ratio": float(anomaly_rate / expected) if expected > 0 else None,
        "validation_rows": calibration.get("val_rows"),
    }


def drift_alarms(figures: dict, psi_limit: Optional[float], ks_limit: Optional[float],
                 rate_ratio_limit: Optional[float]) -> list[str]:
    """One line per figure above its limit (a limit of None is never exceeded); empty when none is."""
    alarms = []
    if psi_limit is not None and figures["psi"] > psi_limit:
        alarms.append(f"PSI {figures['psi']:.3f} > {psi_limit:g}")
    if ks_limit is not None and figures["ks"] > ks_limit:
        alarms.append(f"KS {figures['ks']:.3f} > {ks_limit:g}")
    ratio = figures["anomaly_rate_ratio"]
    if rate_ratio_limit is not None and ratio is not None and ratio > rate_ratio_limit:
        alarms.append(f"anomaly rate {figures['anomaly_rate']:.2%} is {ratio:.1f}× the "
                      f"{figures['expected_anomaly_rate']:.2%} expected (limit {rate_ratio_limit:g}×)")
    return alarms
