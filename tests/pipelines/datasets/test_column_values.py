"""The readings of text values that name a flag in an error: thousands separators and marks for a gap."""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.datasets.column_values import (
    grouped_number_pattern, missing_markers_in, thousands_in, thousands_separator,
)


@pytest.mark.parametrize("text, separator", [
    ("1,234", ","), ("-1,234,567.25", ","), ("12,345.5e3", ","), ("1.234.567,89", "."), ("1'234.5", "'"),
    ("1 234 567", " "), ("0,126", None), ("12,34", None), ("1234", None), ("1,2345", None), ("Besançon, Doubs", None),
])
def test_a_number_grouped_by_threes_names_its_separator(text, separator):
    assert thousands_separator(text) == separator


def test_python_and_arrow_read_the_grouped_number_pattern_alike():
    texts = ["1,234.5", " 12,345 ", "0,126", "1,23", "a,bcd", "1,234,567", "+9,999e-2"]
    pattern = grouped_number_pattern(",", ".")
    arrow = pc.match_substring_regex(pa.array(texts), pattern).to_pylist()
    assert arrow == [bool(re.fullmatch(pattern, text)) for text in texts] == [True, True, False, False, False, True,
                                                                               True]


def test_levels_hint_thousands_and_gap_marks_only_when_every_other_level_is_a_number():
    assert thousands_in(["1,234.50", "999.00", "12,000.10"]) == ","
    assert thousands_in(["1,234.50", "Zürich"]) is None and thousands_in(["1.5", "2"]) is None
    assert missing_markers_in(["3", "?", "4.5"]) == ["?"] and missing_markers_in(["3", "n/a", "-"]) == ["-", "n/a"]
    assert missing_markers_in(["3", "?", "red"]) == [] and missing_markers_in(["?"]) == [] and missing_markers_in(
        ["1", "2"]) == []
