"""The notebook API: a VAE fitted to an array or a DataFrame, shaped like PyOD's detectors (`VAEDetector`) and
SDV's synthesizers (`VAESynthesizer`), with embeddings (`transform`) on both, stored in the registry's format.

`fit` does what `vaepipe prepare` + `vaepipe train` do, with the same code: prepare's column roles, cleaning,
hash-of-row-id split and train-split statistics; the model `vaepipe train` builds for the same config (every
default is `vae_core.spec.DEFAULT_*` / `training.config`); the training loop the Ray Train workers run; the
validation-split calibration and the model card. By default it runs in this process (`engine="auto"`: below
the measured crossover, and never when attached to a Ray cluster); `engine="ray"` (with `scaling=`) writes
the prepared rows to `storage` and runs the same fit as a Ray Train job. Scores, samples and embeddings come
from the scoring, generating and embedding jobs' own model actors, so the numbers are `vaepipe score` /
`generate` / `embed`'s. `save` registers a new version in a storage root (`vaepipe score --model NAME@V`
scores it); `load("NAME@V", storage=...)` opens any registered version.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from pipelines.errors import UserError
from pipelines.runtime.engine import EngineChoice
from pipelines.training.config import TrainJobConfig
from vaepipe.data import model_input, restore_dtypes, source_table

# the row count of one model call: what a scoring actor takes by default (batch.config.ComputeConfig.batch_size)
SCORE_BATCH_ROWS = 4096


class NotFittedError(UserError, AttributeError):
    """A model used before `fit` (or `load`)."""


def _training_config(name: str, config: Any, overrides: dict) -> TrainJobConfig:
    """A `vaepipe train` config: `config` (a YAML path or a dict of its sections) under `overrides` (dotted keys;
    None leaves a field as it is)."""
    import copy

    from pipelines.config import build_config, load_yaml

    data = load_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config or {}))
    data.setdefault("name", name)
    data.setdefault("dataset", name)
    for key, value in overrides.items():
        if value is None:
            continue
        *sections, field = key.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[field] = value
    return build_config(TrainJobConfig, data, source="vaepipe arguments")


class VAEModel(TransformerMixin, BaseEstimator):
    """A VAE fitted to rows (DataFrame, 2-D array) or images ([N, H, W] / [N, C, H, W], uint8 or floats in [0, 1]);
    `transform(X)` gives their embeddings (latent means), `score_samples(X)` each row's ELBO.

    A scikit-learn estimator: `get_params` / `set_params`, `clone`, a step of a `Pipeline` (after a scaler, say),
    `fit_transform` and `set_output(transform="pandas")` (columns mu_0 …), and `score(X)` — the mean ELBO, higher
    is better — so that `GridSearchCV(VAEDetector(), {"latent_dim": [4, 8]})` selects on held-out rows as it does
    for GaussianMixture.

    Every argument is a `vaepipe train` config field (`config`: a YAML file such as configs/digits.yaml or a dict
    of its sections; the others override it, None keeps the config's or vae_core's default):
    latent_dim, hidden, image_likelihood (model.*), epochs, batch_size, lr, beta, seed (train.*), contamination,
    engine ("auto" | "local" | "ray") and scaling (a dict of scaling.*: num_workers, use_gpu, ...).
    `storage` is where `engine="ray"` writes the prepared rows and registers the model (default: a temporary
    folder; on a remote cluster an s3:// root its workers can read). `name` names the model (and its dataset).
    """

    TRANSFORM = "auto"  # numeric columns as `vaepipe prepare` models them by default

    def __init__(self, *, name: str = "notebook", config: Any = None, latent_dim: Optional[int] = None,
                 hidden: Optional[Sequence[int]] = None, image_likelihood: Optional[str] = None,
                 epochs: Optional[int] = None, batch_size: Optional[int] = None, lr: Optional[float] = None,
                 beta: Optional[float] = None, seed: Optional[int] = None, contamination: Optional[float] = None,
                 engine: Optional[str] = None, scaling: Optional[dict] = None, storage: Optional[str] = None,
                 verbose: bool = False):
        self.name, self.config, self.storage, self.verbose = name, config, storage, verbose
        self.latent_dim, self.hidden, self.image_likelihood = latent_dim, hidden, image_likelihood
        self.epochs, self.batch_size, self.lr, self.beta, self.seed = epochs, batch_size, lr, beta, seed
        self.contamination, self.engine, self.scaling = contamination, engine, scaling

    # --- configuration ---------------------------------------------------------------------------

    def training_config(self) -> TrainJobConfig:
        """The `vaepipe train` config this model is fitted with."""
        overrides = {"model.latent_dim": self.latent_dim, "model.image_likelihood": self.image_likelihood,
                     "model.hidden": list(self.hidden) if self.hidden is not None else None,
                     "train.epochs": self.epochs, "train.batch_size": self.batch_size, "train.lr": self.lr,
                     "train.beta": self.beta, "train.seed": self.seed, "contamination": self.contamination,
                     "engine": self.engine}
        overrides.update({f"scaling.{key}": value for key, value in (self.scaling or {}).items()})
        return _training_config(self.name, self.config, overrides)

    def _log(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)

    # --- fit -------------------------------------------------------------------------------------

    def fit(self, X, y=None, *, categorical: Sequence[str] = (), numeric: Sequence[str] = (),
            transform: Optional[str] = None, column_transforms: Optional[dict[str, str]] = None,
            split: Optional[dict[str, float]] = None, impute: str = "error") -> "VAEModel":
        """Fit to the rows of `X` (the normal data, for a detector). Column roles are inferred as `vaepipe prepare`
        infers them; `categorical` / `numeric` override them by name. `transform` is how numeric columns are
        modelled, `vaepipe prepare --transform`'s choice: auto (log1p for skewed non-negative columns, else as
        they are), identity, log1p or quantile (through the empirical CDF: any shape, outliers bounded); the
        default is the class's `TRANSFORM`. `column_transforms` overrides it per column ({"income": "quantile"}).
        `split` is prepare's `split`: the share of rows that train, pick the best epoch (and calibrate a detector's
        threshold) and are held out, by a hash of each row's position ({"train": 0.9, "val": 0.1, "test": 0.0});
        the default is prepare's, 0.8 / 0.1 / 0.1. `impute` is what NaN/inf and missing values become, prepare's
        `--impute`: error (the default), mean, median, drop (the row) or keep (the model learns where values are
        missing: `sample` gives rows with gaps in X's share, and rows with gaps score as they are). `y` (labels)
        is kept in the card's dataset, never trained on."""
        from pipelines.config import build_config
        from pipelines.datasets.preparation import PrepareConfig, prepare_in_memory
        from pipelines.jobs.train import local_blocker
        from pipelines.runtime.engine import choose_engine

        config = self.training_config()
        source = source_table(X, y)
        prepare = build_config(PrepareConfig, {
            "name": config.name, "source": "notebook", "categorical": list(categorical), "numeric": list(numeric),
            "transform": transform or self.TRANSFORM, "column_transforms": dict(column_transforms or {}),
            "impute": impute,
            **({"split": dict(split)} if split is not None else {})}, source="fit arguments")
        if prepare.split["val"] == 0:  # known before any row is prepared
            from pipelines.errors import TrainingError

            raise TrainingError(f"fit(split={prepare.split}): split.val is 0, and fitting picks the best epoch on "
                                "the val rows: give val a share, e.g. split={'train': 0.9, 'val': 0.1, 'test': 0.0}")
        manifest, rows = prepare_in_memory(source, prepare)
        self.engine_ = choose_engine(config.engine, source.rows, config.ray.address, local_blocker(config, manifest))
        self._log(self.engine_.line)
        if self.engine_.engine == "local":
            self._fit_in_process(config, manifest, rows, source.description)
        else:
            self._fit_on_ray(config, source, prepare)
        self._fitted(X, rows)
        return self

    def _fit_in_process(self, config: TrainJobConfig, manifest, rows, where: str) -> None:
        """The workers' loop in this process over prepare's rows held in memory, then the card `vaepipe train`
        registers; the run's checkpoints live in a temporary folder."""
        import torch

        from pipelines.datasets.reader import featurize_batch, numpy_batch
        from pipelines.errors import TrainingError
        from pipelines.training.calibration import batch_scores
        from pipelines.training.budget import plan_budget, with_budget
        from pipelines.training.checkpoints import load_checkpoint, load_checkpoint_state
        from pipelines.training.in_process import train_in_process
        from pipelines.training.model_spec import model_spec_for
        from pipelines.training.registration import model_card
        from pipelines.training.runs import check_not_diverged, new_run_id

        split = np.asarray(rows["split"].to_pylist())
        x = featurize_batch(numpy_batch(rows.select(manifest.feature_columns)), manifest, ())["x"]
        x_train, x_val = (torch.from_numpy(np.ascontiguousarray(x[split == name])) for name in ("train", "val"))
        if len(x_train) == 0 or len(x_val) == 0:
            raise TrainingError(f"{len(x)} rows split into {len(x_train)} train / {len(x_val)} val rows: fitting "
                                f"needs both: more rows, or a larger share in fit(split=...) (this fit's split: "
                                f"{manifest.split.fractions}, by a hash of the row)")
        budget = plan_budget(config, manifest, processes=1)
        config = with_budget(config, budget)
        self._log(budget.line(1))
        spec = model_spec_for(manifest, config.model)
        run_id = new_run_id(config.name)
        with tempfile.TemporaryDirectory(prefix="vaepipe-fit-") as run:
            result = train_in_process(config, manifest, spec, x_train, x_val, run, self._log)
            check_not_diverged(run, config, run_id)
            best, metrics = min(result.best_checkpoints, key=lambda item: item[1]["val_neg_elbo"])
            with best.as_directory() as directory:
                model, _, _ = load_checkpoint(directory)
            with result.checkpoint.as_directory() as directory:
                state = load_checkpoint_state(directory)
        val_batches = np.array_split(x_val.numpy(), max(1, -(-len(x_val) // SCORE_BATCH_ROWS)))
        card = model_card(model, config, f"{where}:{config.name}", manifest, metrics, state,
                          batch_scores(model, val_batches, manifest), run_id, f"{where}:{run_id}")
        self.model_, self.card_, self.reference_ = model, card, None

    def _fit_on_ray(self, config: TrainJobConfig, source, prepare) -> None:
        """The same fit as a Ray Train job: the rows prepared into `storage` and `run_training` on Ray; the model
        is registered there (`reference_`)."""
        from pipelines.jobs.prepare import prepare_dataset
        from pipelines.jobs.train import run_training
        from pipelines.storage.layout import storage_root
        from pipelines.storage.registry import load_registered
        from pipelines.training.runs import new_run_id

        if self.storage is None:
            self._temporary_storage = tempfile.TemporaryDirectory(prefix="vaepipe-storage-")
        root = storage_root(self.storage or self._temporary_storage.name)
        dataset = new_run_id(config.name)  # a dataset of its own, never one a user prepared under this name
        prepare_dataset(prepare.model_copy(update={"name": dataset, "storage": root}), source=source)
        outcome = run_training(config.model_copy(update={"dataset": dataset, "storage": root, "engine": "ray"}),
                               progress=self._log)
        self.model_, self.card_ = load_registered(root, outcome.model)
        self.reference_, self.storage_ = outcome.model, root

    def _fitted(self, X, rows) -> None:
        """What a subclass computes on the training rows once the model is fitted (`rows`: prepare's of X, cleaned
        and imputed as `fit(impute=...)` says)."""

    # --- the fitted model ------------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "model_", None) is not None

    def _require_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"this {type(self).__name__} is not fitted: call fit(X) or {type(self).__name__}"
                                 ".load(...) first")

    @property
    def manifest_(self):
        """The fitted data's manifest (schema, roles, statistics), as `vaepipe prepare` would write it."""
        from pipelines.datasets.manifest import DatasetManifest

        self._require_fitted()
        return DatasetManifest.model_validate(self.card_["dataset"]["manifest"])

    @property
    def feature_names_in_(self) -> np.ndarray:
        """The fitted table's feature columns in its order (scikit-learn's name); a 2-D array is read by them."""
        manifest = self.manifest_
        if manifest.kind == "image":
            raise AttributeError("a model fitted to images has no feature names")
        return np.asarray(manifest.column_order or manifest.feature_columns, dtype=object)

    @property
    def n_features_in_(self) -> int:
        """How many columns X has (scikit-learn's name); for images, the pixels of one."""
        manifest = self.manifest_
        return int(np.prod(manifest.image.shape)) if manifest.kind == "image" else len(self.feature_names_in_)

    def _run_actor(self, actor_class, X, **kwargs) -> dict[str, np.ndarray]:
        """`actor_class` (a batch job's model actor) over the rows of X, in batches as a scoring job makes them."""
        self._require_fitted()
        batch = model_input(self.manifest_, X)
        actor = actor_class(None, None, False, loaded=(self.model_, self.card_), **kwargs)
        rows = len(batch["row_id"])
        outputs = [actor({name: values[start:start + SCORE_BATCH_ROWS] for name, values in batch.items()})
                   for start in range(0, rows, SCORE_BATCH_ROWS)]
        return {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]} if outputs else {}

    def transform(self, X) -> np.ndarray:
        """Embeddings: the latent mean of every row of X, [N, latent_dim] (what `vaepipe embed` writes as mu_*)."""
        from pipelines.jobs.embed import EmbedActor

        out = self._run_actor(EmbedActor, X, passthrough=())
        latent = int(self.card_["spec"]["latent_dim"])
        return np.stack([out[f"mu_{i}"] for i in range(latent)], axis=1) if out else np.zeros((0, latent), np.float32)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """`transform`'s column names, mu_0 … (`vaepipe embed`'s), for `set_output` and ColumnTransformer."""
        self._require_fitted()
        return np.asarray([f"mu_{i}" for i in range(int(self.card_["spec"]["latent_dim"]))], dtype=object)

    def _threshold(self) -> float:
        from pipelines.metrics.anomaly import anomaly_threshold

        self._require_fitted()
        return float(anomaly_threshold(self.card_["calibration"], None, None))

    def _scores(self, X) -> dict[str, np.ndarray]:
        """`vaepipe score`'s columns for every row of X."""
        from pipelines.jobs.score import ScoreActor

        return self._run_actor(ScoreActor, X, threshold=self._threshold(), iw_samples=0, passthrough=())

    def score_samples(self, X) -> np.ndarray:
        """The ELBO of every row of X in nats, higher = more typical, as scikit-learn's density models
        (GaussianMixture, KernelDensity) give log-likelihoods: `vaepipe score`'s −neg_elbo (β = 1, the
        reconstruction at the posterior mean, so the same rows give the same numbers)."""
        return -self._scores(X).get("neg_elbo", np.zeros(0, np.float32))

    def score(self, X, y=None) -> float:
        """The mean ELBO per row of X (nats): what GridSearchCV and cross_val_score maximise by default."""
        return float(np.mean(self.score_samples(X)))

    def inverse_transform(self, Z):
        """Rows decoded from latents Z [N, latent_dim] (the decoder's mean), in the fitted data's form: a
        DataFrame with its columns and dtypes, or uint8 images [N, C, H, W] — `transform`'s way back, as
        scikit-learn's `PCA.inverse_transform`; what `vaepipe generate --from-embeddings` writes."""
        import pandas as pd
        import torch

        from pipelines.jobs.generate import decoded_rows
        from vae_core import decode_latents

        self._require_fitted()
        z = torch.as_tensor(np.asarray(Z, dtype=np.float32))
        latent = int(self.card_["spec"]["latent_dim"])
        if z.ndim != 2 or z.shape[1] != latent:
            raise ValueError(f"Z must be [N, {latent}] (this model's latent size); got shape {tuple(z.shape)}")
        manifest = self.manifest_
        rows = decoded_rows(manifest, decode_latents(self.model_, z, None, mode="mean"))
        return rows[manifest.image.column] if manifest.kind == "image" else pd.DataFrame(rows)

    # --- registry --------------------------------------------------------------------------------

    def save(self, path_or_uri: str, name: Optional[str] = None) -> str:
        """Register the model as a new version of `name` (default: this model's name) in the storage root
        `path_or_uri` (a local folder or s3://bucket/prefix): models/<name>/<version>/ with the weights
        (safetensors) and the card, as `vaepipe train` registers. Returns `NAME@VERSION`, what
        `vaepipe score --model` and `load` take."""
        from pipelines.storage.layout import storage_root
        from pipelines.storage.registry import register_model
        from vae_core import model_to_bytes

        self._require_fitted()
        model_name = name or self.card_.get("name") or self.name
        weights, _ = model_to_bytes(self.model_)
        card = {key: value for key, value in self.card_.items() if key not in ("name", "version", "registered_at")}
        version = register_model(storage_root(path_or_uri), model_name, weights, card)
        self.reference_ = f"{model_name}@{version}"
        return self.reference_

    @classmethod
    def load(cls, reference: str, storage: Optional[str] = None):
        """A registered version: `NAME@VERSION` / `NAME@latest` / `NAME@PROMOTED` in the storage root `storage`
        (default $VAEPIPE_STORAGE or s3://vaepipe), or the version's own folder (`<root>/models/NAME/VERSION`)."""
        from pipelines.storage.layout import parse_model_version_uri, storage_root
        from pipelines.storage.registry import load_registered

        located = parse_model_version_uri(reference)
        if located is not None:
            storage, reference = located[0], f"{located[1]}@{located[2]}"
        root = storage_root(storage)
        model, card = load_registered(root, reference)
        instance = cls(name=card.get("name", "notebook"), contamination=card["calibration"]["contamination"])
        instance.model_, instance.card_ = model, card
        instance.reference_, instance.storage_ = f"{card.get('name')}@{card.get('version')}", root
        instance.engine_ = EngineChoice("local", "loaded from the registry")
        return instance


class VAEDetector(VAEModel):
    """An anomaly detector shaped like PyOD's: `fit(X)` on normal rows, then `decision_scores_` (the training
    rows' scores), `threshold_`, `labels_` (0 normal, 1 outlier), `decision_function(X)`, `predict(X)` and
    `predict_proba(X)`.

    The score is `vaepipe score`'s `anomaly_score` (higher = more anomalous). `threshold_` is the model card's:
    the (1 − contamination) quantile of the validation split's scores, the threshold `vaepipe score` flags by
    (PyOD takes it over the training rows; here they are held out, so it does not flatter the model).
    `predict_proba` is the score's percentile among the validation scores (`vaepipe score`'s `percentile`).
    `contamination` (the expected share of outliers) defaults to `vaepipe train`'s, 0.01.
    """

    def fit(self, X, y=None, **options) -> "VAEDetector":
        if options.get("impute", "error") not in ("error", "keep"):
            from pipelines.datasets.sources import SourceError

            # its training rows are scored as given (decision_scores_), and so is every row after: as PyOD's.
            # keep scores them as given too: a gap is part of the row the model learned
            raise SourceError(f"fit(impute={options['impute']!r}): a detector scores rows as they are; clean X "
                              "first, or pass impute='keep' to learn where values are missing (mean, median and "
                              "drop are VAESynthesizer's)")
        return super().fit(X, y, **options)

    @property
    def threshold_(self) -> float:
        return self._threshold()

    def _fitted(self, X, rows) -> None:
        scores = self._scores(X)
        self.decision_scores_, self.labels_ = self._score_of(scores), self._flags_of(scores)

    def _score_of(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        from pipelines.metrics.anomaly import score_column

        return scores.get(score_column(self.card_["calibration"]), np.zeros(0, np.float32))

    @staticmethod
    def _flags_of(scores: dict[str, np.ndarray]) -> np.ndarray:
        # the scoring actor's is_anomaly: one rule for the CLI and the notebook (a NaN score is flagged too)
        return scores.get("is_anomaly", np.zeros(0, bool)).astype(int)

    def decision_function(self, X) -> np.ndarray:
        """The anomaly score of every row of X (`vaepipe score`'s anomaly_score; higher = more anomalous)."""
        return self._score_of(self._scores(X))

    def predict(self, X) -> np.ndarray:
        """1 for rows scored above `threshold_` (outliers), 0 for the others."""
        return self._flags_of(self._scores(X))

    def predict_proba(self, X) -> np.ndarray:
        """[N, 2]: the probability of normal and of outlier — the score's percentile among the validation scores."""
        outlier = self._scores(X).get("percentile", np.zeros(0)) / 100.0
        return np.stack([1.0 - outlier, outlier], axis=1)


class VAESynthesizer(VAEModel):
    """A synthesizer shaped like SDV's: `fit(df)` (column roles as `vaepipe prepare` infers them, `categorical=` /
    `numeric=` to override), then `sample(num_rows, seed=..., temperature=..., sampler=...)`: a DataFrame with the
    fitted frame's column names, order, dtypes and categorical levels — the rows `vaepipe generate` writes for the same
    model, seed, temperature and sampler. Fitted to images, `sample` returns uint8 images [n, C, H, W].

    Like `vaepipe generate`, a table fitted here samples by default from a Gaussian mixture fitted to the
    training rows' posterior means (`latent_mixture_`, `sampler="gmm"`; `"prior"` for N(0, I)); a synthesizer
    opened with `load` has no training rows, so it samples from the prior, as `generate` does for it.

    Numeric columns go through the quantile transform by default (`fit(transform=...)` to change it): on the five
    tables of benchmarks/synthesis.py, seed 0, it scored +0.017 SDMetrics overall over prepare's `auto` rule (mean
    0.920 against 0.904) for −0.018 TSTR (0.677 against 0.695): `--seeds 3` and `--api-transform auto` there,
    benchmarks/results/synthesis_3seeds.md and synthesis_api_auto.md.

    It keeps prepare's split (80 % of the rows train, 10 % pick the best epoch, 10 % held out): training on 90 %
    (`fit(split={"train": 0.9, "val": 0.1, "test": 0.0})`) did not score better there — seed 0, our own metrics
    (`--api-split 0.9 0.1 0`, synthesis_api_split90.md): mean overall 0.916 against 0.920, mean TSTR 0.661
    against 0.677, lower on diabetes (0.866 / R² 0.248 against 0.884 / 0.284), slightly higher on randhie and
    fair overall."""

    TRANSFORM = "quantile"

    def _fitted(self, X, rows) -> None:
        from pipelines.datasets.reader import featurize_batch, numpy_batch
        from pipelines.jobs.generate import MIXTURE_ROWS
        from pipelines.training.tabular_synthesis import fit_latent_mixture

        self.latent_mixture_ = None
        manifest = self.manifest_
        if manifest.kind != "image":
            import torch

            # prepare's rows, not X: with fit(impute=...) X has the gaps prepare filled or dropped
            x = featurize_batch(numpy_batch(rows.slice(0, MIXTURE_ROWS).select(manifest.feature_columns)), manifest,
                                ())["x"]
            self.latent_mixture_ = fit_latent_mixture(self.model_, torch.from_numpy(np.asarray(x, np.float32)),
                                                      seed=self.seed or 0)

    def sample(self, num_rows: int, seed: int = 0, temperature: float = 1.0, sampler: str = "auto"):
        """`num_rows` new rows (SDV's name); z from the mixture fitted to the training rows' latents (tables fitted
        here: sampler auto or gmm) or from the prior N(0, temperature² I) (images, loaded models, sampler prior); the
        same seed gives the same rows."""
        from pipelines.jobs.generate import SAMPLE_ID, GenerateActor, GenerateJobConfig, sample_blocks

        self._require_fitted()
        if num_rows < 1:
            raise UserError(f"sample(num_rows={num_rows}): num_rows must be at least 1")
        mixture = getattr(self, "latent_mixture_", None)
        if sampler not in ("auto", "prior", "gmm"):
            raise UserError(f"sample(sampler={sampler!r}): use 'auto', 'prior' or 'gmm'")
        if sampler == "gmm" and mixture is None:
            raise UserError("sample(sampler='gmm') needs the mixture fitted to the training rows, which exists only "
                            "after fit() on a table here (a loaded model samples the prior): use sampler='prior'")
        actor = GenerateActor(None, None, False, seed=seed, temperature=temperature, loaded=(self.model_, self.card_),
                              mixture=None if sampler == "prior" else mixture)
        block_rows = GenerateJobConfig.model_fields["block_rows"].default
        parts = [actor.generate(b["block"], b["start"], b["rows"]) for b in sample_blocks(num_rows, block_rows)]
        manifest = self.manifest_
        if manifest.kind == "image":
            images = np.concatenate([part[manifest.image.column] for part in parts])
            return images.reshape(-1, *manifest.image.shape)
        frame = pd.concat([pd.DataFrame({k: v for k, v in part.items() if k != SAMPLE_ID}) for part in parts],
                          ignore_index=True)
        return restore_dtypes(frame, manifest)
