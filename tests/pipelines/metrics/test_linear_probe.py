"""The linear probe `vaepipe embed` reports (`pipelines.metrics.linear_probe`) on constructed cases: features
that hold the label score near 1, noise scores near chance, and every representation sees the same draws."""
from __future__ import annotations

import numpy as np

from pipelines.metrics.linear_probe import labelled_draw, linear_probe, probe_lines, with_pca


def labelled(n: int, classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, size=n)


def test_features_that_hold_the_label_score_near_one_and_noise_near_chance():
    rng = np.random.default_rng(0)
    y_train, y_test = labelled(600, 4, 1), labelled(300, 4, 2)
    informative = (np.eye(4)[y_train] * 3 + rng.normal(size=(600, 4)), np.eye(4)[y_test] * 3 + rng.normal(size=(300, 4)))
    noise = (rng.normal(size=(600, 4)), rng.normal(size=(300, 4)))
    probe = linear_probe({"informative": informative, "noise": noise}, y_train, y_test)
    good, bad = probe["representations"]["informative"], probe["representations"]["noise"]
    assert good["all_labels"] > 0.9 and good["per_class"] > 0.8
    assert abs(bad["all_labels"] - 0.25) < 0.1 and abs(bad["per_class"] - 0.25) < 0.12
    assert (probe["train_rows"], probe["test_rows"], probe["classes"], probe["labels_per_class"]) == (600, 300, 4, 10)


def test_a_class_with_fewer_rows_than_the_draw_leaves_the_few_label_figure_empty():
    y = np.array([0] * 30 + [1] * 5)
    assert labelled_draw(y, 10, np.random.default_rng(0)) is None
    x = np.random.default_rng(0).normal(size=(35, 3))
    probe = linear_probe({"x": (x, x)}, y, y)
    assert probe["representations"]["x"]["per_class"] is None
    assert "fewer than 10 train rows in a class" in probe_lines(probe)[0]


def test_pca_has_the_embeddings_width_and_is_fitted_on_the_train_rows():
    rng = np.random.default_rng(0)
    raw = (rng.normal(size=(200, 30)), rng.normal(size=(50, 30)))
    embedded = (rng.normal(size=(200, 6)), rng.normal(size=(50, 6)))
    reps = with_pca(embedded, raw)
    assert list(reps) == ["embedding", "raw", "pca_6"]
    assert reps["pca_6"][0].shape == (200, 6) and reps["pca_6"][1].shape == (50, 6)
