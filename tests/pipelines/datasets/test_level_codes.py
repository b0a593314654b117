"""Categorical values → their level's index, as `table_features` one-hot encodes them: text looked up by Arrow,
anything else by its text, as prepare stored the levels."""
import warnings

import numpy as np
import pytest

from pipelines.datasets.features import level_codes


@pytest.mark.parametrize("values, levels, expected", [
    (np.array(["b", "a", "zz", "c"], dtype=object), ["a", "b", "c"], [1, 0, -1, 2]),  # text (Parquet, Ray Data)
    (np.array(["b", "a"]), ["a", "b"], [1, 0]),                                        # numpy unicode
    (np.array(["é", "ü"], dtype=object), ["ü", "é"], [1, 0]),
    (np.array([3, 1, 7]), ["1", "3"], [1, 0, -1]),                                     # whole-number codes
    (np.array([1.0, 2.5]), ["2.5", "1.0"], [1, 0]),                                    # float codes keep ".0"
    (np.array([True, False]), ["False", "True"], [1, 0]),                              # booleans
    (np.array(["a", None], dtype=object), ["a", "None"], [0, 1]),                     # a null, by its text
    (np.array(["a", float("nan")], dtype=object), ["a", "nan"], [0, 1]),               # NaN, by its text
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
