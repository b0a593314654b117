"""Input schema vs the model's training schema (pure: manifests only)."""
from __future__ import annotations

from pipelines.datasets.manifest import (
    CategoricalColumn, DatasetManifest, ImageSpec, NumericColumn, ShardInfo, SplitRule,
)
from pipelines.batch.model_input import schema_differences


def table(numeric=("age", "income"), levels=("a", "b")) -> DatasetManifest:
    return DatasetManifest(
        name="t", kind="tabular", source="test", rows=10, split_rows={"train": 10, "val": 0, "test": 0},
        split=SplitRule(fractions={"train": 1.0, "val": 0.0, "test": 0.0}),
        numeric=[NumericColumn(name=n, dtype="float64", mean=0, std=1, min=0, max=1) for n in numeric],
        categorical=[CategoricalColumn(name="plan", dtype="object", levels=list(levels), train_counts=[1] * len(levels))],
        arrow_schema={}, shards=[ShardInfo(key="part-0.parquet", rows=10, size=1, sha256="0")],
        created_at="2026-01-01")


def images(shape=(1, 8, 8)) -> DatasetManifest:
    return table().model_copy(update={"kind": "image", "numeric": [], "categorical": [],
                                      "image": ImageSpec(shape=shape)})


def test_same_schema_fits():
    assert schema_differences(table(), table()) == []


def test_missing_column_is_named():
    assert "['income'] the model was trained on are missing" in schema_differences(table(("age",)), table())[0]


def test_extra_column_is_named():
    assert "['score'] were not in the model's training data" in schema_differences(
        table(("age", "income", "score")), table())[0]


def test_renamed_column_names_both_sides():
    problem = schema_differences(table(("age", "salary")), table())[0]
    assert "['income']" in problem and "['salary']" in problem and "renamed" in problem


def test_unseen_categorical_level_is_named():
    assert "levels ['c'] that were not in the training data" in schema_differences(
        table(levels=("a", "b", "c")), table())[0]


def test_wrong_image_shape_is_named():
    assert "images are (1, 28, 28) (C,H,W) but the model expects (1, 8, 8)" in schema_differences(
        images((1, 28, 28)), images())[0]


def test_other_kind_is_named():
    assert "image dataset but the model was trained on tabular data" in schema_differences(images(), table())[0]


def test_a_column_of_another_role_names_the_flag_that_prepares_it_as_the_model_read_it():
    """A nightly input prepared with other roles than the model's dataset (a boolean column is categorical now,
    numeric in a model trained before): the error says which flag prepares it as the model reads it."""
    as_category = table(("age",)).model_copy(update={"categorical": [
        *table().categorical, CategoricalColumn(name="income", dtype="bool", levels=["False", "True"],
                                                train_counts=[5, 5])]})
    assert "column 'income' is categorical but the model treats it as numeric; prepare the input with --numeric " \
           "income" in schema_differences(as_category, table())[0]
    assert "prepare the input with --categorical income" in schema_differences(table(), as_category)[0]
