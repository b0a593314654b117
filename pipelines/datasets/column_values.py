"""What a column's values are, as prepare models them, and the numbers the model sees of each kind.

A source column is numbers, booleans, text, timestamps (a datetime64 or timedelta64 dtype, with or without a
time zone; dates), or something vaepipe cannot model faithfully: nested values (lists, maps, arrays) and bytes.
Timestamps are modelled as microseconds since the epoch (durations: microseconds) whatever unit a file stores
them in, and come back in their own dtype; booleans
are a category of two levels and come back as booleans; a missing timestamp is missing (NaN), never the
smallest integer pandas stores NaT as.
"""
from __future__ import annotations

import re
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ValueKind = Literal["", "number", "boolean", "temporal", "text", "nested", "bytes"]

# the unit temporal values are modelled in: float64 holds every microsecond from 1685 to 2255 exactly
TEMPORAL_UNIT = "us"
US_PER_DAY = 86_400_000_000
# the dtype a manifest records for a column of `datetime.date` values (pandas holds them as objects)
DATE_DTYPE = "date"
# the largest magnitude a numeric value may have: the statistics sum the cubes of a column's values, which
# overflow float64 past ~1e102 (a column of 1e200s came out with std inf and generated as its mean)
MAX_MAGNITUDE = 1e90


def value_kind(series: pd.Series) -> ValueKind:
    """The kind of a column's values ("" when every value is missing)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "temporal"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "empty":
        return ""
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    if inferred == "boolean":
        return "boolean"
    if inferred == "date":
        return "temporal"
    if inferred == "bytes":
        return "bytes"
    if inferred in ("mixed", "unknown-array"):
        first = series.dropna().iloc[0]
        if isinstance(first, (list, tuple, dict, set, np.ndarray)):
            return "nested"
        if isinstance(first, (bytes, bytearray)):
            return "bytes"
    return "text"


def merge_kinds(a: ValueKind, b: ValueKind) -> ValueKind:
    """The kind of a column whose blocks have kinds `a` and `b`: the same, the one of a non-empty block, or
    text (values of several kinds), unless one is a kind prepare refuses."""
    if a == b or not b:
        return a
    if not a:
        return b
    for refused in ("nested", "bytes"):
        if refused in (a, b):
            return refused
    return "text"


def temporal_dtype(series: pd.Series) -> str:
    """The dtype a manifest records for a temporal column: its own (`datetime64[us, UTC]`) or `DATE_DTYPE`."""
    return DATE_DTYPE if series.dtype == object else str(series.dtype)


def is_temporal_dtype(dtype: str) -> bool:
    return dtype == DATE_DTYPE or dtype.startswith(("datetime64", "timedelta64"))


def numbers(series: pd.Series) -> np.ndarray:
    """float64 per value, NaN where it is missing or not a number (`pd.to_numeric(errors="coerce")`), by
    Arrow's cast when every value parses (text columns read from CSV: ~20x faster), else by pandas;
    timestamps and dates as microseconds since the epoch (durations: microseconds), whatever unit each file
    of a source stores them in."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        values = pd.to_numeric(series.dt.as_unit(TEMPORAL_UNIT), errors="coerce").to_numpy(dtype=np.float64)
        values[series.isna().to_numpy()] = np.nan  # NaT is stored as the smallest int64
        return values
    if dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "date":
        moments = np.asarray(series, dtype="datetime64[D]").astype(f"datetime64[{TEMPORAL_UNIT}]")
        return np.where(np.isnat(moments), np.nan, moments.astype(np.int64).astype(np.float64))
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_numeric_dtype(series):
        try:
            return pc.cast(pa.array(series, from_pandas=True), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass  # a value Arrow does not parse (text, spaces around a number): pandas decides each value
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)


def numbers_as(values: np.ndarray, dtype: str):
    """A temporal column's numbers (`numbers`' microseconds) back in the column's dtype, to the microsecond:
    datetime64 / timedelta64 with its unit and time zone, or `datetime.date` objects."""
    if dtype == DATE_DTYPE:  # to the nearest day: a value a float32 feature puts just before midnight is that day
        days = np.rint(np.asarray(values, dtype=np.float64) / US_PER_DAY)
        days = np.where(np.isnan(days), np.iinfo(np.int64).min, days).astype(np.int64)  # NaN: NaT
        return days.astype("datetime64[D]").astype(object)
    values = np.asarray(values, dtype=np.float64)
    ints = np.where(np.isnan(values), np.iinfo(np.int64).min, np.rint(values)).astype(np.int64)  # NaN: NaT
    if dtype.startswith("timedelta64"):
        return ints.astype(f"timedelta64[{TEMPORAL_UNIT}]").astype(dtype)
    moments = ints.astype(f"datetime64[{TEMPORAL_UNIT}]")
    target = pd.api.types.pandas_dtype(dtype)
    if isinstance(target, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(moments).tz_localize("UTC").tz_convert(target.tz).as_unit(target.unit)
    return moments.astype(target)


def looks_like_dates(levels) -> bool:
    """Whether text levels read as dates or times (a hint for an error about the column)."""
    sample = [str(level) for level in list(levels)[:20]]
    if not sample or not all(any(c.isdigit() for c in level) for level in sample):
        return False
    try:
        parsed = pd.to_datetime(pd.Series(sample), errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return False
    return bool(parsed.notna().all())


def looks_like_decimal_commas(levels) -> bool:
    """Whether text levels read as numbers written with a decimal comma ("0,126")."""
    sample = [str(level).strip() for level in list(levels)[:20]]
    if not sample or not any("," in level for level in sample):
        return False
    parsed = pd.to_numeric(pd.Series([level.replace(",", ".", 1) for level in sample]), errors="coerce")
    return bool(parsed.notna().all())


# texts that mark a missing value in tables nobody here wrote ("?" in UCI's), besides those pyarrow reads as null
MISSING_WORDS = frozenset({"?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing", "unknown"})


def grouped_number_pattern(separator: str, decimal: str = ".") -> str:
    """A regular expression (Python's and Arrow's RE2 alike) of a number whose digits `separator` groups by threes,
    "1,234,567.25"; a leading group of 0 ("0,126") is a decimal comma, not a thousands separator."""
    sep, dec = f"[{separator}]", f"[{decimal}]"
    return rf"^\s*[+-]?[1-9][0-9]{{0,2}}({sep}[0-9]{{3}})+({dec}[0-9]+)?([eE][+-]?[0-9]+)?\s*$"


def thousands_separator(text: str) -> Optional[str]:
    """The separator that groups `text`'s digits by threes ("1,234.5" → ",", "1.234,5" → "."), else None."""
    for separator, decimal in ((",", "."), (".", ","), ("'", "."), (" ", ".")):
        if re.fullmatch(grouped_number_pattern(separator, decimal), text):
            return separator
    return None


def thousands_in(levels) -> Optional[str]:
    """The thousands separator text levels are written with, when they read as such numbers (a hint for an
    error about the column), else None."""
    sample = [str(level) for level in list(levels)[:20]]
    found = [thousands_separator(level) for level in sample]
    if not all(separator or _is_number(level) for separator, level in zip(found, sample)):
        return None
    separators = set(found) - {None}
    return separators.pop() if len(separators) == 1 else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def missing_markers_in(levels) -> list[str]:
    """The texts among levels that are not numbers, when each is a mark for a missing value ("?", "n/a") and the
    others numbers: a numeric column with gaps written as a word (a hint for an error about the column)."""
    others = [str(level) for level in levels if not _is_number(str(level))]
    marks = all(not any(c.isalnum() for c in text) or text.strip().lower() in MISSING_WORDS for text in others)
    return sorted(others) if others and marks and len(others) < len(levels) else []


_TIME_OF_DAY = re.compile(r"\s*([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?\s*([aApP][mM])?\s*")


def looks_like_times_of_day(levels) -> bool:
    """Whether text levels are clock times without a date ("13:45", "07:30:05.25"): a time64 Parquet column or
    a CSV column of them (a hint for an error about the column)."""
    sample = [str(level) for level in list(levels)[:20]]
    return bool(sample) and all(_TIME_OF_DAY.fullmatch(level) for level in sample)
