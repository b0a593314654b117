"""`factor_table`: the tabular twin of `shapes` — rows made from known factors by a fixed non-linear map.

Four independent factors, each drawn uniformly from 10 levels on [-1, 1], go through one map that
is the same for every seed and every call (a random two-layer tanh network with weights from
MAP_SEED, scaled so each column has a standard deviation near 1), plus Gaussian noise of
NOISE_STD per column. Each column mixes all four factors, so a model only finds them one per
latent dim if it disentangles; the factors' entropy is log 10 each, within MIG's 20 bins.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FACTOR_NAMES = ("f0", "f1", "f2", "f3")
LEVELS = np.linspace(-1.0, 1.0, 10)
NUM_COLUMNS = 12
HIDDEN = 16
MAP_SEED = 20240522  # fixes the map, independent of the rows' seed
NOISE_STD = 0.05


def factor_table(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` rows of NUM_COLUMNS float columns x00..x11 and their factors (columns FACTOR_NAMES, values
    from LEVELS). The same seed gives the same rows; the map from factors to columns never changes."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"factor_table: n must be a positive int; got {n!r}")
    rng = np.random.default_rng(seed)
    factors = LEVELS[rng.integers(0, len(LEVELS), size=(n, len(FACTOR_NAMES)))]
    columns = factor_map(factors) + NOISE_STD * rng.normal(size=(n, NUM_COLUMNS))
    table = pd.DataFrame(columns.astype(np.float32), columns=[f"x{j:02d}" for j in range(NUM_COLUMNS)])
    return table, pd.DataFrame(factors, columns=list(FACTOR_NAMES))


def factor_map(factors: np.ndarray) -> np.ndarray:
    """The fixed noiseless map [N, 4] -> [N, NUM_COLUMNS]: tanh(f W1 + b1) W2, W1 with gain 3 so
    that tanh bends: a linear fit explains about 76 % of the columns' variance."""
    rng = np.random.default_rng(MAP_SEED)
    w1 = 3.0 * rng.normal(size=(len(FACTOR_NAMES), HIDDEN)) / np.sqrt(len(FACTOR_NAMES))
    b1 = 0.5 * rng.normal(size=HIDDEN)
    w2 = rng.normal(size=(HIDDEN, NUM_COLUMNS)) / np.sqrt(HIDDEN)
    # Scale each column by its spread over a fixed grid sample, so columns come out near unit variance.
    reference = np.tanh(LEVELS[np.random.default_rng(MAP_SEED + 1).integers(0, len(LEVELS), (4096, 4))] @ w1 + b1) @ w2
    return (np.tanh(factors @ w1 + b1) @ w2 - reference.mean(0)) / reference.std(0)
