"""Disentanglement scores on constructed encoders, and against disentanglement_lib's own formulas."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import sklearn.metrics

from pipelines.metrics.disentanglement import (active_units, dci, discretize, factor_entropies, factor_labels, mig,
                                               mutual_information_matrix, sap)

N = 2000
LEVELS = (3, 5, 8, 10)  # at most MIG's 20 bins, so a copied factor can keep all its entropy


def make_factors(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, levels, n) for levels in LEVELS], axis=1)


def standardized(factors: np.ndarray) -> np.ndarray:
    return (factors - factors.mean(0)) / factors.std(0)


def copying_encoder(factors: np.ndarray, seed: int = 1, noise: float = 0.05, extra_dims: int = 2) -> np.ndarray:
    """One code per factor (the standardized factor plus a little noise), then pure-noise codes."""
    rng = np.random.default_rng(seed)
    copies = standardized(factors) + noise * rng.normal(size=factors.shape)
    return np.concatenate([copies, rng.normal(size=(len(factors), extra_dims))], axis=1)


def rotating_encoder(factors: np.ndarray, seed: int = 2) -> np.ndarray:
    """The standardized factors turned by a random (Haar) rotation."""
    rng = np.random.default_rng(seed)
    rotation, upper = np.linalg.qr(rng.normal(size=(factors.shape[1], factors.shape[1])))
    return standardized(factors) @ (rotation * np.sign(np.diag(upper)))


def mixing_encoder(factors: np.ndarray, seed: int = 2) -> np.ndarray:
    """The standardized 4 factors turned by the rotation that mixes most: a 4x4 Hadamard matrix / 2
    (every code is ±f1 ±f2 ±f3 ±f4, halved), its columns in a random order with random signs."""
    rng = np.random.default_rng(seed)
    hadamard = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    return standardized(factors) @ (hadamard[:, rng.permutation(4)] * rng.choice([-1, 1], size=4))


def constant_encoder(factors: np.ndarray) -> np.ndarray:
    return np.zeros((len(factors), 6))


# --- constructed cases: the must-show ---------------------------------------------

@pytest.mark.slow  # fits gradient boosting and random forests: 4-5 CPU-s
def test_an_encoder_that_copies_the_factors_scores_near_one():
    factors = make_factors()
    codes = copying_encoder(factors)
    assert mig(codes, factors) > 0.9
    for method in ("gradient_boosting", "random_forest"):
        scores = dci(codes, factors, importance=method)
        assert scores.disentanglement > 0.9 and scores.completeness > 0.9, method
        assert scores.informativeness_test > 0.95, method
    assert sap(codes, factors) > 0.2  # a 1-D linear SVM separates only a few of 10 levels: SAP's ceiling is low


@pytest.mark.slow  # 4-5 CPU-s, as above
def test_a_rotation_that_mixes_every_factor_into_every_code_scores_near_zero():
    factors = make_factors()
    codes = mixing_encoder(factors)
    assert mig(codes, factors) < 0.05
    for method in ("gradient_boosting", "random_forest"):
        scores = dci(codes, factors, importance=method)
        assert scores.disentanglement < 0.05 and scores.completeness < 0.05, method
        assert scores.informativeness_test > 0.8, method  # it still knows the factors, entangled
    assert sap(codes, factors) < 0.05


@pytest.mark.slow  # eight MIGs on 2,000 rows: ~3 CPU-s
def test_random_rotations_of_the_factors_score_far_below_the_copy():
    # A Haar-random rotation of 4 dims sometimes leaves a code close to one factor, so the scores vary
    # by seed (MIG 0.08-0.42 over these 8); their mean is low and each is far below the copy's.
    factors = make_factors(2000)
    copy_mig = mig(copying_encoder(factors), factors)
    rotated = [rotating_encoder(factors, seed) for seed in range(8)]
    migs = [mig(codes, factors) for codes in rotated]
    disentanglement = [dci(codes, factors, importance="random_forest").disentanglement for codes in rotated]
    assert np.mean(migs) < 0.3 and max(migs) < copy_mig - 0.4
    assert np.mean(disentanglement) < 0.3 and max(disentanglement) < 0.5


def test_a_constant_encoder_scores_zero():
    factors = make_factors()
    codes = constant_encoder(factors)
    assert mig(codes, factors) == 0.0
    for method in ("gradient_boosting", "random_forest"):
        scores = dci(codes, factors, importance=method)
        assert scores.disentanglement == pytest.approx(0.0, abs=1e-6), method
        assert scores.completeness == pytest.approx(0.0, abs=1e-6), method
    assert sap(codes, factors) == 0.0


def test_scores_order_the_three_encoders():
    factors = make_factors(1500)
    ranked = [mig(encoder(factors), factors) for encoder in (copying_encoder, mixing_encoder, constant_encoder)]
    assert ranked == sorted(ranked, reverse=True)


def test_mig_drops_when_two_codes_share_a_factor():
    # Copying factor 0 into two codes leaves no gap for it: MIG loses that factor's quarter.
    factors = make_factors()
    codes = copying_encoder(factors)
    duplicated = np.concatenate([codes, codes[:, :1] + 0.01], axis=1)
    assert mig(duplicated, factors) == pytest.approx(mig(codes, factors) - 0.25, abs=0.03)


# --- definitions, against disentanglement_lib ---------------------------------------------
# Transcribed from google-research/disentanglement_lib, evaluation/metrics/utils.py, mig.py, dci.py
# and sap_score.py (Apache 2.0); their arrays are [num_codes, num_points], hence the transposes.

def reference_mig(mus, ys, num_bins=20):
    discretized = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        discretized[i, :] = np.digitize(mus[i, :], np.histogram(mus[i, :], num_bins)[1][:-1])
    m = np.array([[sklearn.metrics.mutual_info_score(ys[j, :], discretized[i, :]) for j in range(ys.shape[0])]
                  for i in range(mus.shape[0])])
    entropy = np.array([sklearn.metrics.mutual_info_score(ys[j, :], ys[j, :]) for j in range(ys.shape[0])])
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def reference_disentanglement(importance_matrix):
    per_code = 1. - scipy.stats.entropy(importance_matrix.T + 1e-11, base=importance_matrix.shape[1])
    if importance_matrix.sum() == 0.:
        importance_matrix = np.ones_like(importance_matrix)
    code_importance = importance_matrix.sum(axis=1) / importance_matrix.sum()
    return np.sum(per_code * code_importance)


def reference_completeness(importance_matrix):
    per_factor = 1. - scipy.stats.entropy(importance_matrix + 1e-11, base=importance_matrix.shape[0])
    if importance_matrix.sum() == 0.:
        importance_matrix = np.ones_like(importance_matrix)
    factor_importance = importance_matrix.sum(axis=0) / importance_matrix.sum()
    return np.sum(per_factor * factor_importance)


def half_entangled(factors: np.ndarray, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    copies, mixed = copying_encoder(factors, noise=0.3), mixing_encoder(factors)
    return np.concatenate([copies[:, :2], mixed[:, 2:], rng.normal(size=(len(factors), 1))], axis=1)


def test_mig_is_disentanglement_libs_mig():
    factors = make_factors(2000)
    for codes in (copying_encoder(factors), rotating_encoder(factors), mixing_encoder(factors), half_entangled(factors)):
        assert mig(codes, factors) == pytest.approx(reference_mig(codes.T, factors.T), abs=1e-12)


def test_dci_aggregates_the_importance_matrix_as_disentanglement_lib():
    factors = make_factors(1500)
    scores = dci(half_entangled(factors), factors, importance="random_forest")
    assert scores.importance.shape == (5, 4)
    assert scores.disentanglement == pytest.approx(reference_disentanglement(scores.importance), abs=1e-12)
    assert scores.completeness == pytest.approx(reference_completeness(scores.importance), abs=1e-12)
    zeros = np.zeros((5, 3))
    assert reference_disentanglement(zeros) == pytest.approx(0.0, abs=1e-9)


def test_sap_on_continuous_factors_is_the_gap_in_squared_correlation():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(2000, 2))
    codes = np.stack([factors[:, 0], 0.5 * factors[:, 0] + rng.normal(size=2000), factors[:, 1]], axis=1)
    r2 = np.array([[np.corrcoef(codes[:, j], factors[:, k])[0, 1] ** 2 for k in range(2)] for j in range(3)])
    expected = np.mean([r2[0, 0] - r2[1, 0], r2[2, 1] - np.sort(r2[:, 1])[-2]])
    assert sap(codes, factors, continuous_factors=True) == pytest.approx(expected, abs=1e-9)


def test_mutual_information_of_a_copied_factor_is_its_entropy():
    factors = make_factors()
    mi = mutual_information_matrix(copying_encoder(factors, noise=0.0), factors)
    assert mi.shape == (6, 4)
    np.testing.assert_allclose(np.diag(mi[:4]), factor_entropies(factors), rtol=1e-9)
    np.testing.assert_allclose(factor_entropies(factors), np.log(LEVELS), rtol=0.02)  # uniform draws


def test_discretize_bins_each_code_over_its_own_range():
    codes = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [10.0, 5.0]])
    binned = discretize(codes, bins=10)
    assert binned[:, 0].tolist() == [1, 2, 3, 10] and len(set(binned[:, 1])) == 1


def test_factors_may_be_a_dataframe_with_string_and_float_columns():
    factors = make_factors(1000)
    frame = pd.DataFrame({"shape": pd.Categorical(np.array(["a", "b", "c"])[factors[:, 0]]),
                          "scale": 0.5 + 0.1 * factors[:, 1], "x": factors[:, 2], "y": factors[:, 3]})
    assert np.array_equal(factor_labels(frame), factors)
    codes = copying_encoder(factors)
    assert mig(codes, frame) == mig(codes, factors)


# --- active units ---------------------------------------------------------------------------

def test_active_units_are_dims_whose_mean_kl_exceeds_the_floor():
    kl = np.array([[0.0, 0.5, 0.02, 0.001], [0.0, 1.5, 0.0, 0.001]])
    assert active_units(kl).tolist() == [False, True, False, False]
    assert active_units(kl, floor=0.005).tolist() == [False, True, True, False]
    assert active_units(kl.mean(0)).tolist() == active_units(kl).tolist()


# --- inputs refused with a reason -------------------------------------------------------------

def test_bad_inputs_are_refused_naming_the_problem():
    factors = make_factors(100)
    codes = copying_encoder(factors)
    with pytest.raises(ValueError, match="100 rows but factors 50"):
        mig(codes, factors[:50])
    with pytest.raises(ValueError, match="NaN or inf \\(row 7\\)"):
        mig(np.where(np.arange(100)[:, None] == 7, np.nan, codes), factors)
    with pytest.raises(ValueError, match="factor column 1 takes a single value"):
        mig(codes, np.stack([factors[:, 0], np.zeros(100)], axis=1))
    with pytest.raises(ValueError, match="at least 2 code dims"):
        mig(codes[:, :1], factors)
    with pytest.raises(ValueError, match="importance must be one of"):
        dci(codes, factors, importance="lasso")
    with pytest.raises(ValueError, match="kl_per_dim"):
        active_units(np.array([np.inf, 1.0]))
