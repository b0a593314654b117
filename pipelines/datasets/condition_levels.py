"""The conditions a model trains with (`model.condition_on`), resolved against a prepared dataset: a categorical
column's levels from the manifest, the label column's from its train rows (`conditions` holds the rest: the
one-hots, pure)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipelines.datasets.conditions import ConditionError, label_text
from pipelines.datasets.local_rows import read_rows
from pipelines.datasets.manifest import CategoricalColumn, DatasetManifest


def with_conditions(dataset: str, manifest: DatasetManifest, names: Sequence[str]) -> DatasetManifest:
    """The manifest a model conditioned on `names` trains with: `manifest.condition` lists each condition with
    its levels — a categorical column's from the manifest, the label column's from the train split (rows without
    a label are not counted: semi-supervised training)."""
    if not names:
        return manifest
    if len(set(names)) != len(names):
        raise ConditionError(f"model.condition_on names a column twice: {list(names)}")
    categorical = {column.name: column for column in manifest.categorical}
    conditions = []
    for name in names:
        if name in categorical:
            conditions.append(categorical[name])
        elif name == manifest.label_column:
            conditions.append(label_levels(dataset, manifest))
        else:
            numeric = [column.name for column in manifest.numeric]
            why = "is numeric; a condition has levels" if name in numeric else "is not a column of the dataset"
            choices = ([manifest.label_column] if manifest.label_column else []) + list(categorical)
            raise ConditionError(f"model.condition_on: {name!r} {why} (choose from the label column and the "
                                 f"categorical columns: {choices or 'none in this dataset'})")
    if len(conditions) > 1 and any(column.name == manifest.label_column for column in conditions):
        raise ConditionError("model.condition_on: the label column is the one condition of a model (rows without a "
                             "label are inferred by its classifier, which needs a single condition)")
    return manifest.model_copy(update={"condition": conditions})


def label_levels(dataset: str, manifest: DatasetManifest) -> CategoricalColumn:
    """The label column's levels and train-split counts, read from the shards (a manifest keeps no label levels)."""
    label = manifest.label_column
    rows = read_rows(dataset, manifest, "train", columns=[label])
    text, known = label_text(rows[label].to_numpy(zero_copy_only=False))
    levels, counts = np.unique(text[known].astype(str), return_counts=True)
    if len(levels) < 2:
        raise ConditionError(f"model.condition_on: label column {label!r} has {len(levels)} level(s) among the "
                             f"labelled train rows; a condition needs at least 2")
    order = sorted(range(len(levels)), key=lambda i: _sort_key(str(levels[i])))
    return CategoricalColumn(name=label, dtype=manifest.arrow_schema.get(label, "string"),
                             levels=[str(levels[i]) for i in order], train_counts=[int(counts[i]) for i in order])


def _sort_key(level: str):
    try:
        return (0, float(level), "")
    except ValueError:
        return (1, 0.0, level)
