import torch

from vae_core import VAE, anomaly_scores, kl_diag_gaussian


def test_scores_are_identical_across_calls_including_iw(table_spec, table_data):
    torch.manual_seed(0)
    model = VAE(table_spec)
    first = anomaly_scores(model, table_data[:16], iw_samples=20)
    second = anomaly_scores(model, table_data[:16], iw_samples=20)
    assert set(first) == {"neg_elbo", "recon_nll", "kl", "iw_nll"}
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_iw_nll_is_only_reported_when_asked(table_spec, table_data):
    scores = anomaly_scores(VAE(table_spec), table_data[:4])
    assert set(scores) == {"neg_elbo", "recon_nll", "kl"}


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
