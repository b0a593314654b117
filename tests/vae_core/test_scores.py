import torch

import math

from vae_core import VAE, LikelihoodBlock, anomaly_scores, build_likelihood, kl_diag_gaussian


def test_scores_are_identical_across_calls_including_iw(table_spec, table_data):
    torch.manual_seed(0)
    model = VAE(table_spec)
    first = anomaly_scores(model, table_data[:16], iw_samples=20)
    second = anomaly_scores(model, table_data[:16], iw_samples=20)
    assert set(first) == {"neg_elbo", "recon_nll", "kl", "anomaly_score", "iw_nll"}
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_iw_nll_is_only_reported_when_asked(table_spec, table_data):
    scores = anomaly_scores(VAE(table_spec), table_data[:4])
    assert set(scores) == {"neg_elbo", "recon_nll", "kl", "anomaly_score"}


def test_scores_use_the_posterior_mean(image_spec, image_data):
    model = VAE(image_spec)
    x = image_data[:4]
    scores = anomaly_scores(model, x)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        recon_nll = -model.likelihood.log_prob(model.decode(mu), x.flatten(1))
    torch.testing.assert_close(scores["recon_nll"], recon_nll)
    torch.testing.assert_close(scores["neg_elbo"], recon_nll + kl_diag_gaussian(mu, logvar))
    assert all(s.shape == (4,) and not s.requires_grad for s in scores.values())


def test_trained_model_scores_outliers_higher(table_spec, table_data, trainer):
    torch.manual_seed(0)
    model = VAE(table_spec)
    trainer(model, table_data, steps=200)
    outliers = table_data[:16].clone()
    outliers[:, :3] = 8.0  # numerics far outside both clusters
    normal, odd = anomaly_scores(model, table_data[:16]), anomaly_scores(model, outliers)
    assert (odd["neg_elbo"] > normal["neg_elbo"]).all()
    assert (odd["anomaly_score"] > normal["anomaly_score"]).all()


def test_saturated_log_prob_is_the_best_any_params_can_do_and_is_attained():
    torch.manual_seed(0)
    likelihood = build_likelihood([LikelihoodBlock("bernoulli", 3), LikelihoodBlock("gaussian", 2),
                                   LikelihoodBlock("zero_inflated", 2), LikelihoodBlock("categorical", 3)])
    with torch.no_grad():
        likelihood.blocks[1].log_std.copy_(torch.tensor([-0.5, 0.3]))
        likelihood.blocks[2].value.log_std.fill_(-1.0)
    x = torch.cat([torch.rand(8, 3), torch.randn(8, 2), torch.tensor([[1.0, 0.7], [0.0, 0.0]]).repeat(4, 1),
                   torch.eye(3)[torch.randint(0, 3, (8,))]], dim=1)
    best = likelihood.saturated_log_prob(x)
    for _ in range(20):
        assert (likelihood.log_prob(torch.randn(8, likelihood.param_dim) * 3, x) <= best + 1e-5).all()
    # attained by params that reproduce x: logit(x), the value itself, a confident hurdle and level
    confident = 30.0
    attaining = torch.cat([torch.logit(x[:, :3]), x[:, 3:5], (2 * x[:, 5:6] - 1) * confident, x[:, 6:7],
                           x[:, 7:] * confident], dim=1)
    torch.testing.assert_close(likelihood.log_prob(attaining, x), best, atol=1e-4, rtol=1e-5)


def test_anomaly_score_drops_the_pixels_own_entropy_and_equals_neg_elbo_on_binary_pixels(image_spec):
    torch.manual_seed(0)
    model = VAE(image_spec)
    binary = (torch.rand(4, *image_spec.input_shape) > 0.5).float()
    scores = anomaly_scores(model, binary)
    torch.testing.assert_close(scores["anomaly_score"], scores["neg_elbo"])
    grey = torch.full((4, *image_spec.input_shape), 0.5)
    scores = anomaly_scores(model, grey)
    entropy = math.log(2) * grey[0].numel()
    torch.testing.assert_close(scores["anomaly_score"], scores["neg_elbo"] - entropy)
    assert (scores["anomaly_score"] >= scores["kl"] - 1e-4).all()  # a deviance is never negative
