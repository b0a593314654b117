"""How close generated rows are to real ones: SDMetrics' QualityReport scores, and a privacy figure.

The definitions follow `sdmetrics` 0.32 (SDV's QualityReport), so the numbers can be put beside
SDV users' numbers; `benchmarks/synthesis.py` checks them against `sdmetrics` itself (it needs
pandas < 3, so it cannot run in this package's environment). A column is "categorical" when it is
named in `categorical`, otherwise numerical. Missing values are dropped per column / pair.

- Column shapes: the mean over columns of KSComplement (numerical: 1 − the two-sample
  Kolmogorov–Smirnov statistic) or TVComplement (categorical: 1 − the total variation distance
  between the level frequencies).
- Column-pair trends: the mean over the column pairs *that are related in the real table* of
  CorrelationSimilarity (two numerical columns: 1 − |Pearson r real − Pearson r synthetic| / 2,
  counted only when |r real| > 0.5 and neither column is constant in either table) or
  ContingencySimilarity (any other pair: 1 − the total variation distance between the two
  tables' joint frequencies, counted only when the real pair's Cramér's V > 0.3; a numerical
  column is cut into 10 equal-width bins of *its own table's* range first — real and synthetic
  are binned separately, as sdmetrics does). These thresholds are sdmetrics 0.32's QualityReport
  defaults; pass 0 to count every pair (its metrics' own default). No pair over them: NaN.
- Overall: the mean of the two (of the one that is not NaN).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

# sdmetrics rounds before its KS test (sys.float_info.dig - 1 decimals) so float noise is not a difference
KS_DECIMALS = 14
PAIR_BINS = 10
# sdmetrics 0.32 QualityReport: a pair counts when the real table relates its columns this much
REAL_CORRELATION_THRESHOLD = 0.5   # |Pearson r| of two numerical columns
REAL_ASSOCIATION_THRESHOLD = 0.3   # Cramér's V of any other pair (numerical columns binned)


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 − the two-sample KS statistic of a numerical column (1: the same empirical distribution)."""
    real, synthetic = real.dropna().astype(float).round(KS_DECIMALS), synthetic.dropna().astype(float).round(KS_DECIMALS)
    return float(1.0 - ks_2samp(real, synthetic).statistic)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 − the total variation distance between the level frequencies of a categorical column."""
    p = real.dropna().value_counts(normalize=True)
    q = synthetic.dropna().value_counts(normalize=True)
    levels = p.index.union(q.index)
    return float(1.0 - 0.5 * (p.reindex(levels, fill_value=0.0) - q.reindex(levels, fill_value=0.0)).abs().sum())


def column_shape_scores(real: pd.DataFrame, synthetic: pd.DataFrame, categorical: Sequence[str]) -> dict[str, float]:
    """Per column of `real`: TVComplement for categorical columns, KSComplement for the others."""
    return {c: tv_complement(real[c], synthetic[c]) if c in categorical else ks_complement(real[c], synthetic[c])
            for c in real.columns}


def equal_width_bins(values: pd.Series, bins: int = PAIR_BINS) -> np.ndarray:
    """Bin index per value over `bins` equal-width bins of the values' own range (numpy's
    histogram_bin_edges + digitize, as sdmetrics' ColumnPairTrends; the maximum gets its own bin)."""
    x = values.to_numpy(dtype=float)
    edges = np.histogram_bin_edges(x[np.isfinite(x)], bins=bins)
    return np.digitize(x, bins=edges)


def correlation_similarity(real: pd.DataFrame, synthetic: pd.DataFrame, real_threshold: float = 0.0) -> float:
    """1 − |Pearson r real − Pearson r synthetic| / 2 of a two-column numerical pair; NaN when a
    column is constant in either table or |r real| <= `real_threshold` (sdmetrics leaves such a pair out)."""
    real, synthetic = real.dropna(), synthetic.dropna()
    if (real.nunique() < 2).any() or (synthetic.nunique() < 2).any():
        return float("nan")
    a, b = real.columns
    r_real = np.corrcoef(real[a].astype(float), real[b].astype(float))[0, 1]
    if abs(r_real) <= real_threshold:
        return float("nan")
    r_synthetic = np.corrcoef(synthetic[a].astype(float), synthetic[b].astype(float))[0, 1]
    return float(1.0 - abs(r_real - r_synthetic) / 2.0)


def contingency_similarity(real: pd.DataFrame, synthetic: pd.DataFrame, real_threshold: float = 0.0) -> float:
    """1 − the total variation distance between two discrete columns' joint frequencies; NaN when the
    real pair's Cramér's V is <= `real_threshold` (> 0 only; or a level is alone in its column)."""
    from scipy.stats.contingency import association

    def joint(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby(list(frame.columns), dropna=False).size() / len(frame)

    if real_threshold > 0:
        table = real.groupby(list(real.columns), dropna=False).size().unstack(fill_value=0)
        if table.to_numpy().sum() == 0 or min(table.shape) < 2:
            return float("nan")
        if association(table.to_numpy(), method="cramer") <= real_threshold:
            return float("nan")
    p, q = joint(real), joint(synthetic)
    cells = p.index.union(q.index)
    return float(1.0 - 0.5 * (p.reindex(cells, fill_value=0.0) - q.reindex(cells, fill_value=0.0)).abs().sum())


def column_pair_trend_scores(real: pd.DataFrame, synthetic: pd.DataFrame, categorical: Sequence[str],
                             correlation_threshold: float = REAL_CORRELATION_THRESHOLD,
                             association_threshold: float = REAL_ASSOCIATION_THRESHOLD,
                             ) -> dict[tuple[str, str], float]:
    """Per pair of `real`'s columns (in column order): CorrelationSimilarity for two numerical
    columns, ContingencySimilarity otherwise (numerical columns binned, each table by its own range);
    NaN for a pair the real table does not relate over the thresholds."""
    numeric = [c for c in real.columns if c not in categorical]
    real_discrete = real.copy()
    synthetic_discrete = synthetic[list(real.columns)].copy()
    for column in numeric:
        real_discrete[column] = equal_width_bins(real[column])
        synthetic_discrete[column] = equal_width_bins(synthetic[column])
    scores = {}
    for a, b in itertools.combinations(real.columns, 2):
        if a in numeric and b in numeric:
            scores[(a, b)] = correlation_similarity(real[[a, b]], synthetic[[a, b]], correlation_threshold)
        else:
            scores[(a, b)] = contingency_similarity(real_discrete[[a, b]], synthetic_discrete[[a, b]],
                                                    association_threshold)
    return scores


def pair_trends_text(value: Optional[float]) -> str:
    """A stored column-pair trends score as a person reads it: None (stored for NaN, which JSON has no word for)
    means no column pair of the real rows is related over the thresholds, as SDMetrics leaves it."""
    return "none (no column pair of the real rows is related)" if value is None else f"{value:.3f}"


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, categorical: Sequence[str],
                   correlation_threshold: float = REAL_CORRELATION_THRESHOLD,
                   association_threshold: float = REAL_ASSOCIATION_THRESHOLD) -> dict[str, float]:
    """SDMetrics QualityReport's numbers: {"column_shapes", "column_pair_trends", "overall"} in [0, 1],
    higher is closer; `synthetic` must have `real`'s columns (others are ignored)."""
    missing = [c for c in real.columns if c not in synthetic.columns]
    if missing:
        raise ValueError(f"synthetic rows lack column(s) {missing} of the real table")
    shapes = float(np.mean(list(column_shape_scores(real, synthetic, categorical).values())))
    pairs = list(column_pair_trend_scores(real, synthetic, categorical, correlation_threshold,
                                          association_threshold).values())
    trends = float(np.nanmean(pairs)) if pairs and not np.all(np.isnan(pairs)) else float("nan")
    overall = float(np.nanmean([shapes, trends]))
    return {"column_shapes": shapes, "column_pair_trends": trends, "overall": overall}


# --- privacy -----------------------------------------------------------------------------------

def distance_to_closest_record(rows: pd.DataFrame, reference: pd.DataFrame, categorical: Sequence[str],
                               chunk_rows: int = 512) -> np.ndarray:
    """For each row of `rows`, the distance to its closest row of `reference`: the mean over columns
    of |a − b| / (range of the column in `reference`), capped at 1, for numerical columns (a column
    constant in `reference`: 0 if equal, else 1) and of 0 (same level) / 1 (another level) for
    categorical ones — sdmetrics' DCR. A missing value is as sdmetrics counts it: 0 from another missing value,
    1 from any value (a missing level is a level). Values in [0, 1]; [len(rows)]."""
    columns = list(reference.columns)
    numeric = [c for c in columns if c not in categorical]
    cats = [c for c in columns if c in categorical]
    ref_num = reference[numeric].to_numpy(dtype=float)
    row_num = rows[numeric].to_numpy(dtype=float)
    gaps = bool(np.isnan(ref_num).any() or np.isnan(row_num).any())
    with warnings.catch_warnings():  # a column missing throughout: its range is NaN, and every distance 0 or 1
        warnings.simplefilter("ignore", RuntimeWarning)
        ranges = np.nanmax(ref_num, axis=0) - np.nanmin(ref_num, axis=0) if numeric else np.zeros(0)
    # categorical levels as shared integer codes, so equality is one vectorized comparison
    codes = [pd.Categorical(pd.concat([reference[c], rows[c]]).astype(str)).codes for c in cats]
    ref_cat = np.stack([code[:len(reference)] for code in codes], axis=1) if cats else np.zeros((len(reference), 0))
    row_cat = np.stack([code[len(reference):] for code in codes], axis=1) if cats else np.zeros((len(rows), 0))
    out = np.empty(len(rows))
    for start in range(0, len(rows), chunk_rows):
        stop = min(start + chunk_rows, len(rows))
        diff = np.abs(row_num[start:stop, None, :] - ref_num[None, :, :])
        constant = ranges == 0
        scaled = np.where(constant, (diff > 0).astype(float), np.minimum(diff / np.where(constant, 1.0, ranges), 1.0))
        if gaps:
            row_gap, ref_gap = np.isnan(row_num[start:stop, None, :]), np.isnan(ref_num[None, :, :])
            scaled = np.where(row_gap | ref_gap, (row_gap != ref_gap).astype(float), scaled)
        total = scaled.sum(axis=2) + (row_cat[start:stop, None, :] != ref_cat[None, :, :]).sum(axis=2)
        out[start:stop] = total.min(axis=1) / len(columns)
    return out


def dcr_closer_to_training_share(synthetic: pd.DataFrame, training: pd.DataFrame, holdout: pd.DataFrame,
                                 categorical: Sequence[str], seed: int = 0) -> float:
    """The share of synthetic rows whose distance to the closest training row is strictly smaller
    than their distance to the closest holdout row (the DCR of `distance_to_closest_record`, each
    reference scaled by its own column ranges) — sdmetrics' DCROverfittingProtection "closer to
    training" percentage.

    The training rows are first subsampled (seeded, without replacement) to the holdout's size when
    there are more of them, so that a generator that never saw the training rows lands near 0.5 (it
    is then as likely to land nearer either equal-sized sample); values well above 0.5 mean rows copied
    from or close to the training data. sdmetrics' score is min(1, 2 × (1 − share)).
    """
    if len(training) > len(holdout):
        training = training.sample(n=len(holdout), random_state=seed)
    columns = list(holdout.columns)
    to_training = distance_to_closest_record(synthetic[columns], training[columns], categorical)
    to_holdout = distance_to_closest_record(synthetic[columns], holdout[columns], categorical)
    return float(np.mean(to_training < to_holdout))
