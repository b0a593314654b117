"""The `vaepipe train` config: one pydantic model, from YAML + `--set` overrides."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from pipelines.config import StrictModel
from pipelines.naming import validate_name
from pipelines.runtime.engine import ENGINE_HELP, Engine
from pipelines.runtime.ray_session import RayConfig
from pipelines.runtime.tracking import TrackingConfig
from vae_core.spec import (DEFAULT_COLUMN_VARIANCE, DEFAULT_CONV_HIDDEN, DEFAULT_LATENT_DIM, DEFAULT_MLP_HIDDEN,
                           DEFAULT_PIXEL_VARIANCE, DEFAULT_PIXELS)


class ModelConfig(StrictModel):
    """The model's hyperparameters; every default is vae_core's (`vae_core.spec.DEFAULT_*`), so a config that
    leaves a field out gets the model `ModelSpec.for_images` / `for_table` build in a notebook."""

    architecture: Literal["auto", "mlp", "conv"] = Field(
        "auto", description="auto: conv for image datasets, mlp with per-column likelihoods for tables")
    latent_dim: int = Field(DEFAULT_LATENT_DIM, ge=1, le=4096, description="size of the latent code z")
    hidden: Optional[list[int]] = Field(
        None, description=f"mlp layer widths or conv channels per stage (default {DEFAULT_CONV_HIDDEN} conv, "
                          f"{DEFAULT_MLP_HIDDEN} mlp)")
    image_likelihood: Literal["bernoulli", "gaussian"] = Field(
        DEFAULT_PIXELS, description="pixel likelihood of image datasets: bernoulli (cross-entropy over intensities "
                                    "in [0, 1], the density model) or gaussian (squared error over a learned noise "
                                    "level, which ranks anomalies in grey images better)")
    gaussian_variance: Optional[Literal["learned", "shared", "fixed"]] = Field(
        None, description="decoder std of Gaussian features: learned per feature, shared (one learned std for all), "
                          f"or fixed 1; default {DEFAULT_COLUMN_VARIANCE} for table columns, "
                          f"{DEFAULT_PIXEL_VARIANCE} for gaussian pixels")

    condition_on: list[str] = Field(
        default_factory=list,
        description="a conditional VAE (Sohn et al. 2015): generate and score given these columns — the dataset's "
                    "label column (images or tables; rows without a label still train the model, whose classifier "
                    "infers it: Kingma et al. 2014, M2) or a table's categorical columns")

    @field_validator("hidden")
    @classmethod
    def _hidden_positive(cls, value):
        if value is not None and (not value or min(value) < 1):
            raise ValueError("hidden must be a non-empty list of positive widths")
        return value


# a count, or "auto": chosen for the dataset's size when the job starts (`training.budget`)
Count = Union[Annotated[int, Field(ge=1)], Literal["auto"]]
CountOrZero = Union[Annotated[int, Field(ge=0)], Literal["auto"]]


class LoopConfig(StrictModel):
    epochs: Count = Field(
        "auto", description="passes over the training rows; auto: tables get enough epochs for 3,000 optimizer "
                            "steps (at least 10), images 20")
    batch_size: Count = Field(
        "auto", description="per-worker batch size; auto: tables about 1/8 of the training rows per step over all "
                            "workers (a power of two in 32..512), images 128")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    objective: Literal["elbo", "beta_tc"] = Field(
        "elbo", description="elbo: the β-ELBO (β-VAE, Higgins et al. 2017); beta_tc: β-TCVAE (Chen et al. 2018), the "
                            "KL term split into index-code MI (weight alpha), total correlation (weight beta) and "
                            "dimension-wise KL (weight gamma), estimated from each worker's own batch")
    beta: float = Field(1.0, ge=0, description="elbo: weight of the KL term (1 is the plain ELBO); beta_tc: weight of "
                                               "the total correlation (Chen et al. use 6 on dSprites)")
    alpha: float = Field(1.0, ge=0, description="beta_tc only: weight of the index-code mutual information")
    gamma: float = Field(1.0, ge=0, description="beta_tc only: weight of the dimension-wise KL")
    kl_warmup_epochs: CountOrZero = Field(
        "auto", description="epochs over which the KL term's weights (β; with beta_tc also α and γ) ramp linearly "
                            "from 0; auto: the first 10% of the epochs")
    free_bits: float = Field(0.0, ge=0, description="minimum KL per latent dimension in nats (0 = off; elbo only)")
    classifier_weight: Union[Annotated[float, Field(ge=0)], Literal["auto"]] = Field(
        "auto", description="a model conditioned on a label: weight of its classifier's cross-entropy per labelled "
                            "row; auto: 0.1 × train rows / labelled train rows (Kingma et al. 2014's α = 0.1·N), "
                            "times inputs per row / 64 where a row has more than 64 (a 28×28 image: 12.25)")
    grad_clip: Optional[float] = Field(None, gt=0)
    seed: int = 0
    data_loading: Literal["auto", "cache", "stream"] = Field(
        "auto", description="cache: each worker pulls its shard once and shuffles in memory (fastest); "
                            "stream: batches stream from storage every epoch; auto: cache when the shard fits "
                            "in cache_limit_mb")
    cache_limit_mb: int = Field(2048, ge=1)
    mixed_precision: Literal["auto", "bf16", "off"] = Field(
        "auto", description="auto: bf16 autocast on GPU, off on CPU")

    @model_validator(mode="after")
    def _weights_of_the_objective(self):
        if self.objective == "beta_tc" and self.free_bits > 0:
            raise ValueError("train.free_bits applies to objective elbo; β-TCVAE weighs the KL term's parts "
                             "instead (train.alpha, train.beta, train.gamma): set free_bits to 0")
        if self.objective == "elbo" and (self.alpha != 1.0 or self.gamma != 1.0):
            raise ValueError("train.alpha and train.gamma weigh parts of β-TCVAE's KL term: set train.objective "
                             "to beta_tc, or leave them at 1")
        return self


class CheckpointConfig(StrictModel):
    every_epochs: Count = Field(
        "auto", description="checkpoint every N epochs (and always at the last one); auto: every epoch up to 39 "
                            "epochs, then at most 20 checkpoints per run (1 in a sweep)")
    keep: int = Field(2, ge=1, description="checkpoints kept, the best by validation negative ELBO")


class ScalingConfig(StrictModel):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(
        0.5, gt=0, description="logical CPUs per worker; workers together must leave at least one CPU "
                               "for Ray Data reads, or the job would wait forever")
    gpus_per_worker: float = Field(1.0, gt=0, description="GPUs per worker when use_gpu")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="where workers go: PACK fills a node first; STRICT_SPREAD puts each on its own node")
    torch_threads: Optional[int] = Field(
        None, ge=1, description="intra-op threads per worker (default: cpus_per_worker rounded down, at least 1; "
                                "Ray sets 1 — more workers × threads than cores collapses throughput)")
    worker_niceness: int = Field(
        0, ge=0, le=19, description="Unix nice value of the training worker processes. Ray starts workers at 15, "
                                    "so that every Ray daemon preempts them; the training threads then wait on "
                                    "each other at every step (measured: ~20% fewer samples/s on 2 cores)")

    @property
    def threads(self) -> int:
        return self.torch_threads or max(1, int(self.cpus_per_worker))


class TrainJobConfig(StrictModel):
    """Everything `vaepipe train` needs; see configs/digits.yaml."""

    name: str = Field(description="model name in the registry: models/<name>/<version>/")
    dataset: str = Field(description="prepared dataset: a name under <storage>/datasets/ or a full URI")
    storage: Optional[str] = Field(None, description="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: LoopConfig = Field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    engine: Engine = Field("auto", description=ENGINE_HELP + "; local trains one process with "
                                               "scaling.torch_threads threads (default: one for small "
                                               "steps, else one per core; training.budget.SMALL_STEP_ROWS)")
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    max_failures: int = Field(1, ge=0, description="worker-group restarts from the last checkpoint")
    contamination: float = Field(
        0.01, gt=0, lt=1, description="expected anomaly fraction: the threshold is this upper quantile of the "
                                      "validation scores")
    verify_checksums: bool = Field(True, description="check every shard's SHA-256 against the manifest first")

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        return validate_name(value, "model name")

    @model_validator(mode="after")
    def _conditional_objective(self):
        if self.model.condition_on and self.train.objective != "elbo":
            raise ValueError("model.condition_on trains a conditional VAE on the ELBO; train.objective beta_tc is "
                             "for unconditional models")
        if not self.model.condition_on and self.train.classifier_weight != "auto":
            raise ValueError("train.classifier_weight weighs the classifier of a model conditioned on a label: set "
                             "model.condition_on, or leave it out")
        return self
