"""The `vaepipe tune` config: a training job config (the template every trial starts from) plus `search`.

Each trial is one training run of `train`/`model`/`scaling` with the searched
fields (`model.latent_dim`, `model.hidden`, `train.beta`, `train.lr`) replaced by
the trial's values. See configs/digits-sweep.yaml.
"""
from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

from pydantic import Field, create_model, field_validator, model_validator

from pipelines.config import StrictModel
from pipelines.training.config import TrainJobConfig


class Dimension(StrictModel):
    """One searched value: exactly one of `choices`, `grid`, `log_uniform`, `uniform`."""

    choices: Optional[list[Any]] = Field(None, description="sample one of these values per trial")
    grid: Optional[list[Any]] = Field(
        None, description="every value, each in its own trials (num_samples repeats the whole grid)")
    log_uniform: Optional[tuple[float, float]] = Field(None, description="[low, high], sampled on a log scale")
    uniform: Optional[tuple[float, float]] = Field(None, description="[low, high]")

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("choices", "grid", "log_uniform", "uniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of choices, grid, log_uniform, uniform (got {given or 'none'})")
        values = self.choices if self.choices is not None else self.grid
        if values is not None and not values:
            raise ValueError(f"{given[0]} must list at least one value")
        bounds = self.log_uniform or self.uniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"{given[0]} must be [low, high] with low < high (got {list(bounds)})")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform bounds must be positive")
        return self


class SearchedField(NamedTuple):
    section: str   # the training config's section ...
    field: str     # ... and field the searched value replaces in each trial
    example: str


# The one declaration of what a sweep can search: the config's `search.space`, the trial configs, the
# results table's columns, the CLI's table and the sweep report all follow it.
SEARCHED_FIELDS = {
    "latent_dim": SearchedField("model", "latent_dim", "{choices: [4, 8, 16, 32]}"),
    "beta": SearchedField("train", "beta", "{log_uniform: [0.25, 4.0]}"),
    "lr": SearchedField("train", "lr", "{log_uniform: [0.0003, 0.01]}"),
    "hidden": SearchedField("model", "hidden", "{choices: [[16, 32], [32, 64]]}"),
}

SearchSpace = create_model(
    "SearchSpace", __base__=StrictModel, __doc__="Which fields a sweep searches, and over what values.",
    **{name: (Optional[Dimension], Field(None, description=f"e.g. {searched.example}"))
       for name, searched in SEARCHED_FIELDS.items()})


class EarlyStopping(StrictModel):
    """ASHA on the validation negative ELBO at β=1 (comparable across β), per epoch."""

    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it may be stopped")
    reduction_factor: float = Field(
        2, gt=1, description="at each rung (grace·rf^k epochs) only the best 1/rf of trials go on")


class SearchConfig(StrictModel):
    metric: Literal["neg_elbo", "mig"] = Field(
        "neg_elbo", description="what the registered trial is selected on: neg_elbo, the lowest validation negative "
                                "ELBO at β=1 (ASHA stops poor trials on it); mig, the highest MIG of the trials' best "
                                "checkpoints on the validation rows (needs a dataset with factor columns; every trial "
                                "runs all its epochs)")
    algorithm: Literal["random", "optuna"] = Field(
        "random", description="random (and grid) sampling, or Optuna's TPE (needs `pip install optuna`)")
    space: SearchSpace = Field(default_factory=SearchSpace)
    num_samples: int = Field(8, ge=1, description="trials (with grid dimensions: repeats of the whole grid)")
    max_concurrent_trials: int = Field(
        2, ge=1, description="upper bound on trials at once; lowered to what fits the cluster: each trial takes "
                             "scaling.num_workers × scaling.cpus_per_worker CPUs plus 1 for Ray Data reads")
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    seed: Optional[int] = Field(0, description="seed of the sampler (null: a different sample every sweep)")


class SweepJobConfig(TrainJobConfig):
    """Everything `vaepipe tune` needs: a training job config (each trial's template) plus `search`."""

    search: SearchConfig = Field(default_factory=SearchConfig)

    @model_validator(mode="after")
    def _sweep_fits_training(self):
        if self.engine == "local":
            raise ValueError("engine local: a sweep runs its trials on Ray Tune; leave engine out (or auto / ray)")
        if self.checkpoint.every_epochs not in (1, "auto"):
            raise ValueError("checkpoint.every_epochs must be 1 in a sweep, so that the best epoch of the best "
                             "trial has a checkpoint to register")
        if self.train.epochs != "auto" and self.search.early_stopping.grace_period > self.train.epochs:
            raise ValueError(f"search.early_stopping.grace_period ({self.search.early_stopping.grace_period}) "
                             f"exceeds train.epochs ({self.train.epochs})")
        if self.search.algorithm == "optuna" and self.search.metric == "mig":
            raise ValueError("search.metric mig is measured once the trials end, so Optuna would steer by the "
                             "validation −ELBO instead: use search.algorithm random (with grid or choices)")
        if self.search.algorithm == "optuna":
            grids = [name for name in SEARCHED_FIELDS if (dim := getattr(self.search.space, name)) and dim.grid]
            if grids:
                raise ValueError(f"search.space {', '.join(grids)}: grid is for algorithm 'random'; with optuna "
                                 "use choices")
        return self

    @field_validator("search")
    @classmethod
    def _something_searched(cls, value: SearchConfig) -> SearchConfig:
        if not any(getattr(value.space, name) for name in SEARCHED_FIELDS):
            raise ValueError(f"search.space is empty: give at least one of {', '.join(SEARCHED_FIELDS)}")
        return value

    def trial_template(self) -> TrainJobConfig:
        """The training config without `search`."""
        return TrainJobConfig.model_validate(self.model_dump(mode="json", exclude={"search"}))

    def template_values(self) -> dict:
        """The searched fields' values in the template, for the columns a sweep does not vary."""
        return {name: getattr(getattr(self, searched.section), searched.field)
                for name, searched in SEARCHED_FIELDS.items()}


def trial_config(template: TrainJobConfig, params: dict) -> TrainJobConfig:
    """The training config of one trial: `template` with the searched fields set to `params`."""
    data = template.model_dump(mode="json")
    for name, value in params.items():
        searched = SEARCHED_FIELDS[name]
        data[searched.section][searched.field] = value
    return TrainJobConfig.model_validate(data)
