"""A conditional model's conditions as model input: labels written the same whether they arrive as int, float
with NaN or text, missing labels as all-zero one-hots, unknown levels refused by name, and the levels a user asks
`generate` for matched as they are written or as the same number."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pipelines.datasets.conditions import (ConditionError, condition_features, condition_values, label_text,
                                           requested_conditions, with_condition_input)
from pipelines.datasets.features import FeatureError
from pipelines.datasets.manifest import CategoricalColumn, DatasetManifest, SplitRule


def manifest(conditions: list[CategoricalColumn], label: str | None = "label") -> DatasetManifest:
    return DatasetManifest(name="t", kind="tabular", source="test", rows=0, split_rows={"train": 0, "val": 0, "test": 0},
                           split=SplitRule(fractions={"train": 0.8, "val": 0.1, "test": 0.1}), label_column=label,
                           arrow_schema={"label": "int64"}, shards=[], created_at="now", condition=conditions)


LABEL = CategoricalColumn(name="label", dtype="int64", levels=["0", "1", "3"], train_counts=[5, 5, 5])
CITY = CategoricalColumn(name="city", dtype="string", levels=["Oslo", "Rome"], train_counts=[3, 3])


def test_a_label_reads_the_same_as_int_float_with_gaps_or_text():
    assert label_text(np.array([3, 0]))[0].tolist() == ["3", "0"]
    text, known = label_text(np.array([3.0, np.nan, 0.5]))
    assert text[[0, 2]].tolist() == ["3", "0.5"] and known.tolist() == [True, False, True]
    text, known = label_text(np.array(["cat", None, ""], dtype=object))
    assert text[0] == "cat" and known.tolist() == [True, False, False]


def test_missing_labels_are_zeros_and_an_unknown_level_is_refused_by_name():
    m = manifest([LABEL])
    block = condition_features(m, {"label": np.array([3.0, np.nan, 0.0])}, 3)
    assert block.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert condition_features(m, {}, 2).tolist() == [[0, 0, 0]] * 2  # input without labels: all unknown
    with pytest.raises(FeatureError, match=r"column 'label' has level '7' that the model was not trained with"):
        condition_features(m, {"label": np.array([7])}, 1)


def test_a_categorical_condition_must_be_present_and_the_input_gets_the_one_hots_after_the_features():
    m = manifest([LABEL, CITY])
    with pytest.raises(FeatureError, match="input lacks column 'city', a condition of the model"):
        condition_features(m, {"label": np.array([1])}, 1)
    x = with_condition_input(m, np.ones((2, 4), np.float32), {"label": np.array([1, 3]),
                                                              "city": np.array(["Rome", "Oslo"], dtype=object)})
    assert x.shape == (2, 4 + 5) and x[:, 4:].tolist() == [[0, 1, 0, 0, 1], [0, 0, 1, 1, 0]]


def test_requested_levels_match_as_written_or_as_the_same_number_and_decode_to_the_source_type():
    m = manifest([LABEL, CITY])
    one_hots = requested_conditions(m, [{"label": "3.0", "city": "Oslo"}, {"label": "0", "city": "Rome"}])
    assert one_hots.tolist() == [[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]]
    values = condition_values(m, one_hots)
    assert values["label"].tolist() == [3, 0] and values["label"].dtype == np.int64
    assert values["city"].tolist() == ["Oslo", "Rome"]
    with pytest.raises(ConditionError, match=r"condition city='Paris' is not a level"):
        requested_conditions(m, [{"label": "0", "city": "Paris"}])
    with pytest.raises(ConditionError, match=r"give a level for every condition of the model: \['city'\] missing"):
        requested_conditions(m, [{"label": "0"}])
    with pytest.raises(ConditionError, match="the model is not conditional"):
        requested_conditions(manifest([]), [{"label": "0"}])


def test_a_relative_storage_root_is_made_absolute(tmp_path, monkeypatch):
    from pipelines.storage.layout import storage_root

    monkeypatch.chdir(tmp_path)
    assert storage_root("store") == os.path.join(str(tmp_path), "store")
    assert storage_root("s3://bucket/prefix") == "s3://bucket/prefix"
