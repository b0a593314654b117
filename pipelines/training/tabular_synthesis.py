"""Fit a VAE to a DataFrame and sample new rows from it, in one process (no Ray, no storage).

The same pieces as the jobs: `prepare`'s column roles and statistics (`build_arrow_table`,
`numeric_stats`), the feature layout of `pipelines.datasets.features`, the model spec of
`pipelines.train.model_spec_for` and `vae_core`'s β-ELBO with free bits. What differs is the
budget: training runs for a number of optimizer *steps* (not epochs) with a batch size chosen
from the row count, so that a 300-row table gets as many updates as a 30,000-row one
(`training_budget`). `benchmarks/synthesis.py` measures it against SDV; the notebook API can
wrap it.

    synthesizer = fit(frame, categorical=["region"])
    rows = synthesizer.sample(1000, seed=0)      # frame's columns, order and dtypes
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from pipelines.blas import one_blas_thread
from pipelines.config import StrictModel
from pipelines.datasets.features import features_to_table, table_features
from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.preparation import PrepareConfig, prepare_in_memory
from pipelines.datasets.sources import SourceTable
from pipelines.training.budget import EARLY_BEST_SHARE, TABLE_STEPS, in_process_threads, rows_per_step, torch_threads
from pipelines.training.model_spec import model_spec_for
from pipelines.training.config import ModelConfig
from pipelines.training.optimizer import FusedAdam
from vae_core import VAE
from vae_core.noise import seeded_noise
from vae_core.spec import DEFAULT_MLP_HIDDEN

Transform = Literal["auto", "identity", "log1p", "quantile"]
GMM_COMPONENTS = 10


class SynthesisConfig(StrictModel):
    """How `fit` models a table and how `sample` draws from it (defaults: benchmarks/synthesis.py)."""

    transform: Transform = Field(
        "quantile", description="numeric columns as the model sees them: quantile (Φ⁻¹ of the empirical CDF: any "
                                "shape, outliers bounded), auto (prepare's rule: log1p for skewed non-negative "
                                "columns), identity or log1p")
    column_transforms: dict[str, Transform] = Field(default_factory=dict, description="per-column override")
    zero_inflated: Optional[bool] = Field(
        False, description="mostly-zero numeric columns as [is-nonzero, value] pairs (None: prepare's rule); a "
                           "quantile transform already keeps a spike at zero")
    latent_dim: int = Field(16, ge=1)
    hidden: list[int] = Field(default_factory=lambda: list(DEFAULT_MLP_HIDDEN), description="MLP layer widths")
    steps: Optional[int] = Field(None, ge=1, description="optimizer steps (default: training_budget)")
    batch_size: Optional[int] = Field(None, ge=1, description="rows per step (default: training_budget)")
    lr: float = Field(1e-3, gt=0)
    kl_warmup_fraction: float = Field(0.1, ge=0, le=1, description="share of the steps over which β ramps from 0")
    beta: float = Field(1.0, ge=0)
    free_bits: float = Field(0.0, ge=0, description="minimum KL per latent dimension in nats")
    validation_fraction: float = Field(
        0.0, ge=0, lt=1, description="rows held out to pick the best checkpoint (0: every row trains, keep the last)")
    evaluations: int = Field(50, ge=1, description="validation passes over the run (with validation_fraction > 0)")
    sampler: Literal["prior", "gmm"] = Field(
        "gmm", description="where sampled z come from: the N(0, I) prior, or a Gaussian mixture fitted to the "
                           "training rows' posterior means (the aggregate posterior; pythae's GMM sampler)")
    gmm_components: int = Field(GMM_COMPONENTS, ge=1)
    seed: int = 0
    threads: Optional[int] = Field(None, ge=1, description="torch threads while training (default: one for small "
                                                           "steps, else torch's; training.budget.SMALL_STEP_ROWS)")

    @field_validator("hidden")
    @classmethod
    def _hidden_positive(cls, value):
        if not value or min(value) < 1:
            raise ValueError("hidden must be a non-empty list of positive widths")
        return value


def training_budget(rows: int) -> tuple[int, int]:
    """(batch size, optimizer steps) for a table of `rows` training rows: `vaepipe train`'s auto budget for one
    process (`training.budget`), the same number of updates whatever the size."""
    return rows_per_step(rows), TABLE_STEPS


def step_rows(config: SynthesisConfig, rows: int) -> int:
    """Rows per optimizer step: `config.batch_size`, or the budget's for `rows` training rows; at most `rows`."""
    return min(config.batch_size or training_budget(rows)[0], rows)


@dataclass
class FitReport:
    """What training did: the steps, where it stopped and why, the last KL (nats per row) and time."""

    steps: int
    batch_size: int
    best_step: int
    stopped: str
    kl: float
    val_neg_elbo: Optional[float]
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class TabularSynthesizer:
    """A fitted model with the manifest that turns its features back into rows."""

    model: VAE
    manifest: DatasetManifest
    config: SynthesisConfig
    report: FitReport
    latent_mixture: object = None  # sklearn GaussianMixture over training posterior means (sampler "gmm")

    def sample(self, n: int, seed: int = 0, sampler: Optional[str] = None) -> pd.DataFrame:
        """n new rows with the fitted frame's columns, order and dtypes; the same seed gives the same rows."""
        sampler = sampler or self.config.sampler
        generator = torch.Generator().manual_seed(seed)
        if sampler == "gmm":
            z = torch.from_numpy(sample_mixture(self.latent_mixture, n, seed)).float()
        else:
            z = seeded_noise(torch.randn, (n, self.model.spec.latent_dim), torch.device("cpu"), generator)
        with self.model.inference():
            x = self.model.likelihood.sample(self.model.decode(z), generator)
        return features_to_table(self.manifest, x.numpy())


def sample_mixture(mixture, n: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """n draws from a fitted sklearn GaussianMixture with our own seed (its `sample` uses the fit's state);
    `temperature` scales each component's spread around its mean (1: the fitted mixture)."""
    rng = np.random.default_rng(seed)
    components = rng.choice(len(mixture.weights_), size=n, p=mixture.weights_ / mixture.weights_.sum())
    eps = rng.standard_normal((n, mixture.means_.shape[1]))
    chol = np.linalg.cholesky(mixture.covariances_)  # covariance_type "full": [K, Z, Z]
    return mixture.means_[components] + temperature * np.einsum("nij,nj->ni", chol[components], eps)


def table_manifest(frame: pd.DataFrame, categorical: Sequence[str], config: SynthesisConfig,
                   ) -> tuple[DatasetManifest, np.ndarray]:
    """The manifest `prepare` would write for `frame` (its statistics from the train rows) and each row's
    split ("train", or "val" for `validation_fraction` of the rows by prepare's hash of the row id)."""
    source = SourceTable("tabular", "in-memory DataFrame", np.asarray([str(i) for i in range(len(frame))], dtype=object),
                         table=frame.reset_index(drop=True))
    val = config.validation_fraction
    # missing values are learned and generated (prepare's keep), as SDV's synthesizers do; a table without any
    # is prepared exactly as with the default
    prepare = PrepareConfig(name="in-memory", source="dataframe", categorical=list(categorical),
                            split={"train": 1 - val, "val": val, "test": 0.0}, impute="keep")
    numeric_options = {c: {"transform": config.column_transforms.get(c, config.transform),
                           "zero_inflated": config.zero_inflated} for c in frame.columns if c not in categorical}
    manifest, arrow = prepare_in_memory(source, prepare, numeric_options)
    return manifest, np.asarray(arrow["split"].to_pylist())


def fit(frame: pd.DataFrame, categorical: Sequence[str] = (), config: Optional[SynthesisConfig] = None,
        progress=None) -> TabularSynthesizer:
    """Fit a VAE to every row of `frame` (numeric columns unless named in `categorical` or non-numeric)."""
    config = config or SynthesisConfig()
    started = time.perf_counter()
    manifest, split = table_manifest(frame, categorical, config)
    features = table_features(manifest, {c: frame[c].to_numpy() for c in manifest.feature_columns})
    x_train = torch.from_numpy(features[split == "train"])
    x_val = torch.from_numpy(features[split == "val"]) if (split == "val").any() else None
    torch.manual_seed(config.seed)
    model = VAE(model_spec_for(manifest, ModelConfig(latent_dim=config.latent_dim, hidden=config.hidden)))
    with torch_threads(in_process_threads(step_rows(config, len(x_train)), config.threads)):
        report = train_steps(model, x_train, x_val, config, progress)
    report.seconds = time.perf_counter() - started
    synthesizer = TabularSynthesizer(model, manifest, config, report)
    if config.sampler == "gmm":
        synthesizer.latent_mixture = fit_latent_mixture(model, x_train, config.gmm_components, config.seed)
    return synthesizer


def fit_latent_mixture(model: VAE, x_train: torch.Tensor, components: int = GMM_COMPONENTS, seed: int = 0):
    """A full-covariance Gaussian mixture on the training rows' posterior means (the aggregate posterior),
    with at most one component per 20 rows."""
    from sklearn.mixture import GaussianMixture

    with model.inference():
        mu = model.encode(x_train.to(next(model.parameters()).device)).mu.float().cpu().numpy().astype(np.float64)
    components = max(1, min(components, len(mu) // 20))
    with one_blas_thread():  # EM's linear algebra is only latent_dim wide
        return GaussianMixture(components, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(mu)


def train_steps(model: VAE, x_train: torch.Tensor, x_val: Optional[torch.Tensor], config: SynthesisConfig,
                progress=None) -> FitReport:
    """Adam for the step budget over reshuffled passes of the rows; β ramps linearly from 0 over the first
    `kl_warmup_fraction` of the steps. With validation rows, the checkpoint with the best validation
    negative ELBO (β = 1) is kept and the report says at which step; without, the last."""
    batch, steps = step_rows(config, len(x_train)), config.steps or training_budget(len(x_train))[1]
    warmup = max(1, round(config.kl_warmup_fraction * steps)) if config.kl_warmup_fraction > 0 else 0
    # fused: one kernel for every parameter's update instead of a dozen small ops per tensor; a 309-row table's
    # 3,000 steps of 32 rows took 3.7 s instead of 4.6-5.5 s (interleaved runs, one thread; FusedAdam: -0.3 s)
    optimizer = FusedAdam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    evaluate_every = max(1, steps // config.evaluations)
    best, best_state, best_step, history = math.inf, None, steps, []
    order, cursor, kl = torch.randperm(len(x_train), generator=generator), 0, float("nan")
    model.train()
    for step in range(1, steps + 1):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(x_train), generator=generator), 0
        index = order[cursor:cursor + batch]
        cursor += batch
        beta = config.beta * min(1.0, step / warmup) if warmup else config.beta
        out = model(x_train[index], beta=beta, free_bits=config.free_bits)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if step % evaluate_every == 0 or step == steps:
            kl = float(out.kl.detach().mean())
            entry = {"step": step, "beta": beta, "train_loss": float(out.loss.detach()), "kl": kl}
            if x_val is not None:
                with model.inference():
                    entry["val_neg_elbo"] = float(model(x_val).neg_elbo.mean())
                if entry["val_neg_elbo"] < best:
                    best, best_step = entry["val_neg_elbo"], step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(entry)
            if progress:
                progress(entry)
    stopped = f"step budget ({steps} steps of {batch} rows)"
    if best_state is not None:
        model.load_state_dict(best_state)
        stopped += f"; kept the best validation step {best_step}"
        if best_step <= EARLY_BEST_SHARE * steps:
            # the symptom: validation loss rising from the first epochs on (outliers under a learned std)
            stopped += (f" — WARNING: the best step is in the first {EARLY_BEST_SHARE:.0%} of the run; validation "
                        "loss rose while training went on: look for outlying values or use transform 'quantile'")
    return FitReport(steps=steps, batch_size=batch, best_step=best_step, stopped=stopped, kl=kl,
                     val_neg_elbo=None if x_val is None else best, seconds=0.0, history=history)
