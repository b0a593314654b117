"""vae_core: the VAE science layer — specs, likelihoods, models, objectives,
scores, sampling and safe serialization. Depends only on torch (and safetensors)."""

from vae_core.likelihoods import (BernoulliLikelihood, CategoricalLikelihood, CompositeLikelihood,
                                  GaussianLikelihood, Likelihood, ZeroInflatedGaussianLikelihood, build_likelihood)
from vae_core.models import VAE, Posterior, VAEOutput, build_model
from vae_core.objectives import (KLDecomposition, beta_elbo_loss, beta_tc_loss, gaussian_log_density,
                                 iw_log_likelihood, kl_decomposition, kl_diag_gaussian, kl_per_dim,
                                 log_qz_minibatch_weighted)
from vae_core.sampling import decode_latents, encode, interpolate_latents, sample_prior
from vae_core.scores import anomaly_scores
from vae_core.serialization import load_model, model_from_bytes, model_to_bytes, save_model
from vae_core.spec import LikelihoodBlock, ModelSpec

__all__ = [
    "LikelihoodBlock", "ModelSpec",
    "Likelihood", "BernoulliLikelihood", "GaussianLikelihood", "CategoricalLikelihood", "CompositeLikelihood",
    "ZeroInflatedGaussianLikelihood", "build_likelihood",
    "VAE", "VAEOutput", "Posterior", "build_model",
    "kl_per_dim", "kl_diag_gaussian", "gaussian_log_density", "beta_elbo_loss", "iw_log_likelihood",
    "KLDecomposition", "kl_decomposition", "log_qz_minibatch_weighted", "beta_tc_loss",
    "anomaly_scores", "sample_prior", "decode_latents", "interpolate_latents", "encode",
    "save_model", "load_model", "model_to_bytes", "model_from_bytes",
]
