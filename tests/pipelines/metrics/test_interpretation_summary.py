"""`interpretation_summary`: what `vaepipe interpret` writes, on constructed codes (no model, no Ray)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipelines.metrics.disentanglement import interpretation_summary, mig


def constructed(n: int = 3000, seed: int = 0):
    """Codes z0 = factor a, z1 = factor b (plus noise), z2 unused (at the prior: mu 0, logvar 0)."""
    rng = np.random.default_rng(seed)
    factors = pd.DataFrame({"a": rng.integers(0, 8, n), "b": rng.choice(["x", "y", "z"], n)})
    b_codes = pd.Categorical(factors["b"]).codes
    mu = np.column_stack([factors["a"] + 0.05 * rng.normal(size=n), b_codes + 0.05 * rng.normal(size=n),
                          np.zeros(n)])
    logvar = np.column_stack([np.full(n, -4.0), np.full(n, -4.0), np.zeros(n)])
    return mu, logvar, factors


def test_each_dim_is_labelled_with_the_factor_it_copies_and_the_scores_are_high():
    mu, logvar, factors = constructed()
    summary = interpretation_summary(mu, logvar, factors)
    assert summary["active_dims"] == [0, 1] and summary["active_units"] == 2
    best = summary["factors"]["best_factor_per_dim"]
    assert [b["factor"] for b in best[:2]] == ["a", "b"]
    assert best[0]["share_of_entropy"] > 0.95 and best[1]["share_of_entropy"] > 0.95
    assert summary["mig"] > 0.9 and summary["dci_disentanglement"] > 0.9
    # SAP: one linear classifier per code, so a factor with 8 levels on a line is only partly separable
    assert summary["sap"] > 0.3
    assert np.isclose(summary["mig"], np.mean(summary["factors"]["mig_per_factor"]))
    assert np.array(summary["factors"]["mi_nats"]).shape == (3, 2)
    json.dumps(summary)  # written as _summary.json


def test_scores_use_at_most_max_rows_drawn_by_the_seed():
    mu, logvar, factors = constructed(n=5000)
    summary = interpretation_summary(mu, logvar, factors, max_rows=1000, seed=3)
    chosen = np.sort(np.random.default_rng(3).permutation(5000)[:1000])
    assert summary["factors"]["metric_rows"] == 1000 and summary["rows"] == 5000
    assert np.isclose(summary["mig"], mig(mu[chosen], factors.iloc[chosen]))


def test_without_factors_only_the_kl_and_active_units_are_measured():
    mu, logvar, _ = constructed(n=500)
    summary = interpretation_summary(mu, logvar, None)
    assert summary["active_units"] == 2 and summary["factors"] is None
    assert summary["mig"] is None and summary["dci_disentanglement"] is None and summary["sap"] is None


def test_a_factor_with_one_value_is_left_out_and_named():
    mu, logvar, factors = constructed(n=800)
    summary = interpretation_summary(mu, logvar, factors.assign(c=1))
    assert summary["factors"]["constant_factors"] == ["c"] and summary["factors"]["columns"] == ["a", "b"]
    assert summary["mig"] > 0.9
