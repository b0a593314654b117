"""Categorical values → their level's index, as `table_features` one-hot encodes them: text looked up by Arrow,
anything else by its text, as prepare stored the levels; a missing value is the gap's level (`MISSING_LEVEL`) both
ways."""
import warnings

import numpy as np
import pandas as pd
import pytest

from pipelines.datasets.features import level_codes, levels_as_source
from pipelines.datasets.manifest import MISSING_LEVEL


@pytest.mark.parametrize("values, levels, expected", [
    (np.array(["b", "a", "zz", "c"], dtype=object), ["a", "b", "c"], [1, 0, -1, 2]),  # text (Parquet, Ray Data)
    (np.array(["b", "a"]), ["a", "b"], [1, 0]),                                        # numpy unicode
    (np.array(["é", "ü"], dtype=object), ["ü", "é"], [1, 0]),
    (np.array([3, 1, 7]), ["1", "3"], [1, 0, -1]),                                     # whole-number codes
    (np.array([1.0, 2.5]), ["2.5", "1.0"], [1, 0]),                                    # float codes keep ".0"
    (np.array([True, False]), ["False", "True"], [1, 0]),                              # booleans
    (np.array(["a", None], dtype=object), ["a", MISSING_LEVEL], [0, 1]),               # a null: the gap's level
    (np.array(["a", float("nan"), pd.NA], dtype=object), [MISSING_LEVEL, "a"], [1, 0, 0]),  # NaN and NA alike
    (np.array([1.0, np.nan]), ["1.0", MISSING_LEVEL], [0, 1]),                         # a float code column's NaN
    (np.array(["None", None], dtype=object), ["None"], [0, -1]),                        # the text "None" is no gap
    (np.array([3, "3"], dtype=object), ["3"], [0, 0]),                                 # mixed: by text
    (np.array([b"a", b"c"], dtype=object), ["b'a'", "a"], [1, -1]),                   # bytes: decoded (numpy's str)
    (np.array([], dtype=object), ["a"], []),
])
def test_each_value_gets_the_index_of_its_level_or_minus_one(values, levels, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas deprecates Categorical with values outside its categories
        codes = level_codes(values, levels)
    assert codes.dtype == np.int64
    assert codes.tolist() == expected


def test_text_and_its_numpy_unicode_copy_encode_alike():
    values = np.random.default_rng(0).choice(["north", "south", "east", "west", "elsewhere"], 10_000)
    levels = ["east", "north", "south", "west"]
    assert (level_codes(values.astype(object), levels) == level_codes(values, levels)).all()
    assert (level_codes(values.astype(object), levels) == -1).sum() == (values == "elsewhere").sum()


@pytest.mark.parametrize("dtype, levels, expected, kind", [
    ("str", ["a", MISSING_LEVEL], ["a", None], "O"),
    ("object", [MISSING_LEVEL, "b"], [None, "b"], "O"),
    ("float64", ["1.5", MISSING_LEVEL], [1.5, np.nan], "float64"),
    ("float32", ["2.0", "3.0"], [2.0, 3.0], "float32"),
    ("int64", ["1", MISSING_LEVEL], [1, pd.NA], "Int64"),      # numpy's int holds no gap: pandas' nullable kind
    ("uint8", ["7", MISSING_LEVEL], [7, pd.NA], "UInt8"),
    ("int64", ["1", "2"], [1, 2], "int64"),                    # no gap: numpy's own dtype
    ("Int64", ["1", "2"], [1, 2], "Int64"),
    ("bool", ["False", "True", MISSING_LEVEL], [False, True, None], "O"),
    ("bool", ["False", "True"], [False, True], "bool"),
    ("boolean", ["True", MISSING_LEVEL], [True, pd.NA], "boolean"),
])
def test_a_gaps_level_comes_back_as_a_missing_value_in_the_source_dtype(dtype, levels, expected, kind):
    values = levels_as_source(levels, dtype)
    assert str(values.dtype) == kind or (kind == "O" and values.dtype == object)
    assert MISSING_LEVEL not in [str(value) for value in values]
    assert [None if value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value for value in values] \
        == [None if value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value for value in expected]


@pytest.mark.parametrize("levels, dtype", [
    (["1", "2", "10", "-3"], "int64"), (["1.0", "2.5", MISSING_LEVEL], "float64"), (["2", "2.5"], None),
    (["007", "010"], None), (["1e3", "2"], None), (["2.50"], None), ([" 2", "3"], None), (["nan", "1.0"], None),
    (["north", "1"], None), ([MISSING_LEVEL], None), ([], None)])
def test_a_csv_categorical_columns_dtype_is_what_read_csv_gives_numbers_written_plainly(levels, dtype):
    from pipelines.datasets.preparation import text_levels_dtype

    assert text_levels_dtype(levels) == dtype
    if dtype is not None:  # and the generated values are those numbers: the text written back is the level's
        present = [level for level in levels if level != MISSING_LEVEL]
        assert [str(value) for value in levels_as_source(present, dtype)] == present
