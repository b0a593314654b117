"""The VAE (Kingma & Welling 2014): an encoder to q(z|x) = N(mu, diag(exp(logvar))),
a decoder from z to likelihood params, and a likelihood p(x|z) composed from the
spec's blocks. Two encoder/decoder pairs — an MLP for tables and flat vectors,
a stride-2 conv stack for images — share everything else."""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from vae_core.likelihoods import build_likelihood
from vae_core.objectives import beta_elbo_loss, kl_per_dim
from vae_core.spec import ModelSpec

# exp(logvar) stays finite and away from 0 in float32 and bf16 over this range
# (std from ~3e-4 to ~55); wider values only appear when training diverges.
LOGVAR_MIN, LOGVAR_MAX = -16.0, 8.0


class Posterior(NamedTuple):
    mu: torch.Tensor
    logvar: torch.Tensor


@dataclass
class VAEOutput:
    loss: torch.Tensor        # scalar: batch-mean recon NLL + β·KL with free bits, to minimize
    neg_elbo: torch.Tensor    # [B] recon_nll + kl, the true negative ELBO at β=1
    recon_nll: torch.Tensor   # [B] -log p(x|z) for the one sampled z
    kl: torch.Tensor          # [B] KL(q(z|x) || p(z)), analytic
    mu: torch.Tensor          # [B, Z]
    logvar: torch.Tensor      # [B, Z]
    z: torch.Tensor           # [B, Z]
    params: torch.Tensor      # [B, P] decoder outputs (likelihood params)


# SiLU without normalization layers: the nets are two or three layers deep and
# inputs arrive standardized or in [0, 1], so LayerNorm/BatchNorm would add
# parameters and (for BatchNorm) batch-dependent scores without helping training.
def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with SiLU between them, none after the last."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def conv_encoder(channels: int, hidden: tuple[int, ...], height: int, width: int, out_dim: int) -> nn.Sequential:
    """Stride-2 convs halve H and W per stage (k=4, p=1 divides even sizes exactly)."""
    layers, c_in = [], channels
    for c_out in hidden:
        layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.SiLU()]
        c_in = c_out
    h, w = height >> len(hidden), width >> len(hidden)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w, out_dim))


def conv_decoder(latent_dim: int, hidden: tuple[int, ...], channels: int, height: int, width: int) -> nn.Sequential:
    """Mirror of conv_encoder: a linear map to the smallest feature map, then
    stride-2 transposed convs doubling H and W, ending in one logit per pixel."""
    h, w = height >> len(hidden), width >> len(hidden)
    reversed_channels = list(reversed(hidden)) + [channels]
    layers = [nn.Linear(latent_dim, hidden[-1] * h * w), nn.SiLU(), nn.Unflatten(1, (hidden[-1], h, w))]
    for i, (c_in, c_out) in enumerate(zip(reversed_channels[:-1], reversed_channels[1:])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
        if i < len(hidden) - 1:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers, nn.Flatten())


class VAE(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.likelihood = build_likelihood(spec.likelihood)
        latent, params = spec.latent_dim, self.likelihood.param_dim
        if spec.architecture == "mlp":
            widths = list(spec.hidden)
            self.encoder = mlp([spec.feature_dim, *widths, 2 * latent])
            self.decoder = mlp([latent, *reversed(widths), params])
        else:
            # The conv decoder emits one value per pixel; spec.validate() allows
            # only likelihoods with param_dim == feature_dim here.
            channels, height, width = spec.input_shape
            self.encoder = conv_encoder(channels, spec.hidden, height, width, 2 * latent)
            self.decoder = conv_decoder(latent, spec.hidden, channels, height, width)

    def _to_input_layout(self, x: torch.Tensor) -> torch.Tensor:
        # Accept flat rows [B, D] as well as [B, *input_shape].
        x = x.reshape(x.shape[0], *self.spec.input_shape)
        return x.flatten(1) if self.spec.architecture == "mlp" else x

    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) for x: [B, *input_shape] (or flat [B, D])."""
        h = self.encoder(self._to_input_layout(x))
        mu, logvar = h.chunk(2, dim=-1)
        return Posterior(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood params [B, P] for latents z: [B, Z]."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Expected reconstruction E[x | z=mu], in the input layout. Uses the
        posterior mean rather than a sample so the result is deterministic."""
        mean = self.likelihood.mean(self.decode(self.encode(x).mu))
        return mean.reshape(x.shape[0], *self.spec.input_shape)

    def forward(self, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0) -> VAEOutput:
        mu, logvar = self.encode(x)
        # Reparameterization trick: z = mu + sigma * eps keeps z differentiable in (mu, logvar).
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        params = self.decode(z)
        recon_nll = -self.likelihood.log_prob(params, x.reshape(x.shape[0], -1))
        kl_dims = kl_per_dim(mu, logvar)
        kl = kl_dims.sum(-1)
        return VAEOutput(
            loss=beta_elbo_loss(recon_nll, kl_dims, beta, free_bits),
            neg_elbo=recon_nll + kl, recon_nll=recon_nll, kl=kl,
            mu=mu, logvar=logvar, z=z, params=params,
        )

    @contextmanager
    def inference(self):
        """Eval mode and no grad inside the block; the previous mode is restored after."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield self
        finally:
            self.train(was_training)


def build_model(spec: ModelSpec) -> VAE:
    return VAE(spec)
