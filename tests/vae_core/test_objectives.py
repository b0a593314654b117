import torch

from vae_core import (VAE, beta_elbo_loss, gaussian_log_density, iw_log_likelihood, kl_diag_gaussian,
                      kl_per_dim)


def test_analytic_kl_matches_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 3, 4, generator=g)
    zeros = torch.zeros_like(z)
    monte_carlo = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, zeros, zeros)).mean(0)
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar), monte_carlo, atol=0.03, rtol=0.01)


def test_kl_is_zero_at_the_prior_and_sums_over_dims():
    assert torch.equal(kl_diag_gaussian(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
    mu, logvar = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(kl_per_dim(mu, logvar).sum(-1), kl_diag_gaussian(mu, logvar))


def test_free_bits_floor_each_dims_batch_mean_kl():
    recon = torch.tensor([1.0, 3.0])
    kl_dims = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # batch means 0.2 and 3.0
    torch.testing.assert_close(beta_elbo_loss(recon, kl_dims, beta=1.0, free_bits=0.5), torch.tensor(2.0 + 0.5 + 3.0))


def test_iw_bound_is_above_elbo_and_tightens_with_k(table_spec, table_data, trainer):
    torch.manual_seed(0)
    model = VAE(table_spec)
    trainer(model, table_data, steps=30)
    x = table_data

    def expected_bound(k, repeats):
        # Averaging over repeated draws estimates E[L_k], which Burda et al. prove is non-decreasing in k.
        draws = [iw_log_likelihood(model, x, k=k, chunk_size=25, generator=torch.Generator().manual_seed(seed))
                 for seed in range(repeats)]
        return torch.stack(draws).mean()

    with torch.no_grad():
        elbo = torch.stack([-model(x).neg_elbo for _ in range(20)]).mean()
    bounds = {1: expected_bound(1, 20), 10: expected_bound(10, 5), 100: expected_bound(100, 1)}
    assert bounds[100] >= bounds[10] >= bounds[1]
    assert bounds[100] > elbo
    assert abs(bounds[1] - elbo) < abs(bounds[100] - elbo)  # k=1 is the ELBO itself
