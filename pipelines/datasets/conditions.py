"""A conditional model's conditions (`model.condition_on`): which columns, their levels, and their one-hots.

A condition is the dataset's label column (images or tables) or one of a table's categorical columns. The
model's input is its features followed by one one-hot per condition, in `manifest.condition` order; a row whose
label is missing (null, NaN, empty) gets all zeros there, which a model with one condition reads as "infer the
level" (vae_core's M2 classifier). A categorical column stays among the features too: the model reconstructs it
as before, and generation writes the level it was asked for.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.datasets.features import FeatureError, levels_as_source
from pipelines.datasets.manifest import CategoricalColumn, DatasetManifest
from pipelines.errors import UserError


class ConditionError(UserError, ValueError):
    """A condition that names no usable column, or a level the model does not know; the message names it."""


def label_text(values) -> tuple[np.ndarray, np.ndarray]:
    """(text of each value, whether it is known) for a label column: whole numbers read the same whether the
    column came back as int or as float with NaN for missing labels ("3", not "3.0"); null, NaN and "" are
    unknown."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(str).astype(object), np.ones(len(array), dtype=bool)
    if array.dtype.kind == "f":
        known = np.isfinite(array)
        whole = known & (np.floor(np.where(known, array, 0.0)) == array)
        text = array.astype(str).astype(object)
        text[whole] = array[whole].astype(np.int64).astype(str)
        return text, known
    known = np.asarray(pd.notna(array), dtype=bool) & (array.astype(str) != "")
    return array.astype(str).astype(object), known


def condition_features(manifest: DatasetManifest, batch: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
    """[rows, manifest.condition_dim] float32: one one-hot per condition, zeros where a label is missing. A
    label column absent from the batch is missing on every row (scoring data without labels); a level the model
    was not trained with is refused, naming it."""
    out = np.zeros((rows, manifest.condition_dim), dtype=np.float32)
    offset = 0
    for column in manifest.condition or []:
        width = len(column.levels)
        if column.name in batch:
            out[:, offset:offset + width] = one_hot(column, batch[column.name],
                                                    allow_missing=column.name == manifest.label_column)
        elif column.name != manifest.label_column:
            raise FeatureError(f"input lacks column {column.name!r}, a condition of the model")
        offset += width
    return out


def one_hot(column: CategoricalColumn, values, allow_missing: bool) -> np.ndarray:
    """[n, len(levels)] one-hot of `values` (zeros for a missing label)."""
    if allow_missing:
        text, known = label_text(values)
    else:  # a categorical feature column: its levels are written as `table_features` writes them
        text = np.asarray(values).astype(str).astype(object)
        known = np.ones(len(text), dtype=bool)
    index = {level: code for code, level in enumerate(column.levels)}
    codes = np.fromiter((index.get(value, -1) for value in text), dtype=np.int64, count=len(text))
    unknown = known & (codes < 0)
    if unknown.any():
        raise FeatureError(f"column {column.name!r} has level {text[unknown][0]!r} that the model was not trained "
                           f"with (levels: {column.levels})")
    block = np.zeros((len(text), len(column.levels)), dtype=np.float32)
    block[np.flatnonzero(known), codes[known]] = 1.0
    return block


def requested_conditions(manifest: DatasetManifest, requests: Sequence[Mapping[str, str]]) -> np.ndarray:
    """One-hots [len(requests), condition_dim] for generation: each request gives every condition a level, as
    text (`label=3`); an unknown column or level is refused, naming it and what exists."""
    conditions = {column.name: column for column in manifest.condition or []}
    if not conditions:
        raise ConditionError("the model is not conditional (trained without model.condition_on): it cannot "
                             "generate a given condition")
    for request in requests:
        unknown = sorted(set(request) - set(conditions))
        missing = sorted(set(conditions) - set(request))
        if unknown:
            raise ConditionError(f"condition {unknown[0]!r} is not one of the model's conditions {list(conditions)}")
        if missing:
            raise ConditionError(f"give a level for every condition of the model: {missing} missing")
    parts = []
    for name, column in conditions.items():
        codes = [level_code(column, request[name]) for request in requests]
        block = np.zeros((len(codes), len(column.levels)), dtype=np.float32)
        block[np.arange(len(codes)), codes] = 1.0
        parts.append(block)
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(requests), 0), dtype=np.float32)


def level_code(column: CategoricalColumn, text: str) -> int:
    """The index of the level `text` names (as written, or as the same number: "3" names "3.0"); refused,
    naming the level and the model's levels, when it names none."""
    text = str(text).strip()
    if text in column.levels:
        return column.levels.index(text)
    try:
        number = float(text)
        return next(i for i, level in enumerate(column.levels) if _number(level) == number)
    except (ValueError, StopIteration):
        raise ConditionError(f"condition {column.name}={text!r} is not a level the model was trained with "
                             f"(levels: {column.levels})") from None


def _number(level: str) -> float | None:
    try:
        return float(level)
    except ValueError:
        return None


def condition_values(manifest: DatasetManifest, condition: np.ndarray) -> dict[str, np.ndarray]:
    """Each condition's level per row, in the column's source dtype, from one-hots [n, condition_dim]."""
    out, offset = {}, 0
    for column in manifest.condition or []:
        width = len(column.levels)
        codes = condition[:, offset:offset + width].argmax(axis=1)
        out[column.name] = levels_as_source(column.levels, column.dtype)[codes]
        offset += width
    return out


def with_condition_input(manifest: DatasetManifest, x: np.ndarray, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """The model input of a batch: its features `x` (uint8 images or float features), followed, for a
    conditional model's manifest, by the condition one-hots in x's dtype (rows flattened to [n, D + C])."""
    if not manifest.condition:
        return x
    condition = condition_features(manifest, batch, len(x))
    return np.concatenate([x.reshape(len(x), -1), condition.astype(x.dtype)], axis=1)
