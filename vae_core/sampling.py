"""Generation from the prior and deterministic encoding."""

import torch

from vae_core.models import VAE, Posterior
from vae_core.noise import seeded_noise


def sample_prior(model: VAE, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
                 mode: str = "mean") -> torch.Tensor:
    """n new inputs [n, *input_shape] decoded from z ~ N(0, temperature² I).

    mode="mean" returns the likelihood mean (smooth images, probabilities for
    one-hot groups); mode="sample" also draws x ~ p(x|z). All randomness comes
    from `generator`, so a seeded generator gives the same output every time.
    Temperature < 1 trades diversity for typical-looking samples; 0 decodes z=0.
    """
    if mode not in ("mean", "sample"):
        raise ValueError(f"mode must be 'mean' or 'sample'; got {mode!r}")
    device = next(model.parameters()).device
    with model.inference():
        z = temperature * seeded_noise(torch.randn, (n, model.spec.latent_dim), device, generator)
        params = model.decode(z)
        x = model.likelihood.mean(params) if mode == "mean" else model.likelihood.sample(params, generator)
    return x.reshape(n, *model.spec.input_shape)


def encode(model: VAE, x: torch.Tensor) -> Posterior:
    """(mu, logvar) of q(z|x), in eval mode without grad: embeddings for downstream use."""
    with model.inference():
        return model.encode(x)
