"""`_manifest.json`: what a prepared dataset is, read by every later job.

It records the schema and role of every column, the split rule, the
preprocessing statistics (computed on the train split only), and a checksum per
shard, so a job can refuse a dataset that changed under it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.naming import validate_name

SPLITS = ("train", "val", "test")
# columns prepare writes into every shard beside the features and the label
SYSTEM_COLUMNS = ("row_id", "split")
# the level a categorical column's missing values are stored as when `--impute` keeps them (mean, median): the
# model learns how often a value is missing like any other level, and the rows it gives back have a missing value
# there again (`features.levels_as_source`), never this text
MISSING_LEVEL = "__missing__"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericColumn(_Frozen):
    """A numeric feature: its train-split statistics on the original scale, and how it is scaled for
    the model. A non-negative, strongly right-skewed column (counts, amounts, durations) is modelled
    as log1p(value): a Gaussian fits that far better, and samples keep the long tail. A column that
    is exactly zero in a large share of rows is `zero_inflated`: two features, [nonzero, value], where
    the value's transform and standardization come from its nonzero rows only. A column with `gaps`
    (missing values kept: prepare --impute keep) is two features the same way, [present, value]: the
    model learns where a value is missing, and rows it generates are missing there again."""

    name: str
    dtype: str
    mean: float
    std: float
    min: float
    max: float
    integer: bool = False
    # a timestamp or duration column whose every train value is a whole number of days (hours, minutes, seconds,
    # milliseconds): that step in microseconds, the unit it is modelled in; generated values are rounded to it
    resolution: Optional[float] = None
    transform: Literal["identity", "log1p", "quantile"] = "identity"
    zero_inflated: bool = False
    gaps: bool = False  # never with zero_inflated: one indicator per column
    # standardization of the transformed values (None: the original mean/std, i.e. no transform)
    center: Optional[float] = None
    scale: Optional[float] = None
    # transform "quantile": the train values at evenly spaced probabilities 0..1 (the empirical quantile
    # function); the model sees Φ⁻¹(F(value)), a standard normal whatever the column's shape
    quantiles: Optional[list[float]] = None

    @property
    def width(self) -> int:
        """How many model features this column takes."""
        return 2 if self.zero_inflated or self.gaps else 1

    def to_model(self, values: np.ndarray) -> np.ndarray:
        """Original values [n] → the feature(s) the model sees: [n, width]. With `gaps`, NaN marks a missing value."""
        if self.gaps:
            present = np.isfinite(values)
            scaled = self._scaled(np.where(present, values, self.min))  # any value in range: it is masked out
            return np.stack([present, np.where(present, scaled, 0.0)], axis=1)
        scaled = self._scaled(values)
        if not self.zero_inflated:
            return scaled[:, None]
        nonzero = values != 0
        return np.stack([nonzero, np.where(nonzero, scaled, 0.0)], axis=1)

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        if self.transform == "quantile":
            return quantile_normal(values, np.asarray(self.quantiles))
        return ((np.log1p(values) if self.transform == "log1p" else values) - self._center) / self._scale

    def from_model(self, features: np.ndarray) -> np.ndarray:
        """Model features [n, width] → values on the original scale, clipped to the range seen in
        training (a zero-inflated column is 0 where its indicator is below one half; a column with gaps
        is NaN there)."""
        if self.transform == "quantile":
            values = quantile_normal_inverse(features[:, -1], np.asarray(self.quantiles))
        else:
            values = features[:, -1] * self._scale + self._center
        if self.transform == "log1p":
            values = np.expm1(values)
        values = np.clip(values, self.min, self.max)
        if self.zero_inflated or self.gaps:
            return np.where(features[:, 0] >= 0.5, values, np.nan if self.gaps else 0.0)
        return values

    @property
    def _center(self) -> float:
        return self.mean if self.center is None else self.center

    @property
    def _scale(self) -> float:
        return self.std if self.scale is None else self.scale


# Φ⁻¹ of the quantile transform is taken at probabilities clipped to [ε, 1 − ε]: the model's
# features stay within ±3.1, so no training value, however far out, weighs more than that.
QUANTILE_EPSILON = 1e-3


def quantile_normal(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Φ⁻¹(F(value)) with F the empirical CDF given by `quantiles` (values at probabilities
    linspace(0, 1, K)); a value repeated over a run of quantiles (a point mass: a spike at 0, an
    integer level) gets the middle of its run's probabilities."""
    from scipy.special import ndtri

    probabilities = np.linspace(0.0, 1.0, len(quantiles))
    low = np.interp(values, quantiles, probabilities)
    high = 1.0 - np.interp(-values, -quantiles[::-1], probabilities)
    return ndtri(np.clip(0.5 * (low + high), QUANTILE_EPSILON, 1 - QUANTILE_EPSILON))


def quantile_normal_inverse(features: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Model features back through F⁻¹(Φ(feature)): values within the train range, with the
    train column's point masses (any feature in a run's probability band maps to its value)."""
    from scipy.special import ndtr

    return np.interp(ndtr(features), np.linspace(0.0, 1.0, len(quantiles)), quantiles)


class CategoricalColumn(_Frozen):
    name: str
    dtype: str
    levels: list[str]
    train_counts: list[int]


class ImageSpec(_Frozen):
    column: str = "image"
    shape: tuple[int, int, int]
    max_value: int = 255


class ShardInfo(_Frozen):
    key: str
    rows: int = Field(ge=0)
    size: int = Field(ge=0)
    sha256: str

    @field_validator("key")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # a shard is a file directly in the dataset's folder: never "../other/part" or an absolute path
        return validate_name(value, "shard key")


class SplitRule(_Frozen):
    method: Literal["hash_of_row_id"] = "hash_of_row_id"
    fractions: dict[str, float]
    seed: str = "vaepipe"

    @field_validator("fractions")
    @classmethod
    def _the_three_splits(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(SPLITS):
            raise ValueError(f"must have exactly the splits {list(SPLITS)}, has {sorted(value)}")
        return value


# an augmented dataset's provenance columns: generated rows, and real rows whose label came from the model
SYNTHETIC_COLUMN, PSEUDO_LABEL_COLUMN = "is_synthetic", "label_from_model"


class Augmentation(_Frozen):
    """How an augmented dataset (`vaepipe augment`) was made: the dataset it extends, the conditional model that
    generated its synthetic rows, where those rows are committed, and each class's real and synthetic train rows.
    Its rows say which they are in `column` (true: generated) and, with `pseudo_label`, whose label came from the
    model's classifier in `pseudo_label_column`."""
    dataset: str
    dataset_fingerprint: str
    model: str
    samples: Optional[str] = None  # None when nothing was generated (pseudo-labels only)
    sampler: Optional[str] = None  # where the generated rows' z came from (`vaepipe generate --sampler`)
    classifier_val_accuracy: Optional[float] = None  # the model's q(y|x) on the input's labelled val rows
    pseudo_label: Optional[float] = None  # q(y|x) threshold of `vaepipe augment --pseudo-label`
    column: str = SYNTHETIC_COLUMN
    pseudo_label_column: str = PSEUDO_LABEL_COLUMN
    # level → {"real": n (labelled in the input), "synthetic": m, "pseudo_labelled": k (with pseudo_label)}
    train_rows: dict[str, dict[str, int]]


class DatasetManifest(_Frozen):
    format_version: int = 1
    name: str
    kind: Literal["image", "tabular"]
    source: str
    rows: int
    split_rows: dict[str, int]
    split: SplitRule
    id_column: str = "row_id"
    label_column: Optional[str] = None
    numeric: list[NumericColumn] = Field(default_factory=list)
    categorical: list[CategoricalColumn] = Field(default_factory=list)
    image: Optional[ImageSpec] = None
    impute: str = "error"
    arrow_schema: dict[str, str]
    shards: list[ShardInfo]
    # the source's feature columns in its own order (None: manifests written before it was kept,
    # whose rows come back numeric columns first)
    column_order: Optional[list[str]] = None
    # columns holding each row's known generative factors (the generated samples): never model input, read by
    # `vaepipe interpret` (None: the dataset has none, and manifests written before they were kept)
    factor_columns: Optional[list[str]] = None
    # a conditional model's conditions (`model.condition_on`), each with its levels: set only on the copy of the
    # manifest a model is trained with and carries in its card, never on a prepared dataset. The model input is
    # then the features followed by one one-hot per condition (`pipelines.datasets.conditions`, `condition_levels`).
    condition: Optional[list[CategoricalColumn]] = None
    # set by `vaepipe augment` (None: every row is real)
    augmentation: Optional[Augmentation] = None
    fingerprint: str = ""
    created_at: str

    @property
    def feature_columns(self) -> list[str]:
        if self.kind == "image":
            return [self.image.column]
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def numeric_in_model_order(self) -> list[NumericColumn]:
        """Numeric columns as laid out in the model's features: plain Gaussian ones first, then the
        [indicator, value] pairs, zero-inflated or with gaps (the order `vae_core.ModelSpec.for_table` expects)."""
        return [c for c in self.numeric if c.width == 1] + [c for c in self.numeric if c.width == 2]

    @property
    def condition_dim(self) -> int:
        """Width of the condition one-hots after the features (0: not a conditional model's manifest)."""
        return sum(len(c.levels) for c in self.condition or [])

    @property
    def feature_dim(self) -> int:
        if self.kind == "image":
            c, h, w = self.image.shape
            return c * h * w
        return sum(c.width for c in self.numeric) + sum(len(c.levels) for c in self.categorical)

    @field_validator("split_rows")
    @classmethod
    def _rows_of_the_three_splits(cls, value: dict[str, int]) -> dict[str, int]:
        if set(value) != set(SPLITS):
            raise ValueError(f"must count exactly the splits {list(SPLITS)}, counts {sorted(value)}")
        if any(count < 0 for count in value.values()):
            raise ValueError(f"row counts must be >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _counts_agree(self):
        if sum(self.split_rows.values()) != self.rows:
            raise ValueError(f"split_rows {self.split_rows} add up to {sum(self.split_rows.values())}, "
                             f"not rows {self.rows}")
        # (a manifest built in memory, for rows that never went to storage, lists no shards)
        if self.shards and sum(shard.rows for shard in self.shards) != self.rows:
            raise ValueError(f"shards hold {sum(shard.rows for shard in self.shards)} rows, not rows {self.rows}")
        keys = [shard.key for shard in self.shards]
        if len(set(keys)) != len(keys):
            raise ValueError(f"shard {sorted(k for k in keys if keys.count(k) > 1)[0]!r} is listed more than once")
        return self

    def compute_fingerprint(self) -> str:
        """Stable over what determines the data: schema, roles, split and shard contents."""
        return fingerprint_of(self.model_dump(mode="json"))


# left out of the fingerprint: what it is, and what may change without changing the data
_NOT_FINGERPRINTED = ("fingerprint", "created_at", "source", "condition")


def fingerprint_of(manifest: dict) -> str:
    """The fingerprint of a manifest as stored (JSON). Computed from the stored fields, not from the
    model's, so a field added to DatasetManifest later leaves older manifests' fingerprints valid."""
    payload = {key: value for key, value in manifest.items() if key not in _NOT_FINGERPRINTED}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
