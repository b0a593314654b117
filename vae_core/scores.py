"""Per-row anomaly scores: how poorly the model explains each input."""

import torch

from vae_core.models import VAE
from vae_core.objectives import iw_log_likelihood, kl_diag_gaussian


def anomaly_scores(model: VAE, x: torch.Tensor, iw_samples: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores [B] per row, higher = more anomalous, identical on every re-run.

    - "recon_nll": -log p(x | z=mu), decoded at the posterior mean rather than a
      sampled z, so a re-run batch job writes the same numbers;
    - "kl": KL(q(z|x) || p(z)), analytic;
    - "neg_elbo": recon_nll + kl (the negative ELBO with z fixed at mu);
    - "anomaly_score": neg_elbo + the saturated log-likelihood max log p(x | ·),
      i.e. the reconstruction deviance plus kl. It ranks rows like neg_elbo
      except where the best attainable likelihood differs between rows: with a
      Bernoulli over grey intensities, -ELBO includes each pixel's own entropy
      and so ranks images by how grey they are; here that part is removed (it is
      zero for binary pixels, and a constant for Gaussian columns);
    - "iw_nll" (only when iw_samples > 0): -log p(x) estimated with iw_samples
      importance samples (Burda et al. 2015), drawn from a generator seeded with
      `seed` so it too is deterministic.
    A conditional model scores each row given its level (-log p(x|y)), or given q(y|x) where it has none.
    """
    with model.inference():
        mu, logvar = model.encode(x)
        flat = model.split_condition(x)[0].reshape(x.shape[0], -1)
        recon_nll = -model.likelihood.log_prob(model.decode(mu, model.condition(x)), flat)
        kl = kl_diag_gaussian(mu, logvar)
        scores = {"neg_elbo": recon_nll + kl, "recon_nll": recon_nll, "kl": kl,
                  "anomaly_score": recon_nll + kl + model.likelihood.saturated_log_prob(flat)}
        if iw_samples > 0:
            generator = torch.Generator(device=x.device).manual_seed(seed)
            scores["iw_nll"] = -iw_log_likelihood(model, x, k=iw_samples, generator=generator)
    return scores
