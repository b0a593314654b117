"""The model a dataset gets: conv or MLP, its likelihoods per data kind, from the job's `model` section."""
from __future__ import annotations

from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import TrainingError
from pipelines.training.config import ModelConfig
from vae_core import ModelSpec


def model_spec_for(manifest: DatasetManifest, config: ModelConfig) -> ModelSpec:
    """The default architecture per data kind: conv + Bernoulli (or Gaussian) pixels for images, MLP + per-column
    likelihoods (Gaussian numeric, zero-inflated Gaussian for mostly-zero numeric columns,
    categorical one-hot groups) for tables."""
    # only what the config sets: every default is the factory's own (vae_core.spec.DEFAULT_*)
    options = {"latent_dim": config.latent_dim,
               "condition_levels": tuple(len(column.levels) for column in manifest.condition or [])}
    if config.hidden is not None:
        options["hidden"] = tuple(config.hidden)
    if config.gaussian_variance is not None:
        options["variance"] = config.gaussian_variance
    if manifest.kind == "image":
        if config.architecture == "mlp":
            raise TrainingError("model.architecture 'mlp' is for tabular datasets; image datasets use 'conv' "
                                "(or 'auto')")
        return ModelSpec.for_images(shape=tuple(manifest.image.shape), pixels=config.image_likelihood, **options)
    if config.architecture == "conv":
        raise TrainingError("model.architecture 'conv' needs an image dataset; tables use 'mlp' (or 'auto')")
    # a column with gaps is the same [indicator, value] pair as a zero-inflated one (NumericColumn.gaps)
    pairs = sum(c.width == 2 for c in manifest.numeric)
    return ModelSpec.for_table(num_numeric=len(manifest.numeric) - pairs, num_zero_inflated=pairs,
                               categorical_levels=[len(c.levels) for c in manifest.categorical], **options)
