"""The VAE objectives: analytic KL, the β-ELBO with free bits, and the
importance-weighted bound. Everything is computed in float32."""

import math

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


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    return (-0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))).sum(-1)


def beta_elbo_loss(recon_nll: torch.Tensor, kl_dims: torch.Tensor, beta: float = 1.0,
                   free_bits: float = 0.0) -> torch.Tensor:
    """Batch-mean of recon NLL + β·KL (Higgins et al. 2017), the KL term with
    free bits (Kingma et al. 2016): each latent dim's KL, averaged over the
    batch, counts as at least `free_bits` nats, so the optimizer gains nothing
    by pushing a dim below it and the dim is not switched off early."""
    kl_term = kl_dims.float().mean(0).clamp_min(free_bits).sum()
    return recon_nll.float().mean() + beta * kl_term


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
    x_flat = x.reshape(x.shape[0], -1)
    batch, latent = mu.shape
    log_weights = []
    for start in range(0, k, chunk_size):
        n = min(chunk_size, k - start)
        eps = seeded_noise(torch.randn, (n, batch, latent), mu.device, generator)
        z = mu + torch.exp(0.5 * logvar) * eps  # [n, B, Z]
        params = model.decode(z.reshape(n * batch, latent))
        log_px_z = model.likelihood.log_prob(params, x_flat.repeat(n, 1)).reshape(n, batch)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz_x = gaussian_log_density(z, mu, logvar)
        log_weights.append(log_px_z + log_pz - log_qz_x)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)
