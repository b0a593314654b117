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


NEIGHBOURS = 5  # as SMOTE's k_neighbors default


def interpolate_latents(anchors: torch.Tensor, n: int, generator: torch.Generator | None = None,
                        anchor_conditions: torch.Tensor | None = None, condition: torch.Tensor | None = None,
                        neighbours: int = NEIGHBOURS) -> torch.Tensor:
    """z [n, latent_dim] between real rows' latents: SMOTE (Chawla et al. 2002) in latent space.

    Row r takes a random anchor (a training row's posterior mean, `anchors` [N, latent_dim]) whose condition
    matches the row's, one of that anchor's `neighbours` nearest matching anchors, and a uniform point on the
    segment between them. A conditional model's rows match an anchor when every level asked for in
    `condition[r]` (one-hots [n, C]; zeros ask for nothing) is set in `anchor_conditions` [N, C] (zeros:
    unknown, e.g. an unlabelled row, which matches only rows that ask for nothing). Decoded with the same
    condition, the rows stay near the class's real rows instead of wherever the prior puts mass — which is
    what a classifier fitted to few labelled rows needs. All randomness comes from `generator` (CPU).
    Raises ValueError naming the first request (row index) that no anchor matches.
    """
    anchors = anchors.float().cpu()
    z = torch.empty(n, anchors.shape[1])
    if condition is None:
        groups, requests = torch.zeros(n, dtype=torch.long), torch.zeros(1, 0)
    else:
        requests, groups = torch.unique(condition.float().cpu(), dim=0, return_inverse=True)
    if anchor_conditions is None:
        anchor_conditions = torch.zeros(len(anchors), requests.shape[1])
    anchor_conditions = anchor_conditions.float().cpu()
    for g, request in enumerate(requests):
        rows = torch.nonzero(groups == g).squeeze(1)
        pool = anchors[(anchor_conditions * request).sum(1) == request.sum()]
        if len(pool) == 0:
            raise ValueError(f"no anchor matches the condition of row {int(rows[0])}")
        first = torch.randint(len(pool), (len(rows),), generator=generator)
        k = min(neighbours, len(pool) - 1)
        if k == 0:
            z[rows] = pool[first]
            continue
        chosen, back = torch.unique(first, return_inverse=True)
        nearest = torch.cat([_nearest(pool, part, k) for part in chosen.split(1024)])
        second = nearest[back, torch.randint(k, (len(rows),), generator=generator)]
        step = torch.rand(len(rows), 1, generator=generator)
        z[rows] = pool[first] + step * (pool[second] - pool[first])
    return z


def _nearest(pool: torch.Tensor, which: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [len(which), k] of the k nearest other rows of `pool` to pool[which] (Euclidean)."""
    distances = torch.cdist(pool[which], pool)
    distances[torch.arange(len(which)), which] = float("inf")
    return distances.topk(k, largest=False).indices
