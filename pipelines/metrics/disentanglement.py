"""Disentanglement scores of a representation against known generative factors.

Pure functions over arrays: `codes` [N, Z] (e.g. latent means per row) and `factors` [N, F]
(discrete labels: ints, floats from a grid or strings; a DataFrame works, one column per factor).
The definitions follow disentanglement_lib (Locatello et al. 2019,
`evaluation/metrics/{mig,dci,sap_score,utils}.py`), so numbers compare with the literature:

- MIG (Chen et al. 2018): each code is discretized into `bins` equal-width bins over its range
  (`np.histogram` edges, 20 bins as disentanglement_lib's configs), its mutual information with
  each factor computed from the joint counts (nats), and for each factor the gap between the two
  codes most informative about it divided by the factor's entropy; the mean over factors.
  Note the ceiling this puts on a factor with more levels than bins: a perfect copy of a
  40-level factor scores at most log 20 / log 40 = 0.81.
- DCI (Eastwood & Williams 2018): an importance matrix [Z, F] from one classifier per factor
  predicting it from all codes; disentanglement is 1 - entropy (base F) of each code's
  importances across factors, weighted by the code's share of importance; completeness the same
  per factor across codes (base Z); informativeness the classifiers' accuracy on held-out rows.
- SAP (Kumar et al. 2018): for each code and factor, the held-out accuracy of a linear SVM
  predicting the factor from that code alone (discrete factors; for continuous ones the squared
  correlation); per factor the gap between the best and second best code; the mean over factors.

Every function that splits rows into train and test does it with a seeded permutation (2/3
train, as disentanglement_lib's 10,000 / 5,000), not by position, so sorted inputs are fine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIG_BINS = 20  # disentanglement_lib's discretizer.num_bins
TRAIN_FRACTION = 2 / 3
ACTIVE_KL_FLOOR = 0.01  # nats per dim: a dim at the prior has KL 0; any use of it costs more
IMPORTANCE_METHODS = ("gradient_boosting", "random_forest")
# "random_forest" is the cheaper stand-in for disentanglement_lib's default GradientBoostingClassifier:
# one tree per class per stage made GBT take ~240 s for 8,000 rows x 10 codes on 5 dSprites-like
# factors (3/6/40/16/16 levels, 2 cores), this ~7 s. Like GBT's trees it splits on the best of all
# codes (max_features=None), so its impurity importances credit the codes the factor is read from;
# depth 12 and leaves of 5 rows keep it from fitting noise codes (see tests and the benchmark).
FOREST = {"n_estimators": 25, "max_depth": 12, "min_samples_leaf": 5, "max_features": None}


@dataclass(frozen=True)
class DCIScores:
    disentanglement: float
    completeness: float
    informativeness_train: float  # mean accuracy over factors on the training rows
    informativeness_test: float   # mean accuracy over factors on the held-out rows
    importance: np.ndarray        # [Z, F] each factor's classifier's importance of each code


def active_units(kl_per_dim: np.ndarray, floor: float = ACTIVE_KL_FLOOR) -> np.ndarray:
    """Which latent dims carry information: bool [Z], True where the dim's KL(q(z_j|x) || p(z_j)),
    averaged over rows when given per row ([N, Z]) or already averaged ([Z]), exceeds `floor` nats."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    if kl.ndim not in (1, 2) or kl.size == 0 or not np.isfinite(kl).all():
        raise ValueError(f"active_units: kl_per_dim must be a finite [N, Z] or [Z] array; got shape {kl.shape}")
    return (kl.mean(axis=0) if kl.ndim == 2 else kl) > floor


def mutual_information_matrix(codes: np.ndarray, factors, bins: int = MIG_BINS) -> np.ndarray:
    """I(code_j; factor_k) in nats, [Z, F], each code discretized into `bins` equal-width bins."""
    from sklearn.metrics import mutual_info_score  # scikit-learn's import is here, not at the top: it took
    # ~1.4 s of every `vaepipe train`, whose report imports this module, with or without factor columns

    codes, labels = _check(codes, factors, "mutual_information_matrix")
    binned = discretize(codes, bins)
    return np.array([[mutual_info_score(labels[:, k], binned[:, j]) for k in range(labels.shape[1])]
                     for j in range(codes.shape[1])])


def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each code column as int bin labels: `bins` equal-width bins over its own range (a constant
    column falls in one bin), as disentanglement_lib's histogram discretizer."""
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an int >= 2; got {bins!r}")
    return np.stack([np.digitize(column, np.histogram(column, bins)[1][:-1]) for column in codes.T], axis=1)


def factor_entropies(factors) -> np.ndarray:
    """H(factor_k) in nats from the factors' empirical frequencies: [F]."""
    from sklearn.metrics import mutual_info_score

    labels = factor_labels(factors)
    return np.array([mutual_info_score(column, column) for column in labels.T])


def mig(codes: np.ndarray, factors, bins: int = MIG_BINS) -> float:
    """Mutual Information Gap in [0, 1]: the mean over factors of (largest - second largest MI
    of a code with the factor) / H(factor). Needs at least two codes and no constant factor."""
    codes, labels = _check(codes, factors, "mig", min_codes=2)
    entropy = factor_entropies(labels)
    if (entropy <= 0).any():
        raise ValueError(f"mig: factor column {int(np.flatnonzero(entropy <= 0)[0])} takes a single value, so no "
                         f"code can explain it; drop that factor")
    return float(np.mean(information_gaps(mutual_information_matrix(codes, labels, bins), entropy)))


def information_gaps(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """MIG's term of each factor: (largest − second largest MI of a code with it) / its entropy, [F], from
    an MI matrix [Z, F] (Z >= 2) and the factors' entropies [F]; `mig` is their mean."""
    top_two = np.sort(np.asarray(mi, dtype=np.float64), axis=0)[-2:]
    return (top_two[1] - top_two[0]) / np.asarray(entropy, dtype=np.float64)


def dci(codes: np.ndarray, factors, importance: str = "gradient_boosting", seed: int = 0) -> DCIScores:
    """DCI disentanglement, completeness (both in [0, 1]) and informativeness (accuracy) from one
    classifier per factor on 2/3 of the rows, scored on the rest. `importance`: "gradient_boosting"
    (disentanglement_lib's: sklearn's GradientBoostingClassifier with defaults) or "random_forest"
    (a cheaper forest of trees over all codes, see FOREST). A constant encoder scores 0."""
    if importance not in IMPORTANCE_METHODS:
        raise ValueError(f"dci: importance must be one of {IMPORTANCE_METHODS}; got {importance!r}")
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    codes, labels = _check(codes, factors, "dci", min_codes=2, min_factors=2)
    train, test = train_test_rows(len(codes), seed)
    matrix = np.zeros((codes.shape[1], labels.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(labels.shape[1]):
        model = (GradientBoostingClassifier(random_state=seed) if importance == "gradient_boosting"
                 else RandomForestClassifier(random_state=seed, **FOREST))
        model.fit(codes[train], labels[train, k])
        matrix[:, k] = np.abs(model.feature_importances_)
        train_accuracy.append(model.score(codes[train], labels[train, k]))
        test_accuracy.append(model.score(codes[test], labels[test, k]))
    return DCIScores(disentanglement=_weighted_specificity(matrix), completeness=_weighted_specificity(matrix.T),
                     informativeness_train=float(np.mean(train_accuracy)),
                     informativeness_test=float(np.mean(test_accuracy)), importance=matrix)


def sap(codes: np.ndarray, factors, continuous_factors: bool = False, seed: int = 0) -> float:
    """Separated Attribute Predictability: the mean over factors of the gap between the two codes
    that predict the factor best on their own — held-out accuracy of a linear SVM (C=0.01, balanced
    classes) for discrete factors, squared correlation on all rows for continuous ones."""
    from sklearn.svm import LinearSVC

    codes, labels = _check(codes, factors, "sap", min_codes=2)
    if continuous_factors:
        values = np.asarray(factors, dtype=np.float64)
        scores = np.zeros((codes.shape[1], values.shape[1]))
        for j in range(codes.shape[1]):
            for k in range(values.shape[1]):
                covariance = np.cov(codes[:, j], values[:, k], ddof=1)
                if covariance[0, 0] > 1e-12:
                    scores[j, k] = covariance[0, 1] ** 2 / (covariance[0, 0] * covariance[1, 1])
    else:
        train, test = train_test_rows(len(codes), seed)
        scores = np.zeros((codes.shape[1], labels.shape[1]))
        for j in range(codes.shape[1]):
            for k in range(labels.shape[1]):
                classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                classifier.fit(codes[train, j:j + 1], labels[train, k])
                scores[j, k] = np.mean(classifier.predict(codes[test, j:j + 1]) == labels[test, k])
    top_two = np.sort(scores, axis=0)[-2:]
    return float(np.mean(top_two[1] - top_two[0]))


# disentanglement_lib scores MIG on 10,000 points and fits DCI's and SAP's classifiers on 10,000 / 5,000
SUMMARY_ROWS = 10_000


def posterior_kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each row and latent dim, [N, Z] (as vae_core.kl_per_dim)."""
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    return 0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)


def interpretation_summary(mu: np.ndarray, logvar: np.ndarray, factors: pd.DataFrame | None = None,
                           max_rows: int = SUMMARY_ROWS, seed: int = 0,
                           importance: str = "random_forest") -> dict:
    """Every measure of a representation, as JSON-ready numbers: the mean KL of each latent dim and the
    active units (all rows); with `factors` (one column per known factor, a row per code) also, on at most
    `max_rows` rows drawn by a seeded permutation, the MI matrix [Z, F] in nats, each dim's most informative
    factor, and of the latent means MIG (with its term per factor), DCI and SAP. A factor that takes one
    value on those rows explains nothing and is left out (`constant_factors`)."""
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    kl = posterior_kl_per_dim(mu, logvar).mean(axis=0)
    active = active_units(kl)
    summary: dict = {"rows": int(len(mu)), "latent_dim": int(mu.shape[1]), "kl_per_dim": kl.tolist(),
                     "active_kl_floor": ACTIVE_KL_FLOOR, "active_dims": np.flatnonzero(active).tolist(),
                     "active_units": int(active.sum()), "mig": None, "dci_disentanglement": None,
                     "dci_completeness": None, "dci_informativeness": None, "sap": None, "factors": None}
    if factors is None or not len(factors.columns):
        return summary
    if len(factors) != len(mu):
        raise ValueError(f"interpretation_summary: {len(mu)} codes but {len(factors)} factor rows")
    chosen = np.sort(np.random.default_rng(seed).permutation(len(mu))[:max_rows])
    codes, chosen_factors = mu[chosen], factors.iloc[chosen].reset_index(drop=True)
    constant = [str(name) for name in chosen_factors.columns if chosen_factors[name].nunique() < 2]
    chosen_factors = chosen_factors.drop(columns=constant)
    names = [str(name) for name in chosen_factors.columns]
    summary["factors"] = {"columns": names, "constant_factors": constant, "metric_rows": int(len(chosen)),
                          "seed": seed, "mig_bins": MIG_BINS}
    if not names or len(codes) < 2:
        return summary
    entropy = factor_entropies(chosen_factors)
    mi = mutual_information_matrix(codes, chosen_factors)
    best = mi.argmax(axis=1)
    summary["factors"].update({
        "entropy_nats": entropy.tolist(), "mi_nats": mi.tolist(),
        "best_factor_per_dim": [{"dim": j, "factor": names[best[j]], "mi_nats": float(mi[j, best[j]]),
                                 "share_of_entropy": float(mi[j, best[j]] / entropy[best[j]])}
                                for j in range(mu.shape[1])]})
    if mu.shape[1] < 2:  # every score compares codes: one code has nothing to be separated from
        return summary
    scores = dci(codes, chosen_factors, importance=importance, seed=seed) if len(names) >= 2 else None
    gaps = information_gaps(mi, entropy)
    summary["factors"].update({"mig_per_factor": gaps.tolist(), "dci_importance_method": importance,
                               "dci_importance": scores.importance.tolist() if scores else None})
    summary.update({"mig": float(gaps.mean()), "sap": sap(codes, chosen_factors, seed=seed),
                    "dci_disentanglement": scores.disentanglement if scores else None,
                    "dci_completeness": scores.completeness if scores else None,
                    "dci_informativeness": scores.informativeness_test if scores else None})
    return summary


def factor_labels(factors) -> np.ndarray:
    """Factors as int labels [N, F] (the index of each value among the column's sorted distinct
    values), from an array or a DataFrame whose columns may be strings or categoricals."""
    if isinstance(factors, pd.DataFrame):
        columns = [factors[name].astype(str).to_numpy() if not pd.api.types.is_numeric_dtype(factors[name])
                   else factors[name].to_numpy() for name in factors.columns]
    else:
        array = np.asarray(factors)
        if array.ndim != 2:
            raise ValueError(f"factors must be [N, F] (one column per factor); got shape {array.shape}")
        columns = list(array.T)
    return np.stack([np.unique(column, return_inverse=True)[1].reshape(-1) for column in columns], axis=1)


def train_test_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of range(n) cut at TRAIN_FRACTION: (train rows, test rows)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(np.ceil(n * TRAIN_FRACTION))
    return order[:cut], order[cut:]


def _weighted_specificity(matrix: np.ndarray) -> float:
    """1 - normalized entropy of each row's distribution across columns, weighted by the row's
    share of the total: disentanglement for an importance matrix [Z, F], completeness for its
    transpose. Rows of zeros count as uniform, as in disentanglement_lib (+1e-11)."""
    smoothed = matrix + 1e-11
    p = smoothed / smoothed.sum(axis=1, keepdims=True)
    specificity = 1.0 + (p * np.log(p)).sum(axis=1) / np.log(matrix.shape[1])
    weights = matrix.sum(axis=1) / matrix.sum() if matrix.sum() > 0 else np.full(len(matrix), 1 / len(matrix))
    return float(np.sum(specificity * weights))


def _check(codes, factors, where: str, min_codes: int = 1, min_factors: int = 1) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"{where}: codes must be [N, Z] with N >= 2 rows; got shape {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError(f"{where}: codes hold NaN or inf (row {int(np.flatnonzero(~np.isfinite(codes).all(1))[0])}); "
                         f"check the encoder's output")
    if codes.shape[1] < min_codes:
        raise ValueError(f"{where}: needs at least {min_codes} code dims; got {codes.shape[1]}")
    labels = factor_labels(factors)
    if len(labels) != len(codes):
        raise ValueError(f"{where}: codes have {len(codes)} rows but factors {len(labels)}; pass one factor row per code")
    if labels.shape[1] < min_factors:
        raise ValueError(f"{where}: needs at least {min_factors} factors; got {labels.shape[1]}")
    return codes, labels
