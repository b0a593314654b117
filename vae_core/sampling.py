"""Generation from the prior and deterministic encoding."""

import torch

from vae_core.models import VAE, Posterior
from vae_core.noise import seeded_noise


def sample_prior(model: VAE, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
                 mode: str = "mean", condition: torch.Tensor | None = None) -> torch.Tensor:
    """n new inputs [n, *input_shape] decoded from z ~ N(0, temperature² I).

    mode="mean" returns the likelihood mean (smooth images, probabilities for
    one-hot groups); mode="sample" also draws x ~ p(x|z). All randomness comes
    from `generator`, so a seeded generator gives the same output every time.
    Temperature < 1 trades diversity for typical-looking samples; 0 decodes z=0.
    A conditional model decodes each row with its `condition` one-hots [n, C] (by default
    `VAE.default_condition`: every level in turn); the output is the features only.
    """
    device = next(model.parameters()).device
    z = temperature * seeded_noise(torch.randn, (n, model.spec.latent_dim), device, generator)
    return decode_latents(model, z, generator, mode, condition)


def decode_latents(model: VAE, z: torch.Tensor, generator: torch.Generator | None = None,
                   mode: str = "mean", condition: torch.Tensor | None = None) -> torch.Tensor:
    """Inputs [n, *input_shape] decoded from given latents z [n, latent_dim] (from the prior, a mixture fitted
    to the aggregate posterior, or embeddings); `mode` as in `sample_prior`."""
    if mode not in ("mean", "sample"):
        raise ValueError(f"mode must be 'mean' or 'sample'; got {mode!r}")
    with model.inference():
        device = next(model.parameters()).device
        params = model.decode(z.to(device), None if condition is None else condition.to(device))
        x = model.likelihood.mean(params) if mode == "mean" else model.likelihood.sample(params, generator)
    return x.reshape(len(z), *model.spec.input_shape)


def encode(model: VAE, x: torch.Tensor) -> Posterior:
    """(mu, logvar) of q(z|x), in eval mode without grad: embeddings for downstream use."""
    with model.inference():
        return model.encode(x)
