"""The VAE (Kingma & Welling 2014): an encoder to q(z|x) = N(mu, diag(exp(logvar))),
a decoder from z to likelihood params, and a likelihood p(x|z) composed from the
spec's blocks. Two encoder/decoder pairs — an MLP for tables and flat vectors,
a stride-2 conv stack for images — share everything else."""

import math
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


def conv_encoder(channels: int, hidden: tuple[int, ...], height: int, width: int, out_dim: int,
                 extra_inputs: int = 0) -> nn.Sequential:
    """Stride-2 convs halve H and W per stage (k=4, p=1 divides even sizes exactly). The last layer, a linear
    map, also reads `extra_inputs` values (a condition) concatenated to the flattened feature map."""
    layers, c_in = [], channels
    for c_out in hidden:
        layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.SiLU()]
        c_in = c_out
    h, w = height >> len(hidden), width >> len(hidden)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w + extra_inputs, out_dim))


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
    """A VAE, or with `spec.condition_levels` a conditional VAE: the encoder reads [x, y] and the decoder [z, y],
    y being the condition one-hots. With one condition it is Kingma et al.'s (2014) M2 model: a classifier
    q(y|x) fills in y where a row has none, and in training such a row's bound is averaged over every level y
    weighted by q(y|x), so unlabelled rows train the model as well."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.likelihood = build_likelihood(spec.likelihood)
        latent, params, condition = spec.latent_dim, self.likelihood.param_dim, spec.condition_dim
        if spec.architecture == "mlp":
            widths = list(spec.hidden)
            self.encoder = mlp([spec.feature_dim + condition, *widths, 2 * latent])
            self.decoder = mlp([latent + condition, *reversed(widths), params])
        else:
            # The conv decoder emits one value per pixel; spec.validate() allows
            # only likelihoods with param_dim == feature_dim here.
            channels, height, width = spec.input_shape
            self.encoder = conv_encoder(channels, spec.hidden, height, width, 2 * latent, extra_inputs=condition)
            self.decoder = conv_decoder(latent + condition, spec.hidden, channels, height, width)
        if len(spec.condition_levels) == 1:
            (levels,) = spec.condition_levels
            self.classifier = (mlp([spec.feature_dim, *spec.hidden, levels]) if spec.architecture == "mlp"
                               else conv_encoder(*spec.input_shape[:1], spec.hidden, *spec.input_shape[1:], levels))

    @property
    def conditional(self) -> bool:
        return bool(self.spec.condition_levels)

    def _to_input_layout(self, x: torch.Tensor) -> torch.Tensor:
        # Accept flat rows [B, D] as well as [B, *input_shape].
        x = x.reshape(x.shape[0], *self.spec.input_shape)
        return x.flatten(1) if self.spec.architecture == "mlp" else x

    def split_condition(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features [B, D], condition one-hots [B, C]) of a conditional model's input; (x, None) otherwise."""
        if not self.conditional:
            return x, None
        flat = x.reshape(x.shape[0], -1)
        expected = self.spec.feature_dim + self.spec.condition_dim
        if flat.shape[1] != expected:
            raise ValueError(f"a conditional model's input is [B, {self.spec.feature_dim} features + "
                             f"{self.spec.condition_dim} condition one-hots]; got {tuple(x.shape)}")
        return flat[:, :self.spec.feature_dim], flat[:, self.spec.feature_dim:].float()

    def labelled(self, condition: torch.Tensor) -> torch.Tensor:
        """[B] bool: the row has a level for every condition (its one-hots are not all zero)."""
        known = [part.sum(-1) > 0.5 for part in condition.split(list(self.spec.condition_levels), dim=-1)]
        return torch.stack(known, -1).all(-1)

    def class_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """q(y|x) [B, K] of a model with one condition, from the features of its input x (the condition part,
        if any, is not read)."""
        features, _ = self.split_condition(x)
        return self._class_probabilities(features)

    def _class_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "classifier"):
            raise ValueError("only a model with exactly one condition has a classifier q(y|x)")
        return torch.softmax(self.classifier(self._to_input_layout(features)).float(), -1)

    def condition(self, x: torch.Tensor) -> torch.Tensor | None:
        """The condition each row is decoded with: its own level, or q(y|x) where it has none (None when the
        model is not conditional)."""
        features, condition = self.split_condition(x)
        if condition is None:
            return None
        missing = ~self.labelled(condition)
        if missing.any():
            if not hasattr(self, "classifier"):
                raise ValueError("rows without a level for every condition need a model with exactly one "
                                 "condition (it infers the level with its classifier)")
            condition = torch.where(missing[:, None], self._class_probabilities(features), condition)
        return condition

    def _encode(self, features: torch.Tensor, condition: torch.Tensor | None) -> Posterior:
        layout = self._to_input_layout(features)
        if condition is None:
            h = self.encoder(layout)
        elif self.spec.architecture == "mlp":
            h = self.encoder(torch.cat([layout, condition.to(layout.dtype)], -1))
        else:
            flat = self.encoder[:-1](layout)
            h = self.encoder[-1](torch.cat([flat, condition.to(flat.dtype)], -1))
        mu, logvar = h.chunk(2, dim=-1)
        return Posterior(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) (q(z|x, y) for a conditional model) for x: [B, *input_shape] (or flat [B, D]; a conditional
        model's flat [B, D + C])."""
        features, _ = self.split_condition(x)
        return self._encode(features, self.condition(x))

    def default_condition(self, n: int, device=None) -> torch.Tensor:
        """Conditions for n decoded rows when none are given: row i takes level i mod K of each condition, so
        a grid of samples shows every level in turn."""
        parts = [nn.functional.one_hot(torch.arange(n, device=device) % k, k).float()
                 for k in self.spec.condition_levels]
        return torch.cat(parts, -1)

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood params [B, P] for latents z: [B, Z] (and, for a conditional model, condition one-hots
        [B, C]; by default `default_condition`)."""
        if not self.conditional:
            return self.decoder(z)
        if condition is None:
            condition = self.default_condition(len(z), z.device)
        return self.decoder(torch.cat([z, condition.to(z.dtype)], -1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Expected reconstruction E[x | z=mu], in the input layout. Uses the
        posterior mean rather than a sample so the result is deterministic."""
        mean = self.likelihood.mean(self.decode(self.encode(x).mu, self.condition(x)))
        return mean.reshape(x.shape[0], *self.spec.input_shape)

    def _bound(self, features: torch.Tensor, condition: torch.Tensor | None):
        """One-sample terms of the bound for given conditions: (mu, logvar, z, params, recon_nll, kl_dims)."""
        mu, logvar = self._encode(features, condition)
        # Reparameterization trick: z = mu + sigma * eps keeps z differentiable in (mu, logvar).
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        params = self.decode(z, condition)
        recon_nll = -self.likelihood.log_prob(params, features.reshape(features.shape[0], -1))
        return mu, logvar, z, params, recon_nll, kl_per_dim(mu, logvar)

    def forward(self, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0,
                classifier_weight: float = 1.0) -> VAEOutput:
        """The β-ELBO of a batch. For a conditional model with one condition, rows without a level count as
        Σ_y q(y|x)·bound(x, y) + KL(q(y|x) || uniform) — the M2 bound on -log p(x) — and rows with one add
        `classifier_weight` · cross-entropy of q(y|x) to the loss, which is how the classifier learns from
        the labels (Kingma et al. 2014, eq. 9)."""
        features, condition = self.split_condition(x)
        if condition is None or not hasattr(self, "classifier"):
            if condition is not None and not self.labelled(condition).all():
                raise ValueError("rows without a level for every condition need a model with exactly one condition")
            mu, logvar, z, params, recon_nll, kl_dims = self._bound(features, condition)
            kl = kl_dims.sum(-1)
            return VAEOutput(
                loss=beta_elbo_loss(recon_nll, kl_dims, beta, free_bits),
                neg_elbo=recon_nll + kl, recon_nll=recon_nll, kl=kl,
                mu=mu, logvar=logvar, z=z, params=params,
            )
        return self._semi_supervised(features, condition, beta, free_bits, classifier_weight)

    def _semi_supervised(self, features, condition, beta, free_bits, classifier_weight) -> VAEOutput:
        labelled = self.labelled(condition)
        levels = self.spec.condition_levels[0]
        logits = self.classifier(self._to_input_layout(features)).float()
        log_q_y = torch.log_softmax(logits, -1)
        q_y = log_q_y.exp()
        # Labelled rows: the bound at their own y. Unlabelled rows: the bound at every y, weighted by q(y|x).
        rows = torch.nonzero(labelled).squeeze(1)
        unlabelled = torch.nonzero(~labelled).squeeze(1)
        n_u = len(unlabelled)
        every_y = torch.eye(levels, device=features.device).repeat_interleave(n_u, 0)  # [K * n_u, K]
        row_index = torch.cat([rows, unlabelled.repeat(levels)])
        cond = torch.cat([condition[rows], every_y])
        mu, logvar, z, params, recon_nll, kl_dims = self._bound(features[row_index], cond)
        weight = torch.cat([torch.ones(len(rows), device=features.device), q_y[unlabelled].T.reshape(-1)])
        batch = features.shape[0]

        def per_row(values: torch.Tensor) -> torch.Tensor:
            # the weighted sum of each row's terms: one term for a labelled row, K for an unlabelled one
            weighted = values * weight.reshape(-1, *([1] * (values.dim() - 1)))
            return torch.zeros(batch, *values.shape[1:], device=values.device).index_add(0, row_index, weighted)

        recon_row, kl_dims_row = per_row(recon_nll.float()), per_row(kl_dims)
        # KL(q(y|x) || uniform) for unlabelled rows; cross-entropy of the known level for labelled ones
        y_kl = (q_y * log_q_y).sum(-1) + math.log(levels)
        cross_entropy = -(log_q_y * condition.float()).sum(-1)
        extra = torch.where(labelled, classifier_weight * cross_entropy, y_kl)
        kl = kl_dims_row.sum(-1)
        # the latents reported per row: q(z|x, y) at the row's level, or at q(y|x) where it has none
        soft = torch.where(labelled[:, None], condition, q_y)
        mu_row, logvar_row = self._encode(features, soft)
        return VAEOutput(
            loss=beta_elbo_loss(recon_row, kl_dims_row, beta, free_bits) + extra.mean(),
            neg_elbo=recon_row + kl + torch.where(labelled, torch.zeros_like(y_kl), y_kl),
            recon_nll=recon_row, kl=kl, mu=mu_row, logvar=logvar_row,
            z=mu_row + torch.exp(0.5 * logvar_row) * torch.randn_like(mu_row),
            params=self.decode(mu_row, soft),
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
