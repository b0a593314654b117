"""The M2 classifier's weight when `train.classifier_weight` is auto: Kingma et al.'s α = 0.1·N over the labelled
rows, grown with the inputs of a row above 64 (a 28×28 image's classifier barely learnt at α alone)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.training.config import LoopConfig
from pipelines.training.loop import classifier_weight


def manifest(inputs: int, train_rows: int = 4000, labelled: int = 100):
    condition = SimpleNamespace(train_counts=[labelled // 10] * 10)
    return SimpleNamespace(feature_dim=inputs, split_rows={"train": train_rows}, condition=[condition])


@pytest.mark.parametrize("inputs, expected", [(10, 4.0), (64, 4.0), (784, 4.0 * 784 / 64), (3 * 32 * 32, 192.0)])
def test_auto_is_kingmas_alpha_up_to_64_inputs_and_grows_with_them_above(inputs, expected):
    assert classifier_weight(LoopConfig(), manifest(inputs)) == pytest.approx(expected)


def test_a_set_weight_is_used_as_it_is():
    assert classifier_weight(LoopConfig(classifier_weight=2.5), manifest(784)) == 2.5
    assert classifier_weight(LoopConfig(classifier_weight=0), manifest(784)) == 0.0
