"""What `prepare` needs to know about a numeric column's train values, as summaries that merge.

A summary of a whole column and the merge of summaries of its pieces give the same statistics (up to float
rounding), so `prepare` computes them in one pass over a source held in memory or block by block over a source
larger than memory (`datasets.table_stream`), on one process or many. Central moments are merged with Pébay's
pairwise formulas (Pébay 2008, "Formulas for robust, one-pass parallel computation of covariances and
arbitrary-order statistical moments"), which stay accurate where raw power sums cancel (a column near 1e9 with
a spread of 1). Quantiles need the values: a summary keeps them all, or a uniform sample chosen by a hash of
the row id once a column has more train rows than `SAMPLE_ROWS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# train values kept for quantiles and medians; above it a uniform sample of about this many (1M values: the
# error of a sampled quantile is ~1e-3 of the rank, and the sample is 8 MB per column)
SAMPLE_ROWS = 1_000_000


@dataclass
class Moments:
    """Count, mean and the 2nd and 3rd central sums (Σ(x-mean)², Σ(x-mean)³) of some values."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        if len(values) == 0:
            return cls()
        mean = float(np.mean(values))
        centered = values - mean
        return cls(len(values), mean, float(np.sum(centered ** 2)), float(np.sum(centered ** 3)))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta ** 2 * self.n * other.n / n
        m3 = (self.m3 + other.m3 + delta ** 3 * self.n * other.n * (self.n - other.n) / n ** 2
              + 3.0 * delta * (self.n * other.m2 - other.n * self.m2) / n)
        return Moments(n, self.mean + delta * other.n / n, m2, m3)

    def std(self) -> float:
        """The population standard deviation; 1.0 for a constant column, which would otherwise divide by zero
        when standardized (it stays at 0)."""
        spread = math.sqrt(max(self.m2, 0.0) / self.n) if self.n else 0.0
        return spread if spread > 1e-12 else 1.0

    def skewness(self) -> float:
        spread = math.sqrt(max(self.m2, 0.0) / self.n) if self.n else 0.0
        return (self.m3 / self.n) / spread ** 3 if spread > 1e-12 else 0.0


def _log1p(values: np.ndarray) -> np.ndarray:
    # only read for non-negative columns (and log1p, which refuses values ≤ -1): other values may give NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log1p(values)


def _two_distinct(values: np.ndarray) -> tuple:
    """Up to two distinct values, without sorting them all."""
    if not len(values):
        return ()
    others = values[values != values[0]]
    return tuple(sorted({float(values[0]), *([float(others[0])] if len(others) else [])}))


# a day, an hour, a minute, a second and a millisecond in microseconds, the unit timestamps are modelled in: a
# timestamp column of dates (every value at midnight) or of whole seconds is generated at that resolution
TIME_STEPS = (86_400e6, 3_600e6, 60e6, 1e6, 1e3)


def _step(values: np.ndarray) -> float:
    if not np.all(np.equal(np.mod(values, 1), 0)):
        return 0.0
    # the first values rule most steps out without a pass over the block (a column of counts: every one)
    return next((step for step in TIME_STEPS if np.all(np.equal(np.mod(values[:64], step), 0))
                 and np.all(np.equal(np.mod(values, step), 0))), 1.0)


@dataclass
class NumericSummary:
    """A numeric column's train values, as `preparation.numeric_stats` reads them."""

    values: Moments = field(default_factory=Moments)
    nonzero: Moments = field(default_factory=Moments)
    log_values: Moments = field(default_factory=Moments)
    log_nonzero: Moments = field(default_factory=Moments)
    min: float = math.inf
    max: float = -math.inf
    # the largest of TIME_STEPS that every value is a whole multiple of (1: whole numbers only, 0: not even that)
    step: float = TIME_STEPS[0]
    zeros: int = 0
    # up to two distinct non-zero values: enough to tell whether the non-zero part varies
    distinct_nonzero: tuple = ()
    # the values quantiles are taken from: all of them (`sample_rate` 1) or a uniform sample at that rate
    sample: np.ndarray = field(default_factory=lambda: np.empty(0))
    sample_rate: float = 1.0

    @classmethod
    def of(cls, values: np.ndarray, sample: np.ndarray | None = None, sample_rate: float = 1.0) -> NumericSummary:
        """The summary of `values`; `sample` (default: all of them) is what quantiles will be taken from."""
        values = np.asarray(values, dtype=np.float64)
        nonzero = values[values != 0]
        return cls(
            values=Moments.of(values), nonzero=Moments.of(nonzero), log_values=Moments.of(_log1p(values)),
            log_nonzero=Moments.of(_log1p(nonzero)),
            min=float(np.min(values)) if len(values) else math.inf,
            max=float(np.max(values)) if len(values) else -math.inf,
            step=_step(values), zeros=int(len(values) - len(nonzero)),
            distinct_nonzero=_two_distinct(nonzero),
            sample=values if sample is None else np.asarray(sample, dtype=np.float64), sample_rate=sample_rate)

    def merge(self, other: NumericSummary) -> NumericSummary:
        return NumericSummary(
            values=self.values.merge(other.values), nonzero=self.nonzero.merge(other.nonzero),
            log_values=self.log_values.merge(other.log_values), log_nonzero=self.log_nonzero.merge(other.log_nonzero),
            min=min(self.min, other.min), max=max(self.max, other.max),
            step=min(self.step, other.step), zeros=self.zeros + other.zeros,
            distinct_nonzero=tuple(sorted(set(self.distinct_nonzero) | set(other.distinct_nonzero))[:2]),
            sample=np.concatenate([self.sample, other.sample]), sample_rate=min(self.sample_rate, other.sample_rate))

    def with_copies(self, value: float, count: int) -> NumericSummary:
        """The summary once `count` more rows hold `value` (what imputation adds to the train split)."""
        if count == 0:
            return self
        copies = np.full(count, value, dtype=np.float64)
        sampled = copies[: int(round(count * self.sample_rate))]
        return self.merge(NumericSummary.of(copies, sample=sampled, sample_rate=self.sample_rate))

    @property
    def integer(self) -> bool:
        """Every value is a whole number."""
        return self.step >= 1

    @property
    def count(self) -> int:
        return self.values.n

    @property
    def zero_share(self) -> float:
        return self.zeros / self.count if self.count else 0.0

    def median(self) -> float:
        return float(np.median(self.sample))
