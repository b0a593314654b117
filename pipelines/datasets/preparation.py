"""How a source becomes a dataset: the `prepare` config, the split of each row, the role of each column,
cleaning, and the statistics the model's features are standardized with (computed on the train split).

Pure steps, each a function; `jobs.prepare` reads the source, runs them, and writes the shards and the
manifest under one commit.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from pipelines.config import StrictModel
from pipelines.datasets.column_stats import NumericSummary
from pipelines.datasets.column_values import (
    MAX_MAGNITUDE, MISSING_WORDS, ValueKind, is_temporal_dtype, looks_like_dates, looks_like_decimal_commas,
    looks_like_times_of_day, merge_kinds, missing_markers_in, numbers, temporal_dtype, thousands_in,
    thousands_separator, value_kind,
)
from pipelines.datasets.features import level_text
from pipelines.datasets.manifest import (
    MISSING_LEVEL, PSEUDO_LABEL_COLUMN, SPLITS, SYNTHETIC_COLUMN, SYSTEM_COLUMNS, CategoricalColumn, DatasetManifest,
    ImageSpec, NumericColumn, SplitRule,
)
from pipelines.datasets.sources import (
    BUILTIN_SOURCES, GENERATED_SOURCES, SourceError, SourceTable, holds_images, load_builtin,
)
from pipelines.naming import validate_name
from pipelines.runtime.engine import Engine
from pipelines.runtime.ray_session import RayConfig

NumericTransform = Literal["auto", "identity", "log1p", "quantile"]


class PrepareConfig(StrictModel):
    """What `vaepipe prepare` does; every field has a CLI flag of the same name."""

    name: str = Field(description="dataset name: datasets/<name>/ under the storage root")
    source: str = Field(description="a built-in sample (digits, mnist5k, breast_cancer, fair, shapes, factor_table), "
                                    "a CSV/Parquet file or prefix (local or s3://), or a folder of PNG/JPEG images")
    rows: Optional[int] = Field(None, gt=0, description="rows to generate (the generated samples shapes and "
                                                        "factor_table; default 10,000)")
    seed: Optional[int] = Field(None, ge=0, description="seed of a generated sample (default 0): the same seed "
                                                        "gives the same rows")
    storage: Optional[str] = Field(None, description="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    rows_per_shard: Optional[int] = Field(None, gt=0, description="rows per Parquet shard (default: about 8 shards)")
    split: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1},
        description="share of rows in each split, assigned by a hash of the row id; val picks the best checkpoint "
                    "and calibrates the anomaly threshold, test is scored by reports and generate's quality figures")
    transform: NumericTransform = Field(
        "auto", description="how numeric columns are modelled: auto (log1p for skewed non-negative columns, "
                            "[is-nonzero, value] pairs for mostly-zero ones, else identity), identity, log1p, or "
                            "quantile (Φ⁻¹ of the train split's empirical CDF: any shape, outliers bounded)")
    column_transforms: dict[str, NumericTransform] = Field(
        default_factory=dict, description="per-column override of transform, e.g. {income: quantile}")
    columns: Optional[list[str]] = Field(None, description="feature columns to keep (tabular; default all)")
    categorical: list[str] = Field(default_factory=list, description="columns to treat as categorical")
    numeric: list[str] = Field(default_factory=list, description="columns that must be numeric")
    id_column: Optional[str] = None
    label_column: Optional[str] = None
    image_shape: Optional[tuple[int, int, int]] = Field(None, description="C,H,W to convert and resize images to")
    impute: Literal["error", "mean", "median", "drop", "keep"] = Field(
        "error", description="what a missing value (NaN/inf, an empty field, --missing's texts) becomes: error, the "
                             "train split's mean or median, drop (the row), or keep (a gap the model learns: a numeric "
                             "column gets an is-present feature, a categorical one a level; generated rows have gaps "
                             "in the same share). mean and median also keep a categorical gap as a level")
    delimiter: Optional[str] = Field(None, min_length=1, max_length=1,
                                     description="CSV field separator (default: a comma; a tab for .tsv files)")
    encoding: str = Field("utf-8", description="CSV text encoding (e.g. latin-1, cp1252; Parquet is always UTF-8)")
    decimal: Literal[".", ","] = Field(".", description="CSV decimal mark: ',' reads 0,5 as a half (with "
                                                        "--delimiter ';', as spreadsheets write it)")
    thousands: Optional[Literal[",", ".", " ", "'"]] = Field(
        None, description="CSV thousands separator, as pandas' thousands: ',' reads 1,234.5 as 1234.5 (only "
                          "numbers grouped by threes lose it; other text is left as it is)")
    missing: list[str] = Field(default_factory=list,
                               description="texts that mean a missing value (CSV fields, Parquet text values), as "
                                           "pandas' na_values (e.g. ['?'], as UCI tables write it), besides the "
                                           "empty field and NA, N/A, NaN, null, #N/A; then --impute says what a gap "
                                           "becomes")
    follow_symlinks: bool = Field(False, description="read files that are symlinks (or inside linked folders) of a "
                                                     "local source; off: such a link is refused")
    overwrite: bool = False
    engine: Engine = Field("auto", description="where CSV/Parquet files are read, checked and written: local (one "
                                               "file after another in this process), ray (one Ray task per file), "
                                               "or auto (ray when attached to a Ray cluster, else local); "
                                               "memory stays bounded on both")
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        return validate_name(value, "dataset name")

    @field_validator("encoding")
    @classmethod
    def _encoding_is_known(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value

    @field_validator("split")
    @classmethod
    def _split_is_a_partition(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(SPLITS):
            raise ValueError(f"split needs exactly the keys {list(SPLITS)}, got {sorted(value)}")
        if any(v < 0 for v in value.values()) or not math.isclose(sum(value.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must be ≥ 0 and sum to 1, got {value}")
        if value["train"] <= 0:
            raise ValueError("split.train must be > 0: statistics are computed on the train split")
        return value

    @field_validator("image_shape")
    @classmethod
    def _shape_is_positive(cls, value):
        if value is not None and (value[0] not in (1, 3) or min(value) < 1):
            raise ValueError(f"image_shape must be C,H,W with C 1 or 3 and H, W ≥ 1; got {value}")
        return value

    @model_validator(mode="after")
    def _roles_do_not_overlap(self):
        both = set(self.categorical) & set(self.numeric)
        if both:
            raise ValueError(f"columns {sorted(both)} are declared both numeric and categorical")
        if self.decimal == "," and (self.delimiter or ",") == ",":
            raise ValueError("decimal ',' needs another delimiter than the comma (spreadsheets write --delimiter ';')")
        if self.thousands == self.decimal:
            raise ValueError(f"thousands {self.thousands!r} is also the decimal mark: 1{self.thousands}234 would "
                             "read two ways (pass --decimal ',' with --thousands '.')")
        return self


# --- pure steps ---------------------------------------------------------------------

def row_units(row_ids: np.ndarray, seed: str) -> np.ndarray:
    """A number in [0, 1) per row from a hash of its id and `seed`: the same for the same id, wherever it is."""
    def unit(row_id) -> float:
        digest = hashlib.blake2b(f"{seed}:{row_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    return np.fromiter((unit(r) for r in row_ids), dtype=np.float64, count=len(row_ids))


def assign_splits(row_ids: np.ndarray, fractions: dict[str, float], seed: str = "vaepipe") -> np.ndarray:
    """A split per row from a hash of its id: stable when rows are added, reordered or re-sharded."""
    u = row_units(row_ids, seed)
    edges = np.cumsum([fractions[s] for s in SPLITS])
    index = np.minimum(np.searchsorted(edges, u, side="right"), len(SPLITS) - 1)
    return np.asarray(SPLITS, dtype=object)[index]


def check_unique_ids(row_ids: np.ndarray, source: str) -> None:
    ids = pd.Series(row_ids)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise SourceError(f"{source}: id {duplicated.iloc[0]!r} appears more than once "
                          f"({len(duplicated)} duplicate ids); ids must be unique")


# an inferred categorical column is refused with more distinct values than this (one one-hot input and
# output per level: an id or free-text column of a million rows would be a million-wide model) ...
MAX_INFERRED_LEVELS = 1000
# ... or with more than this share of its values distinct, from IDENTIFIER_MIN_LEVELS levels: an identifier,
# whose values a generator would copy into its rows
IDENTIFIER_SHARE = 0.5
IDENTIFIER_MIN_LEVELS = 50


@dataclass
class ColumnProfile:
    """What a column's values say about its role, as counts that add up over the blocks of a source."""

    present: int = 0  # values that are not missing
    numbers: int = 0  # of those, values that parse as numbers
    typed_numeric: bool = True  # the source typed it as numbers or timestamps (Parquet, a DataFrame), not as text
    dtype: str = ""  # its pandas dtype, as the whole column would have it
    kind: ValueKind = "number"  # column_values.value_kind
    # distinct values of the blocks that read as text, at most MAX_INFERRED_LEVELS + 1 of them
    levels: frozenset = frozenset()

    @classmethod
    def of(cls, series: pd.Series) -> ColumnProfile:
        kind = value_kind(series)
        typed = kind == "temporal" or bool(pd.api.types.is_numeric_dtype(series)
                                           and not pd.api.types.is_bool_dtype(series))
        present = series.dropna()
        parsed = len(present) if typed or kind in ("nested", "bytes") else int((~np.isnan(numbers(present))).sum())
        levels = frozenset()
        if kind == "text" and parsed < 0.9 * len(present):  # numbers as text (CSV) need no levels
            levels = frozenset(pd.unique(present.astype(str).to_numpy())[:MAX_INFERRED_LEVELS + 1].tolist())
        dtype = str(series.dtype)
        if kind == "temporal":
            dtype = temporal_dtype(series)
        elif kind == "boolean" and dtype != "boolean":  # True/False in an object column; pandas' nullable one stays
            dtype = "bool"
        return cls(len(present), parsed, typed, dtype, kind, levels)

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        # the dtype pandas gives the concatenation of the two (int64 and float64 make float64)
        if self.dtype == other.dtype or not other.present:
            dtype = self.dtype
        elif not self.present:
            dtype = other.dtype
        else:
            try:
                dtype = str(pd.concat([pd.Series([], dtype=self.dtype), pd.Series([], dtype=other.dtype)]).dtype)
            except TypeError:  # a dtype of our own (column_values.DATE_DTYPE) beside another
                dtype = "object"
        levels = self.levels | other.levels
        if len(levels) > MAX_INFERRED_LEVELS + 1:
            levels = frozenset(sorted(levels)[:MAX_INFERRED_LEVELS + 1])
        return ColumnProfile(self.present + other.present, self.numbers + other.numbers,
                             self.typed_numeric and other.typed_numeric, dtype, merge_kinds(self.kind, other.kind),
                             levels)

    @property
    def looks_numeric(self) -> bool:
        # mostly numbers with a few strays: far more likely a dirty numeric column than a category
        return self.present > 0 and self.numbers / self.present >= 0.9


def column_roles_from(profiles: dict[str, ColumnProfile], config: PrepareConfig) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns from the profiles of a source's columns (in source order):
    declared roles first, then inferred from the values. Booleans are categories of
    two levels; timestamps are numeric. Refused, naming the column: nested values and bytes, and a text column
    nobody declared categorical whose values look like an identifier (`MAX_INFERRED_LEVELS`,
    `IDENTIFIER_SHARE`) — unless declared with --categorical, or left out."""
    names = list(profiles)
    columns = list(config.columns) if config.columns else names
    unknown = [c for c in columns + config.categorical + config.numeric if c not in profiles]
    if unknown:
        raise SourceError(f"{config.source}: column(s) {unknown} not found (columns: {names})")
    if not columns:
        raise SourceError(f"{config.source}: no feature columns left")
    numeric, categorical = [], []
    for column in columns:
        profile = profiles[column]
        if column in config.categorical:
            categorical.append(column)
        elif profile.kind in ("nested", "bytes"):
            what = "nested values (lists, maps or arrays)" if profile.kind == "nested" else "bytes"
            raise SourceError(f"{config.source}: column {column!r} holds {what}; vaepipe models numbers, "
                              "categories and timestamps: flatten it into such columns, leave it out with --columns, "
                              f"or pass --categorical {column} to model each distinct value's text as a category")
        elif profile.kind == "boolean" and column not in config.numeric:
            categorical.append(column)
        elif column in config.numeric or profile.typed_numeric or profile.looks_numeric:
            numeric.append(column)
        else:
            _check_inferred_levels(column, profile, config)
            categorical.append(column)
    return numeric, categorical


def _check_inferred_levels(column: str, profile: ColumnProfile, config: PrepareConfig) -> None:
    levels = len(profile.levels)
    many = levels > MAX_INFERRED_LEVELS
    if not many and not (levels >= IDENTIFIER_MIN_LEVELS and levels > IDENTIFIER_SHARE * profile.present):
        return
    count = f"more than {MAX_INFERRED_LEVELS:,}" if many else f"{levels:,}"
    hint = ""
    if looks_like_times_of_day(profile.levels):
        hint = (" Its values are times of day: store them as a number, e.g. seconds since midnight, or as a "
                "duration (a timedelta or Parquet duration column is modelled as one).")
    elif looks_like_dates(profile.levels):
        hint = (" Its values read as dates or times: store it as a timestamp (a Parquet timestamp or date column, "
                "or pandas.to_datetime in a notebook, is modelled as one) or as a number, e.g. days since a date.")
    elif marks := missing_markers_in(profile.levels):
        hint = (f" Its values are numbers but for {', '.join(map(repr, marks))}: if that marks a missing value, pass "
                f"--missing '{','.join(marks)}' (then --impute says what a gap becomes).")
    elif config.thousands is None and (separator := thousands_in(profile.levels)):
        hint = f" Its values read as numbers with thousands separators: pass --thousands '{separator}'."
    elif config.decimal == "." and looks_like_decimal_commas(profile.levels):
        hint = " Its values read as numbers with a decimal comma: pass --decimal ','."
    raise SourceError(f"{config.source}: column {column!r} has {count} distinct text values in "
                      f"{profile.present:,} rows — an identifier or free text, not a category (one model input "
                      f"per value, and generated rows would copy its values).{hint} Pass --id-column {column} if "
                      f"it identifies rows, leave it out with --columns, or declare it with --categorical "
                      f"{column} to model it as a category anyway (in a notebook: drop it from X, or "
                      f"fit(categorical=[{column!r}]))")


def clean_tabular(source: SourceTable, numeric: list[str], categorical: list[str], splits: np.ndarray,
                  impute: str, fill: Optional[dict[str, float]] = None,
                  problems: Optional[dict] = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Typed feature columns with NaN/inf handled by `impute`; returns (table, rows kept mask).

    `fill`: what NaN/inf of each numeric column become under impute mean|median (default: the mean or median
    of this table's valid train values; a column missing from it keeps NaN, for a caller that computes the
    statistics first). `problems`: record what is wrong with the data there (`add_problems`) instead of
    raising it, so that a source read block by block reports its first bad row and the total
    (`raise_problems`)."""
    found: dict = {}
    columns: dict[str, np.ndarray] = {}  # one DataFrame at the end: a column set at a time copies the frame's blocks
    keep = np.ones(source.rows, dtype=bool)
    train = splits == "train"
    for column in numeric:
        series = source.table[column]
        values = numbers(series)
        _note(found, ("not numeric", column), _not_numeric(series, values), source.row_ids, series)
        with np.errstate(invalid="ignore"):  # NaN: not too large (NaN/inf follow as "invalid")
            too_large = np.isfinite(values) & (np.abs(values) > MAX_MAGNITUDE)
        _note(found, ("too large", column), too_large, source.row_ids, series)
        invalid = ~np.isfinite(values)
        if invalid.any():
            if impute == "error":
                _note(found, ("invalid", column), invalid, source.row_ids, series)
            elif impute == "drop":
                keep &= ~invalid
            elif impute == "keep":
                values = np.where(invalid, np.nan, values)  # inf too: a gap, as mean and median fill it
            elif fill is None:
                reference = values[train & ~invalid]
                if reference.size == 0:
                    raise SourceError(f"{source.description}: column {column!r} has no valid train values to impute from")
                values = np.where(invalid, np.mean(reference) if impute == "mean" else np.median(reference), values)
            elif column in fill:
                values = np.where(invalid, fill[column], values)
        columns[column] = values
    for column in categorical:
        series = source.table[column]
        missing = series.isna().to_numpy()
        if missing.any():
            if impute == "error":
                _note(found, ("missing", column), missing, source.row_ids, series)
            if impute == "drop":
                keep &= ~missing
        columns[column] = level_text(series)
    if problems is None:
        raise_problems(found, source.description)
    else:
        add_problems(problems, found)
    return pd.DataFrame(columns, index=range(source.rows)), keep


def _not_numeric(series: pd.Series, values: np.ndarray) -> np.ndarray:
    """Rows whose value `numbers` could not read: NaN there, but neither missing nor the text "nan". Only the
    rows that came out NaN are looked at as text (every row's text cost a prepare most of its time)."""
    candidates = np.isnan(values) & series.notna().to_numpy()
    if candidates.any():
        rows = np.flatnonzero(candidates)
        candidates[rows] = (series.iloc[rows].astype(str).str.strip().str.lower() != "nan").to_numpy()
    return candidates


def _note(found: dict, key: tuple[str, str], rows: np.ndarray, row_ids: np.ndarray, series: pd.Series) -> None:
    if rows.any():
        i = int(np.flatnonzero(rows)[0])
        found[key] = {"count": int(rows.sum()), "row": str(row_ids[i]), "value": series.iloc[i]}


def add_problems(into: dict, more: dict) -> None:
    """Add the problems of a later block to those of the blocks before it: counts add up, the first row stays."""
    for key, problem in more.items():
        if key in into:
            into[key] = {**into[key], "count": into[key]["count"] + problem["count"]}
        else:
            into[key] = problem


def _not_numeric_hint(value) -> str:
    """What a text in a numeric column most likely is, and the flag that reads it."""
    text = str(value).strip()
    separator = thousands_separator(text)
    if separator:
        return f"it reads as a number with thousands separators: pass --thousands '{separator}'; or "
    if not any(c.isalnum() for c in text) or text.lower() in MISSING_WORDS:
        return f"if it marks a missing value, pass --missing '{value}' (then --impute says what it becomes); or "
    return ""


def raise_problems(problems: dict, description: str) -> None:
    """The first problem `clean_tabular` found, as the error a person acts on (none: nothing happens).
    A value that is not a number comes first, then one too large, NaN/inf, missing categories, column by column."""
    for kind in ("not numeric", "too large", "invalid", "missing"):
        for (found, column), problem in problems.items():
            if found != kind:
                continue
            count, row = problem["count"], problem["row"]
            if kind == "not numeric":
                raise SourceError(f"{description}: column {column!r} row {row!r} has non-numeric value "
                                  f"{problem['value']!r} ({count} such rows); {_not_numeric_hint(problem['value'])}"
                                  "fix the data or declare the column categorical")
            if kind == "too large":
                raise SourceError(f"{description}: column {column!r} row {row!r} has value {problem['value']}, "
                                  f"beyond ±{MAX_MAGNITUDE:g}, the range vaepipe models ({count} such rows; its "
                                  "statistics would overflow); rescale the column, e.g. divide it by a power of ten, "
                                  "or leave it out with --columns")
            if kind == "invalid":
                raise SourceError(f"{description}: column {column!r} has {count} NaN/inf value(s), first at row "
                                  f"{row!r}; clean the data or pass --impute mean|median|drop|keep "
                                  "(fit(impute=...) in a notebook)")
            raise SourceError(f"{description}: categorical column {column!r} has {count} missing value(s), first "
                              f"at row {row!r}; clean the data or pass --impute mean|median|drop|keep "
                              "(fit(impute=...) in a notebook)")


# skewness above which a non-negative column is modelled on the log1p scale (an exponential has 2)
LOG1P_SKEWNESS = 2.0
# share of exact zeros from which a non-negative column gets a zero-inflated likelihood
ZERO_INFLATED_SHARE = 0.2
# quantile transform: the train values at this many evenly spaced probabilities (fewer rows: every row)
QUANTILE_POINTS = 1001


def numeric_stats(name: str, values: np.ndarray, dtype: str, transform: str = "auto",
                  zero_inflated: Optional[bool] = None, gaps: bool = False) -> NumericColumn:
    """Train-split statistics of one numeric column, and how the model sees it (see NumericColumn).

    `transform` "auto" chooses identity / log1p (skewed, non-negative) and zero-inflation by the
    rules below; "identity", "log1p" or "quantile" is taken as given (log1p needs values > -1).
    `zero_inflated` overrides the zero-share rule (None: the rule decides). `gaps`: the column has missing values
    kept (`values` are its present ones); it is then never zero-inflated, its indicator says present or not."""
    return numeric_stats_from(name, NumericSummary.of(values), dtype, transform, zero_inflated, gaps)


def numeric_stats_from(name: str, summary: NumericSummary, dtype: str, transform: str = "auto",
                       zero_inflated: Optional[bool] = None, gaps: bool = False) -> NumericColumn:
    """`numeric_stats` from a summary of the train values: of a whole column, or merged from its blocks."""
    if gaps:
        zero_inflated = False  # one indicator per column: with gaps it says whether a value is present
    varies = len(summary.distinct_nonzero) > 1
    if transform != "auto":
        if transform == "log1p" and summary.min <= -1:
            raise SourceError(f"column {name!r} has value {summary.min:g}; transform log1p needs values > -1")
        if zero_inflated is None:
            zero_inflated = bool(summary.min >= 0 and summary.zero_share >= ZERO_INFLATED_SHARE and varies)
        scaling: dict = {"transform": transform, "zero_inflated": zero_inflated}
        if transform == "quantile":
            modelled = summary.sample[summary.sample != 0] if zero_inflated else summary.sample
            points = min(QUANTILE_POINTS, len(modelled))
            scaling["quantiles"] = np.quantile(modelled, np.linspace(0.0, 1.0, points)).tolist()
        else:
            moments = {("log1p", True): summary.log_nonzero, ("log1p", False): summary.log_values,
                       ("identity", True): summary.nonzero, ("identity", False): summary.values}[
                transform, zero_inflated]
            scaling.update(center=moments.mean, scale=moments.std())
    else:
        scaling = {}
        if summary.min >= 0:
            zero_inflated = not gaps and summary.zero_share >= ZERO_INFLATED_SHARE and varies
            if zero_inflated:
                scaling["zero_inflated"] = True
            modelled, logged = ((summary.nonzero, summary.log_nonzero) if zero_inflated
                                else (summary.values, summary.log_values))
            if modelled.skewness() > LOG1P_SKEWNESS:
                scaling["transform"] = "log1p"
                modelled = logged
            if scaling:
                scaling.update(center=modelled.mean, scale=modelled.std())
    if gaps:
        scaling["gaps"] = True
    if is_temporal_dtype(dtype) and summary.step > 1:
        scaling["resolution"] = summary.step
    return NumericColumn(name=name, dtype=dtype, mean=summary.values.mean, std=summary.values.std(),
                         min=summary.min, max=summary.max, integer=summary.integer, **scaling)


def numeric_dtype(series: pd.Series, values: np.ndarray) -> str:
    """The dtype a numeric column has in its source: its own when the source typed it (Parquet, a
    DataFrame; timestamps: `column_values.temporal_dtype`), else (CSV text) int64 when every value is a whole
    number, float64 otherwise."""
    if value_kind(series) == "temporal":
        return temporal_dtype(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return str(series.dtype)
    finite = values[np.isfinite(values)]
    return "int64" if finite.size and np.all(np.mod(finite, 1) == 0) else "float64"


def categorical_stats(name: str, values: np.ndarray, train: np.ndarray, dtype: str) -> CategoricalColumn:
    return categorical_stats_from(name, set(values.tolist()), pd.Series(values[train]).value_counts().to_dict(), dtype)


def text_levels_dtype(levels: Iterable[str]) -> Optional[str]:
    """The dtype of a categorical column read as text (CSV) whose levels are all numbers written the way Python
    writes them, as read_csv would read the column: int64 when each is a whole number ("2", "-3"), float64 when
    each is a float ("2.0", "0.5"), else None (the column stays text). A level with a leading zero ("007": a
    code or a zip) or another spelling ("1e3", "2.50", or "2" beside "2.5") keeps the text: its characters are
    the value, and a generated level must be written back as the same text."""
    present = [level for level in levels if level != MISSING_LEVEL]

    def canonical(level: str, parse) -> bool:
        try:
            value = parse(level)
        except ValueError:
            return False
        return str(value) == level and math.isfinite(value)

    for parse, dtype in ((int, "int64"), (float, "float64")):
        if present and all(canonical(level, parse) for level in present):
            return dtype
    return None


def categorical_stats_from(name: str, levels: set, train_counts: dict, dtype: str) -> CategoricalColumn:
    """A categorical column from its levels (over the rows kept) and each level's count in the train split."""
    ordered = sorted(levels)
    return CategoricalColumn(name=name, dtype=dtype, levels=ordered,
                             train_counts=[int(train_counts.get(level, 0)) for level in ordered])


def default_rows_per_shard(rows: int) -> int:
    """About 8 shards, so Ray Data has a read task per worker, but none under 256 or over 200k rows."""
    return int(min(200_000, max(256, math.ceil(rows / 8))))


def arrow_column(values) -> pa.Array:
    values = np.asarray(values)
    if values.dtype != object:
        return pa.array(values)
    # text with gaps (a label known on some rows only): a missing value is null, not a float NaN among strings
    return pa.array([None if value is None or (isinstance(value, float) and np.isnan(value)) else value
                     for value in values.tolist()])


# --- I/O ----------------------------------------------------------------------------

def reads_table_files(config: PrepareConfig) -> bool:
    """Whether the source is CSV/Parquet files (read block by block: `datasets.table_stream`) rather than a
    built-in sample (read into memory: `load_source`) or an image folder (`jobs.prepare.prepare_image_folder`);
    an unknown name is an error."""
    spec = config.source
    builtin = spec.removeprefix("builtin:")
    if builtin in BUILTIN_SOURCES:
        return False
    if spec.startswith("builtin:"):
        raise SourceError(f"unknown built-in sample {builtin!r}; choose one of: {', '.join(BUILTIN_SOURCES)}")
    local = Path(spec)
    if holds_images(spec):
        return False
    if "://" not in spec and not local.exists():
        raise SourceError(f"input {spec} does not exist (nor is it a built-in sample: "
                          f"{', '.join(BUILTIN_SOURCES)})")
    return True


def is_builtin_source(config: PrepareConfig) -> bool:
    return config.source.removeprefix("builtin:") in BUILTIN_SOURCES


def load_source(config: PrepareConfig) -> SourceTable:
    """A built-in sample, in memory (CSV/Parquet files: `reads_table_files`; image folders are read a shard
    at a time: `jobs.prepare.prepare_image_folder`)."""
    builtin = config.source.removeprefix("builtin:")
    if builtin in GENERATED_SOURCES:
        return load_builtin(builtin, config.rows, config.seed, config.image_shape)
    return load_builtin(builtin, config.rows, config.seed)


def check_user_columns(source: SourceTable) -> None:
    """No user column may take a name prepare gives a column of its own (`SYSTEM_COLUMNS`, and the
    label's or the image's column): one would overwrite the other in every shard, silently."""
    taken = {name: "a column vaepipe adds to every shard" for name in SYSTEM_COLUMNS}
    # an augmented dataset's provenance (`vaepipe augment`)
    if source.synthetic is not None:
        taken[SYNTHETIC_COLUMN] = "the column augment adds to mark generated rows"
    if source.label_from_model is not None:
        taken[PSEUDO_LABEL_COLUMN] = "the column augment adds to mark labels its model gave"
    if source.kind == "image":
        taken[ImageSpec.model_fields["column"].default] = "the image column"
    if source.label_name is not None:
        if source.label_name in taken:
            raise SourceError(f"{source.description}: the label column is named {source.label_name!r}, which is "
                              f"{taken[source.label_name]}; rename it in the source (reserved: "
                              f"{sorted(taken)})")
        taken[source.label_name] = "the label column"
    for factor in source.factors.columns if source.factors is not None else ():
        if factor in taken:
            raise SourceError(f"{source.description}: the factor column {factor!r} has the name of {taken[factor]}")
        taken[factor] = "a factor column"
    for column in source.table.columns if source.table is not None else ():
        if column in taken:
            hint = " (or pass --id-column row_id if it is the row id)" if column == "row_id" else ""
            raise SourceError(f"{source.description}: column {column!r} has the name of {taken[column]}; rename "
                              f"it in the source{hint} (reserved: {sorted(taken)})")


def transform_options(numeric: list[str], config: PrepareConfig, description: str) -> dict[str, dict]:
    """Each numeric column's transform (`numeric_stats`' keyword arguments); column_transforms must name
    numeric feature columns."""
    not_numeric = [c for c in config.column_transforms if c not in numeric]
    if not_numeric:
        raise SourceError(f"{description}: column_transforms names {not_numeric}, which "
                          f"{'is' if len(not_numeric) == 1 else 'are'} not numeric feature column(s) "
                          f"(numeric: {numeric})")
    return {c: {"transform": config.column_transforms.get(c, config.transform)} for c in numeric}


def build_arrow_table(source: SourceTable, config: PrepareConfig,
                      numeric_options: Optional[dict[str, dict]] = None) -> tuple[pa.Table, dict]:
    """The rows to store and the manifest fields describing them. `numeric_options` maps a numeric
    column to keyword arguments of `numeric_stats` (its transform, zero-inflation)."""
    numeric_options = numeric_options or {}
    if source.rows == 0:
        raise SourceError(f"{source.description}: the dataset is empty (0 rows)")
    check_user_columns(source)
    check_unique_ids(source.row_ids, source.description)
    splits = assign_splits(source.row_ids, config.split) if source.splits is None else np.asarray(source.splits)
    fields: dict = {}
    columns: dict[str, pa.Array] = {}
    keep = np.ones(source.rows, dtype=bool)
    if source.kind == "image":
        images = source.images
        if config.image_shape is not None and tuple(images.shape[1:]) != tuple(config.image_shape):
            raise SourceError(f"{source.description}: images are {tuple(images.shape[1:])} (C,H,W) but "
                              f"image_shape {tuple(config.image_shape)} was requested; built-in samples are not resized")
        fields["image"] = ImageSpec(shape=tuple(int(s) for s in images.shape[1:]))
    else:
        # profiled once: the roles, and the dtype a categorical column is generated back in
        profiles = {c: ColumnProfile.of(source.table[c]) for c in source.table.columns}
        numeric, categorical = column_roles_from(profiles, config)
        numeric_options = numeric_options or transform_options(numeric, config, source.description)
        table, keep = clean_tabular(source, numeric, categorical, splits, config.impute)
        train = (splits == "train") & keep
        if not train.any():
            raise SourceError(f"{source.description}: no rows left in the train split")
        dtypes = source.dtypes or {}
        fields["numeric"] = []
        for c in numeric:
            values = table[c].to_numpy()
            present = np.isfinite(values)  # all but the gaps --impute keep leaves
            if not (train & present).any():
                raise SourceError(f"{source.description}: column {c!r} has no valid train values")
            fields["numeric"].append(numeric_stats(
                c, values[train & present], dtypes.get(c) or numeric_dtype(source.table[c], values),
                gaps=bool((keep & ~present).any()), **numeric_options.get(c, {})))
        fields["categorical"] = [categorical_stats(c, table[c].to_numpy()[keep], train[keep],
                                                   dtypes.get(c) or profiles[c].dtype)
                                 for c in categorical]
        fields["column_order"] = [c for c in source.table.columns if c in set(numeric) | set(categorical)]
    if not keep.any():
        raise SourceError(f"{source.description}: no rows left after dropping rows with missing values")
    columns["row_id"] = pa.array(source.row_ids[keep].astype(str).tolist(), type=pa.string())
    columns["split"] = pa.array(splits[keep].tolist(), type=pa.string())
    if source.labels is not None:
        columns[source.label_name] = arrow_column(source.labels[keep])
        fields["label_column"] = source.label_name
    if source.synthetic is not None:
        columns[SYNTHETIC_COLUMN] = pa.array(np.asarray(source.synthetic, dtype=bool)[keep])
    if source.label_from_model is not None:
        columns[PSEUDO_LABEL_COLUMN] = pa.array(np.asarray(source.label_from_model, dtype=bool)[keep])
    if source.factors is not None:
        for factor in source.factors.columns:
            columns[factor] = arrow_column(source.factors[factor].to_numpy()[keep])
        fields["factor_columns"] = [str(factor) for factor in source.factors.columns]
    if source.kind == "image":
        columns["image"] = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(source.images[keep]))
    else:
        for column in table.columns:
            columns[column] = arrow_column(table[column].to_numpy()[keep])
    arrow = pa.table(columns)
    kept_splits = splits[keep]
    fields["split_rows"] = {s: int(np.sum(kept_splits == s)) for s in SPLITS}
    return arrow, fields


def prepare_in_memory(source: SourceTable, config: PrepareConfig,
                      numeric_options: Optional[dict[str, dict]] = None) -> tuple[DatasetManifest, pa.Table]:
    """What `vaepipe prepare` would store for `source` — the rows (with `row_id` and `split`) and the manifest,
    statistics from the train split — kept in memory: the manifest lists no shards, and its fingerprint covers
    its schema, roles, split rule and statistics (notebooks, benchmarks, in-process synthesis)."""
    arrow, fields = build_arrow_table(source, config, numeric_options)
    manifest = DatasetManifest(name=config.name, kind=source.kind, source=source.description, rows=arrow.num_rows,
                               split=SplitRule(fractions=config.split), impute=config.impute,
                               arrow_schema={f.name: str(f.type) for f in arrow.schema}, shards=[],
                               created_at="in-memory", **fields)
    return manifest.model_copy(update={"fingerprint": manifest.compute_fingerprint()}), arrow

