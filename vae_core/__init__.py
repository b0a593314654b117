"""vae_core: the VAE science layer — specs, likelihoods, models, objectives,
scores, sampling and safe serialization. Depends only on torch (and safetensors).

Names are imported from their modules on first use (PEP 562), so `from vae_core import ModelSpec` (pure Python)
does not import torch: configs and the processes that only build a spec — a Tune trial's actor, Train's
controller, `vaepipe` verbs that train nothing — skip torch's ~2 s import.
"""
from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "vae_core.spec": ("LikelihoodBlock", "ModelSpec"),
    "vae_core.likelihoods": ("Likelihood", "BernoulliLikelihood", "GaussianLikelihood", "CategoricalLikelihood",
                             "CompositeLikelihood", "ZeroInflatedGaussianLikelihood", "build_likelihood"),
    "vae_core.models": ("VAE", "VAEOutput", "Posterior", "build_model"),
    "vae_core.objectives": ("kl_per_dim", "kl_diag_gaussian", "gaussian_log_density", "beta_elbo_loss",
                            "iw_log_likelihood", "KLDecomposition", "kl_decomposition", "log_qz_minibatch_weighted",
                            "beta_tc_loss"),
    "vae_core.scores": ("anomaly_scores",),
    "vae_core.sampling": ("sample_prior", "decode_latents", "interpolate_latents", "encode"),
    "vae_core.serialization": ("save_model", "load_model", "model_to_bytes", "model_from_bytes"),
}
_WHERE = {name: module for module, names in _MODULE_OF.items() for name in names}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vae_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

