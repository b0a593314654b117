"""`train.objective`: which loss the worker loop minimizes (no Ray: the loop's own function on a real model)."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from pipelines.training.config import LoopConfig
from pipelines.training.loop import training_loss
from vae_core import VAE, ModelSpec, beta_tc_loss


@pytest.fixture
def batch_output():
    torch.manual_seed(0)
    model = VAE(ModelSpec.for_table(6, [], latent_dim=3, hidden=(16,)))
    return model(torch.randn(64, 6), beta=4.0)


def test_elbo_minimizes_the_models_own_beta_elbo(batch_output):
    loop = LoopConfig(beta=4.0)
    assert training_loss(loop, batch_output, epoch=0, train_rows=1000) is batch_output.loss


def test_beta_tc_weighs_the_total_correlation_with_beta_and_uses_the_whole_train_split_as_n(batch_output):
    out = batch_output
    loop = LoopConfig(objective="beta_tc", beta=6.0, alpha=0.5, gamma=2.0, kl_warmup_epochs=0)
    expected = beta_tc_loss(out.recon_nll, out.mu, out.logvar, out.z, dataset_size=5000, alpha=0.5, beta=6.0,
                            gamma=2.0)
    assert torch.equal(training_loss(loop, out, epoch=3, train_rows=5000), expected)
    assert not torch.isclose(training_loss(loop, out, epoch=3, train_rows=50), expected)


def test_beta_tc_at_unit_weights_is_the_plain_elbo(batch_output):
    out = batch_output
    plain = out.recon_nll.mean() + out.kl.mean()
    assert torch.isclose(training_loss(LoopConfig(objective="beta_tc", kl_warmup_epochs=0), out, 0, 1000), plain, rtol=1e-6)


def test_warm_up_ramps_every_weight_of_beta_tc(batch_output):
    out = batch_output
    loop = LoopConfig(objective="beta_tc", beta=6.0, alpha=1.0, gamma=1.0, kl_warmup_epochs=4)
    expected = beta_tc_loss(out.recon_nll, out.mu, out.logvar, out.z, dataset_size=1000, alpha=0.25, beta=1.5,
                            gamma=0.25)
    assert torch.equal(training_loss(loop, out, epoch=0, train_rows=1000), expected)


@pytest.mark.parametrize("fields, message", [
    ({"objective": "beta_tc", "free_bits": 0.5}, "free_bits applies to objective elbo"),
    ({"alpha": 2.0}, "set train.objective to beta_tc"),
    ({"objective": "tc"}, "objective"),
])
def test_weights_that_the_objective_does_not_have_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        LoopConfig(**fields)
