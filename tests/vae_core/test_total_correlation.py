"""β-TCVAE's minibatch-weighted estimator and loss (vae_core/objectives.py), against a hand computation."""
import math

import pytest
import torch

from vae_core import (VAE, beta_elbo_loss, beta_tc_loss, gaussian_log_density, kl_decomposition, kl_per_dim,
                      log_qz_minibatch_weighted)

# Three examples, two latent dims, from a dataset of 7 rows.
MU = [[0.0, 1.0], [0.5, -1.0], [-1.0, 0.2]]
LOGVAR = [[0.0, -1.0], [-0.5, 0.3], [0.2, 0.0]]
Z = [[0.1, 0.8], [0.4, -1.3], [-0.7, 0.0]]
N = 7


def normal_pdf(x: float, mean: float, logvar: float) -> float:
    var = math.exp(logvar)
    return math.exp(-(x - mean) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)


def by_hand() -> dict[str, list[float]]:
    """Chen et al.'s minibatch-weighted sampling written out with loops over plain floats:
    q(z_i) ≈ 1/(B N) Σ_k q(z_i|x_k), q(z_ij) ≈ 1/(B N) Σ_k q(z_ij|x_k)."""
    batch, dims = len(Z), len(Z[0])
    out = {"log_qz": [], "log_qz_product": [], "log_qz_x": [], "log_pz": []}
    for i in range(batch):
        joint = sum(math.prod(normal_pdf(Z[i][j], MU[k][j], LOGVAR[k][j]) for j in range(dims)) for k in range(batch))
        out["log_qz"].append(math.log(joint / (batch * N)))
        out["log_qz_product"].append(sum(
            math.log(sum(normal_pdf(Z[i][j], MU[k][j], LOGVAR[k][j]) for k in range(batch)) / (batch * N))
            for j in range(dims)))
        out["log_qz_x"].append(sum(math.log(normal_pdf(Z[i][j], MU[i][j], LOGVAR[i][j])) for j in range(dims)))
        out["log_pz"].append(sum(math.log(normal_pdf(Z[i][j], 0.0, 0.0)) for j in range(dims)))
    return out


def tensors():
    return torch.tensor(MU), torch.tensor(LOGVAR), torch.tensor(Z)


def test_minibatch_weighted_log_qz_matches_the_hand_computation():
    mu, logvar, z = tensors()
    log_qz, log_qz_product = log_qz_minibatch_weighted(z, mu, logvar, dataset_size=N)
    expected = by_hand()
    torch.testing.assert_close(log_qz, torch.tensor(expected["log_qz"]))
    torch.testing.assert_close(log_qz_product, torch.tensor(expected["log_qz_product"]))


def test_decomposition_matches_the_hand_computation_and_adds_up_to_the_sampled_kl():
    mu, logvar, z = tensors()
    terms = kl_decomposition(mu, logvar, z, dataset_size=N)
    h = by_hand()
    mean = lambda values: torch.tensor(sum(values) / len(values))  # noqa: E731
    torch.testing.assert_close(terms.index_code_mi, mean([a - b for a, b in zip(h["log_qz_x"], h["log_qz"])]))
    torch.testing.assert_close(terms.total_correlation, mean([a - b for a, b in zip(h["log_qz"], h["log_qz_product"])]))
    torch.testing.assert_close(terms.dimension_wise_kl, mean([a - b for a, b in zip(h["log_qz_product"], h["log_pz"])]))
    sampled_kl = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0 * z, 0 * z)).mean()
    torch.testing.assert_close(sum(terms), sampled_kl)


def test_total_correlation_is_larger_when_latent_dims_move_together():
    # The same per-dim marginals; in one batch dim 1 copies dim 0, in the other it is shuffled.
    g = torch.Generator().manual_seed(0)
    first = 2 * torch.randn(256, generator=g)
    logvar = torch.full((256, 2), -4.0)
    dependent = torch.stack([first, first], dim=1)
    independent = torch.stack([first, first[torch.randperm(256, generator=g)]], dim=1)

    def tc(mu):
        return kl_decomposition(mu, logvar, mu + 0.1 * torch.randn(mu.shape, generator=g), 10_000).total_correlation

    assert tc(dependent) > tc(independent) + 1.0


def test_with_unit_weights_the_loss_is_the_elbo_loss():
    mu, logvar, z = tensors()
    recon = torch.tensor([3.0, 1.0, 2.0])
    torch.testing.assert_close(beta_tc_loss(recon, mu, logvar, z, N), beta_elbo_loss(recon, kl_per_dim(mu, logvar)))


def test_each_weight_adds_its_own_term():
    mu, logvar, z = tensors()
    recon = torch.tensor([3.0, 1.0, 2.0])
    base = beta_tc_loss(recon, mu, logvar, z, N)
    terms = kl_decomposition(mu, logvar, z, N)
    torch.testing.assert_close(beta_tc_loss(recon, mu, logvar, z, N, beta=6.0), base + 5.0 * terms.total_correlation)
    torch.testing.assert_close(beta_tc_loss(recon, mu, logvar, z, N, alpha=0.0), base - terms.index_code_mi)
    torch.testing.assert_close(beta_tc_loss(recon, mu, logvar, z, N, gamma=3.0), base + 2.0 * terms.dimension_wise_kl)


def test_dataset_size_must_be_a_positive_int():
    mu, logvar, z = tensors()
    with pytest.raises(ValueError, match="dataset_size"):
        beta_tc_loss(torch.zeros(3), mu, logvar, z, dataset_size=0)


def test_a_vae_trains_on_the_beta_tc_loss_from_its_output(image_spec, image_data):
    torch.manual_seed(0)
    model = VAE(image_spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_of(batch):
        out = model(batch)
        return beta_tc_loss(out.recon_nll, out.mu, out.logvar, out.z, dataset_size=len(image_data), beta=6.0)

    with torch.no_grad():
        before = loss_of(image_data)
    for step in range(60):
        batch = image_data[step % 4 * 64:(step % 4 + 1) * 64]
        loss = loss_of(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = loss_of(image_data)
    assert torch.isfinite(after) and after < 0.8 * before
