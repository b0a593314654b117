"""Rows ↔ model features, from the manifest's statistics (pure numpy, used inside Ray tasks).

Tables: numeric columns standardized with the train split's statistics (after log1p for
strongly skewed non-negative ones; mostly-zero ones as an indicator and a value, plain ones
first, see `DatasetManifest.numeric_in_model_order`), then one
one-hot group per categorical column, in manifest order — the layout that
`vae_core.ModelSpec.for_table` expects. Images: uint8 → float32 in [0, 1].
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.datasets.column_values import is_temporal_dtype, numbers, numbers_as
from pipelines.datasets.manifest import MISSING_LEVEL, DatasetManifest
from pipelines.errors import UserError


# a standardized numeric feature is clipped to ± this many training standard deviations: a value far beyond
# (1e45 in a column of ones) overflowed float32 to inf and scored NaN — and NaN is not above any threshold, so the
# most anomalous row of a nightly run was written as normal. No training row comes near it (a row n standard
# deviations out needs n² rows), and every row beyond it is an outlier whichever score it gets.
FEATURE_LIMIT = 1e4


class FeatureError(UserError, ValueError):
    """Rows that do not fit the dataset's schema; the message names the column."""


def image_features(manifest: DatasetManifest, images: np.ndarray) -> np.ndarray:
    expected = tuple(manifest.image.shape)
    if tuple(images.shape[1:]) != expected:
        raise FeatureError(f"images have shape {tuple(images.shape[1:])} (C,H,W); the model expects {expected}")
    return images.astype(np.float32) * np.float32(1.0 / manifest.image.max_value)


def level_text(values) -> np.ndarray:
    """Categorical values as the text prepare stores for their level (an object array of str): 3 → "3", True →
    "True", 2.5 → "2.5"; a missing value (None, NaN, NaT, pandas' NA) → MISSING_LEVEL."""
    series = pd.Series(np.asarray(values, dtype=object), dtype=object)
    return series.where(series.notna(), MISSING_LEVEL).astype(str).to_numpy(dtype=object)


def level_codes(values, levels: list[str]) -> np.ndarray:
    """Each value's index in `levels` (the level names as text), -1 where it is none of them.

    Text columns, what Parquet and Ray Data's numpy batches give, are looked up by Arrow as they are. Anything
    else is compared by its `level_text` (3 → "3", True → "True", a missing value → MISSING_LEVEL), as prepare
    stored the levels."""
    array = np.asarray(values)
    if array.dtype.kind in "OU":
        try:
            text = pa.array(array)  # inferred: only text takes the lookup, bytes and the rest numpy's str
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: compared by their text below
            text = None
        if text is not None and pa.types.is_string(text.type) and not text.null_count:
            found = pc.index_in(text, value_set=pa.array(levels, type=pa.string()))
            return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if array.dtype.kind in "iubU":  # nothing can be missing: numpy's own text
        return pd.Index(levels).get_indexer(array.astype(str)).astype(np.int64, copy=False)
    return pd.Index(levels).get_indexer(level_text(array)).astype(np.int64, copy=False)


def table_features(manifest: DatasetManifest, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    missing = [c for c in manifest.feature_columns if c not in batch]
    if missing:
        raise FeatureError(f"input lacks column(s) {missing} that the model was trained on")
    n = len(next(iter(batch.values()))) if batch else 0
    out = np.empty((n, manifest.feature_dim), dtype=np.float32)
    offset = 0
    for column in manifest.numeric_in_model_order:
        values = column_numbers(batch[column.name])
        if not column.gaps and not np.all(np.isfinite(values)):
            raise FeatureError(f"column {column.name!r} has NaN/inf values, and the model learned no gaps there: "
                               "fill them (prepare --impute mean|median|drop) or train on data prepared with "
                               "--impute keep")
        if column.transform == "log1p" and (values <= -1).any():
            raise FeatureError(f"column {column.name!r} has value {values[values <= -1][0]:g}, but the model "
                               f"reads it on a log scale (its training values were >= {column.min:g})")
        out[:, offset:offset + column.width] = np.clip(column.to_model(values), -FEATURE_LIMIT, FEATURE_LIMIT)
        offset += column.width
    for column in manifest.categorical:
        codes = level_codes(batch[column.name], column.levels)
        if (codes < 0).any():
            bad = np.asarray(batch[column.name])[codes < 0][0]
            raise FeatureError(f"column {column.name!r} has level {bad!r} that was not in the training data "
                               f"(levels: {column.levels})")
        block = np.zeros((n, len(column.levels)), dtype=np.float32)
        block[np.arange(n), codes] = 1.0
        out[:, offset:offset + len(column.levels)] = block
        offset += len(column.levels)
    return out


def column_numbers(values) -> np.ndarray:
    """A numeric column of a batch as float64: numbers as they are, timestamps in any unit as
    `column_values.numbers` gives them (what the model was trained on)."""
    array = np.asarray(values)
    if array.dtype.kind in "mM" or array.dtype == object:
        return numbers(pd.Series(values))
    return array.astype(np.float64, copy=False)


def as_stored(manifest: DatasetManifest, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the source's schema (`features_to_table`'s) in the form a prepared dataset stores them, to
    compare them with its rows: numeric columns as float64 (timestamps as `column_numbers`), categories as the
    text of their level."""
    out = frame.copy()
    for column in manifest.numeric:
        if column.name in out:
            out[column.name] = column_numbers(out[column.name])
    for column in manifest.categorical:
        if column.name in out:
            out[column.name] = level_text(out[column.name])
    return out


def _numpy_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype a manifest's dtype string names, or None (text, pandas-only dtypes)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


def nullable_int(target: np.dtype) -> str:
    """pandas' nullable kind of a numpy integer dtype (int64 → Int64, uint8 → UInt8): it holds a missing value."""
    return f"{'U' if target.kind == 'u' else ''}Int{8 * target.itemsize}"


def levels_as_source(levels: list[str], dtype: str):
    """Level names (stored as text) back in the column's source dtype: 3.0 for a float code column,
    True for a boolean one, text otherwise; MISSING_LEVEL as a missing value: None, NaN, or pandas' NA where
    numpy's dtype cannot hold one (an integer column becomes its nullable kind, int64 → Int64)."""
    gap = np.asarray([level == MISSING_LEVEL for level in levels], dtype=bool)
    try:
        target = pd.api.types.pandas_dtype(dtype)
    except TypeError:  # a dtype name pandas does not know: the levels as text
        target = np.dtype(object)
    extension = isinstance(target, pd.api.extensions.ExtensionDtype)
    if target.kind == "b":
        values = [None if missing else {"True": True, "False": False}.get(level) for level, missing in zip(levels, gap)]
        if extension:
            return pd.array(values, dtype=target)
        return np.asarray(values, dtype=bool if not gap.any() and set(levels) <= {"True", "False"} else object)
    if target.kind in "iuf":
        numbers = np.asarray([np.nan if missing else float(level) for level, missing in zip(levels, gap)])
        if extension:
            return pd.array(numbers, dtype=target)
        if target.kind == "f" or not gap.any():
            return numbers.astype(target)
        return pd.array(numbers, dtype=nullable_int(target))
    return np.asarray([None if missing else level for level, missing in zip(levels, gap)], dtype=object)


def features_to_table(manifest: DatasetManifest, features: np.ndarray) -> pd.DataFrame:
    """Back to the source's schema: its columns in its order (`manifest.column_order`) with its dtypes;
    numerics on their original scale, clipped to the seen range, whole numbers where every training
    value was one (kept in a float dtype when the source's was float); categorical levels as in the source."""
    columns: dict[str, np.ndarray] = {}
    offset = 0
    for column in manifest.numeric_in_model_order:
        values = column.from_model(features[:, offset:offset + column.width].astype(np.float64))
        values = np.rint(values) if column.integer else values
        if is_temporal_dtype(column.dtype):
            if column.resolution:  # dates stay dates: a column of midnights came back with any time of day
                values = np.rint(values / column.resolution) * column.resolution
            columns[column.name] = numbers_as(values, column.dtype)
            offset += column.width
            continue
        target = _numpy_dtype(column.dtype)
        if target is None or target.kind not in "iuf":  # manifests from before dtypes were recorded ('str')
            target = np.dtype(np.int64) if column.integer else np.dtype(np.float64)
        if target.kind in "iu" and np.isnan(values).any():  # gaps: numpy's int holds none, pandas' nullable kind does
            columns[column.name] = pd.array(values, dtype=nullable_int(target))
        else:
            columns[column.name] = values.astype(target)
        offset += column.width
    for column in manifest.categorical:
        width = len(column.levels)
        codes = features[:, offset:offset + width].argmax(axis=1)
        columns[column.name] = levels_as_source(column.levels, column.dtype)[codes]
        offset += width
    return pd.DataFrame({name: columns[name] for name in manifest.column_order or manifest.feature_columns})
