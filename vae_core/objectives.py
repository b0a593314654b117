"""The VAE objectives: analytic KL, the β-ELBO with free bits, β-TCVAE's
decomposition of the KL term, and the importance-weighted bound. Everything is
computed in float32."""

import math
from typing import NamedTuple

import torch

from vae_core.noise import seeded_noise

LOG_2PI = math.log(2 * math.pi)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each latent dim: [B, Z]
    (Kingma & Welling 2014, appendix B)."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar)


def kl_diag_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) for a diagonal Gaussian q: [B]."""
    return kl_per_dim(mu, logvar).sum(-1)


def gaussian_log_density_per_dim(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting)."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    return gaussian_log_density_per_dim(z, mu, logvar).sum(-1)


def beta_elbo_loss(recon_nll: torch.Tensor, kl_dims: torch.Tensor, beta: float = 1.0,
                   free_bits: float = 0.0) -> torch.Tensor:
    """Batch-mean of recon NLL + β·KL (Higgins et al. 2017), the KL term with
    free bits (Kingma et al. 2016): each latent dim's KL, averaged over the
    batch, counts as at least `free_bits` nats, so the optimizer gains nothing
    by pushing a dim below it and the dim is not switched off early."""
    kl_term = kl_dims.float().mean(0).clamp_min(free_bits).sum()
    return recon_nll.float().mean() + beta * kl_term


class KLDecomposition(NamedTuple):
    """Batch means of the three parts of the ELBO's KL term, in nats (Chen et al. 2018, eq. 2):
    E[KL(q(z|x) || p(z))] = index-code MI + total correlation + dimension-wise KL."""
    index_code_mi: torch.Tensor      # E[log q(z|x) - log q(z)]: how much z tells about the example
    total_correlation: torch.Tensor  # E[log q(z) - Σ_j log q(z_j)]: dependence between latent dims
    dimension_wise_kl: torch.Tensor  # E[Σ_j log q(z_j) - log p(z_j)]: each marginal's distance to the prior


def log_qz_minibatch_weighted(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                              dataset_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch-weighted-sampling estimates (Chen et al. 2018, §4.1) of the aggregate posterior
    q(z) = (1/N) Σ_n q(z|x_n) at each sampled z_i, and of the product of its marginals:

        log q(z_i)       ≈ logsumexp_k log q(z_i | x_k)       - log(B·N)
        Σ_j log q(z_ij)  ≈ Σ_j [logsumexp_k log q(z_ij | x_k) - log(B·N)]

    for z, mu, logvar: [B, Z] from one minibatch (z_i drawn from q(z|x_i)) of a dataset of N rows.
    Returns both as [B]. Only the batch is used, so each DDP worker computes it from its own batch.
    """
    if not isinstance(dataset_size, int) or dataset_size < 1:
        raise ValueError(f"dataset_size must be the number of training rows, a positive int; got {dataset_size!r}")
    # log q(z_i,j | x_k) for every pair (i, k) and dim j: [B, B, Z].
    log_q_pairs = gaussian_log_density_per_dim(z[:, None, :], mu[None, :, :], logvar[None, :, :])
    log_batch_dataset = math.log(z.shape[0] * dataset_size)
    log_qz = torch.logsumexp(log_q_pairs.sum(-1), dim=1) - log_batch_dataset
    log_qz_product = (torch.logsumexp(log_q_pairs, dim=1) - log_batch_dataset).sum(-1)
    return log_qz, log_qz_product


def kl_decomposition(mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, dataset_size: int) -> KLDecomposition:
    """The KL term of one minibatch split into index-code MI, total correlation and dimension-wise
    KL, with q(z) and its marginals estimated by minibatch-weighted sampling. The three add up to
    the batch mean of log q(z|x) - log p(z) at the sampled z (a one-sample estimate of the KL)."""
    log_qz, log_qz_product = log_qz_minibatch_weighted(z, mu, logvar, dataset_size)
    log_qz_x = gaussian_log_density(z, mu, logvar)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
    return KLDecomposition(index_code_mi=(log_qz_x - log_qz).mean(),
                           total_correlation=(log_qz - log_qz_product).mean(),
                           dimension_wise_kl=(log_qz_product - log_pz).mean())


def beta_tc_loss(recon_nll: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                 dataset_size: int, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0) -> torch.Tensor:
    """β-TCVAE's loss (Chen et al. 2018, eq. 4) for one minibatch, to minimize:

        mean recon NLL + α·index-code MI + β·total correlation + γ·dimension-wise KL.

    Written, as disentanglement_lib does, as the analytic KL plus (α-1), (β-1), (γ-1) times the
    estimated terms: the same in expectation, with less variance, and at α = β = γ = 1 exactly
    `beta_elbo_loss` at β = 1. Chen et al. use α = γ = 1, β = 6 on dSprites. Arguments are
    VAEOutput's `recon_nll`, `mu`, `logvar`, `z`, and the number of training rows N (all DDP
    workers together; each worker passes its own batch)."""
    terms = kl_decomposition(mu, logvar, z, dataset_size)
    extra = (alpha - 1.0) * terms.index_code_mi + (beta - 1.0) * terms.total_correlation \
        + (gamma - 1.0) * terms.dimension_wise_kl
    return recon_nll.float().mean() + kl_per_dim(mu, logvar).sum(-1).mean() + extra


@torch.no_grad()
def iw_log_likelihood(model, x: torch.Tensor, k: int = 100, chunk_size: int = 50,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance-weighted estimate of log p(x): [B] (Burda et al. 2015),

        log p(x) ≈ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,  z_i ~ q(z|x).

    A lower bound in expectation that tightens as k grows; k=1 is the ELBO.
    Samples are decoded `chunk_size` at a time so memory stays bounded in k.
    """
    if k < 1 or chunk_size < 1:
        raise ValueError(f"k and chunk_size must be >= 1; got k={k}, chunk_size={chunk_size}")
    mu, logvar = model.encode(x)
    mu, logvar = mu.float(), logvar.float()
    condition = model.condition(x)  # None unless the model is conditional
    x_flat = model.split_condition(x)[0].reshape(x.shape[0], -1)
    batch, latent = mu.shape
    log_weights = []
    for start in range(0, k, chunk_size):
        n = min(chunk_size, k - start)
        eps = seeded_noise(torch.randn, (n, batch, latent), mu.device, generator)
        z = mu + torch.exp(0.5 * logvar) * eps  # [n, B, Z]
        params = model.decode(z.reshape(n * batch, latent), None if condition is None else condition.repeat(n, 1))
        log_px_z = model.likelihood.log_prob(params, x_flat.repeat(n, 1)).reshape(n, batch)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz_x = gaussian_log_density(z, mu, logvar)
        log_weights.append(log_px_z + log_pz - log_qz_x)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)
