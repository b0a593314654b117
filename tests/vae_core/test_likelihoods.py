import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Normal

from vae_core import (BernoulliLikelihood, CategoricalLikelihood, GaussianLikelihood, LikelihoodBlock, ModelSpec,
                      ZeroInflatedGaussianLikelihood, build_likelihood)


def test_learned_gaussian_log_prob_matches_torch_normal():
    torch.manual_seed(0)
    lik = GaussianLikelihood(4)
    with torch.no_grad():
        lik.log_std.copy_(torch.randn(4))
    mean, x = torch.randn(5, 4), torch.randn(5, 4)
    expected = Normal(mean, lik.log_std.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(lik.log_prob(mean, x), expected)


def test_fixed_gaussian_uses_fixed_std():
    mean, x = torch.randn(5, 3), torch.randn(5, 3)
    lik = GaussianLikelihood(3, variance="fixed", fixed_std=0.3)
    torch.testing.assert_close(lik.log_prob(mean, x), Normal(mean, 0.3).log_prob(x).sum(-1))


def test_shared_gaussian_learns_one_std_for_every_feature():
    lik = GaussianLikelihood(5, variance="shared")
    assert [p.shape for p in lik.parameters()] == [torch.Size([1])]
    with torch.no_grad():
        lik.log_std.fill_(math.log(0.2))
    mean, x = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(lik.log_prob(mean, x), Normal(mean, 0.2).log_prob(x).sum(-1))
    torch.testing.assert_close(lik.saturated_log_prob(x), Normal(mean, 0.2).log_prob(mean).sum(-1))


def test_learned_and_shared_stds_start_at_init_std():
    for variance in ("learned", "shared"):
        lik = build_likelihood([LikelihoodBlock("gaussian", 3, variance=variance, init_std=0.1)])
        torch.testing.assert_close(lik.blocks[0].clamped_log_std().exp(), torch.full((3,), 0.1))


def test_shared_gaussian_ranks_rows_by_squared_error_alone():
    # a per-feature std would weigh the error on feature 0 differently from feature 1
    lik = GaussianLikelihood(2, variance="shared")
    mean = torch.zeros(3, 2)
    x = torch.tensor([[0.3, 0.0], [0.0, 0.3], [0.2, 0.2]])
    deviance = lik.saturated_log_prob(x) - lik.log_prob(mean, x)
    torch.testing.assert_close(deviance, 0.5 * (x**2).sum(-1))


def test_learned_std_is_floored_so_log_prob_stays_finite():
    lik = GaussianLikelihood(2)
    with torch.no_grad():
        lik.log_std.fill_(-100.0)
    x = torch.zeros(1, 2)
    assert torch.isfinite(lik.log_prob(x, x)).all()
    torch.testing.assert_close(lik.log_prob(x, x), Normal(0.0, 1e-3).log_prob(x).sum(-1))


def test_categorical_log_prob_matches_torch_categorical_on_one_hot():
    torch.manual_seed(0)
    logits, levels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    lik = CategoricalLikelihood(4)
    torch.testing.assert_close(lik.log_prob(logits, F.one_hot(levels, 4).float()),
                               Categorical(logits=logits).log_prob(levels))


def test_bernoulli_log_prob_matches_bce_for_continuous_targets():
    torch.manual_seed(0)
    logits, x = 3 * torch.randn(5, 7), torch.rand(5, 7)
    expected = -F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(-1)
    torch.testing.assert_close(BernoulliLikelihood(7).log_prob(logits, x), expected)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
    logits = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(BernoulliLikelihood(2).log_prob(logits, torch.tensor([[0.0, 1.0]]))).all()


def test_composite_splits_features_by_block_in_order():
    torch.manual_seed(0)
    lik = build_likelihood([LikelihoodBlock("gaussian", 2, variance="fixed"), LikelihoodBlock("categorical", 3)])
    params, x = torch.randn(4, 5), torch.cat([torch.randn(4, 2), F.one_hot(torch.tensor([0, 2, 1, 1]), 3)], 1)
    expected = Normal(params[:, :2], 1.0).log_prob(x[:, :2]).sum(-1) + (x[:, 2:] * params[:, 2:].log_softmax(-1)).sum(-1)
    torch.testing.assert_close(lik.log_prob(params, x), expected)
    assert lik.param_dim == 5


def test_means_are_sigmoid_gaussian_mean_and_softmax():
    lik = build_likelihood([LikelihoodBlock("bernoulli", 1), LikelihoodBlock("gaussian", 1),
                            LikelihoodBlock("categorical", 2)])
    params = torch.tensor([[0.0, 1.5, 0.0, math.log(3.0)]])
    torch.testing.assert_close(lik.mean(params), torch.tensor([[0.5, 1.5, 0.25, 0.75]]))


def test_samples_are_binary_and_one_hot_and_repeat_for_a_seed():
    lik = build_likelihood([LikelihoodBlock("bernoulli", 3), LikelihoodBlock("categorical", 4)])
    params = torch.randn(50, 7)
    first = lik.sample(params, torch.Generator().manual_seed(3))
    assert set(first[:, :3].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first[:, 3:].sum(-1), torch.ones(50))
    assert torch.equal(first, lik.sample(params, torch.Generator().manual_seed(3)))


def test_log_prob_is_float32_for_bf16_params():
    lik = build_likelihood([LikelihoodBlock("gaussian", 2), LikelihoodBlock("categorical", 2)])
    out = lik.log_prob(torch.randn(3, 4, dtype=torch.bfloat16), torch.tensor([[0.1, 0.2, 1.0, 0.0]] * 3))
    assert out.dtype == torch.float32 and out.shape == (3,)


def test_zero_inflated_log_prob_is_bernoulli_plus_gaussian_only_where_nonzero():
    torch.manual_seed(0)
    lik = ZeroInflatedGaussianLikelihood()
    with torch.no_grad():
        lik.value.log_std.fill_(math.log(0.5))
    params = torch.randn(6, 2)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.3], [1.0, -1.2], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    hurdle = -F.binary_cross_entropy_with_logits(params[:, 0], x[:, 0], reduction="none")
    value = Normal(params[:, 1], 0.5).log_prob(x[:, 1]) * x[:, 0]
    torch.testing.assert_close(lik.log_prob(params, x), hurdle + value)
    # the value's mean does not matter where the column is zero
    moved = params.clone()
    moved[x[:, 0] == 0, 1] += 5.0
    torch.testing.assert_close(lik.log_prob(moved, x)[x[:, 0] == 0], lik.log_prob(params, x)[x[:, 0] == 0])


def test_zero_inflated_samples_are_exact_zeros_in_proportion_and_repeat_for_a_seed():
    lik = ZeroInflatedGaussianLikelihood()
    params = torch.tensor([[math.log(0.3 / 0.7), 2.0]]).repeat(20_000, 1)  # P(nonzero) = 0.3
    draws = lik.sample(params, torch.Generator().manual_seed(1))
    nonzero = draws[:, 0] == 1
    assert abs(nonzero.float().mean() - 0.3) < 0.015
    assert (draws[~nonzero, 1] == 0).all() and abs(draws[nonzero, 1].mean() - 2.0) < 0.05
    torch.testing.assert_close(lik.sample(params, torch.Generator().manual_seed(1)), draws)


def test_table_spec_lays_out_gaussian_then_zero_inflated_pairs_then_categoricals():
    spec = ModelSpec.for_table(num_numeric=3, categorical_levels=[4, 2], num_zero_inflated=2)
    assert [(b.kind, b.size) for b in spec.likelihood] == [
        ("gaussian", 3), ("zero_inflated", 4), ("categorical", 4), ("categorical", 2)]
    assert spec.feature_dim == 3 + 4 + 6 and ModelSpec.from_json(spec.to_json()) == spec


def test_one_block_of_pairs_is_the_blocks_of_one_pair_each_side_by_side():
    # a table's pairs are one block since 2026-12 (fifty columns with gaps were fifty blocks, ~10 ms a step);
    # models saved before keep their one-pair blocks, which build and load as they did
    torch.manual_seed(0)
    together = build_likelihood([LikelihoodBlock("zero_inflated", 6)])
    apart = build_likelihood([LikelihoodBlock("zero_inflated", 2) for _ in range(3)])
    with torch.no_grad():
        together.blocks[0].value.log_std.copy_(torch.tensor([0.1, -0.4, 0.7]))
        for block, log_std in zip(apart.blocks, (0.1, -0.4, 0.7)):
            block.value.log_std.fill_(log_std)
    params = torch.randn(64, 6)
    x = torch.stack([torch.rand(64, 3) < 0.6, torch.randn(64, 3)], dim=-1).flatten(-2).float()
    x[:, 1::2] *= x[:, 0::2]  # a value only where the indicator is 1
    torch.testing.assert_close(together.log_prob(params, x), apart.log_prob(params, x))
    torch.testing.assert_close(together.mean(params), apart.mean(params))
    torch.testing.assert_close(together.saturated_log_prob(x), apart.saturated_log_prob(x))
    draws = together.sample(params.repeat(500, 1), torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws[:, 0::2].mean(0), torch.sigmoid(params[:, 0::2]).mean(0), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="each column as 2 features"):
        LikelihoodBlock("zero_inflated", 3)


def test_consecutive_categorical_blocks_score_together_as_each_would_alone():
    # forty categorical columns were forty blocks in every step; a run of them is one gather and one log_softmax
    torch.manual_seed(0)
    sizes = [3, 5, 2, 4]
    blocks = [LikelihoodBlock("gaussian", 2), *[LikelihoodBlock("categorical", n) for n in sizes],
              LikelihoodBlock("zero_inflated", 2), LikelihoodBlock("categorical", 3)]
    composite = build_likelihood(blocks)
    assert len(composite.runs) == 1 and composite.state_dict().keys() == {
        "blocks.0.log_std", "blocks.5.value.log_std"}  # nothing of the run in a checkpoint
    x = torch.cat([torch.randn(16, 2), *[F.one_hot(torch.randint(0, n, (16,)), n).float() for n in sizes],
                   torch.tensor([[1.0, 0.5]]).repeat(16, 1), F.one_hot(torch.randint(0, 3, (16,)), 3).float()], -1)
    params = torch.randn(16, composite.param_dim, requires_grad=True)
    fused = composite.log_prob(params, x)
    one_by_one = sum(block.log_prob(p, xb) for block, p, xb in composite._split(params, x))
    torch.testing.assert_close(fused, one_by_one)
    grad_fused, = torch.autograd.grad(fused.sum(), params)
    grad_apart, = torch.autograd.grad(one_by_one.sum(), params)
    torch.testing.assert_close(grad_fused, grad_apart)
