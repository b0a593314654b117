"""Every table statsmodels and scikit-learn ship, as a notebook user hands it over (`VAESynthesizer().fit(frame)`
with the defaults, one epoch): it fits and samples rows in the frame's own schema (names, order, dtypes), or it
is refused with one error naming the column or the rows — never another exception. Tables nobody here chose:
an identifier column, dates, gaps, a handful of rows."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

from pipelines.errors import UserError
from vaepipe import VAESynthesizer


def _statsmodels_tables() -> dict:
    import statsmodels.datasets as datasets

    names = [m.name for m in pkgutil.iter_modules(datasets.__path__)
             if not m.name.startswith("_") and m.name not in ("utils", "tests", "template_data")]
    return {f"statsmodels-{name}": (lambda name=name: importlib.import_module(
        f"statsmodels.datasets.{name}").load_pandas().data) for name in names}


def _sklearn_tables() -> dict:
    import sklearn.datasets as datasets

    return {f"sklearn-{name}": (lambda name=name: getattr(datasets, f"load_{name}")(as_frame=True).frame)
            for name in ("iris", "wine", "diabetes", "breast_cancer", "linnerud")}


TABLES = {**_statsmodels_tables(), **_sklearn_tables()}


def test_there_are_tables_of_every_size_to_try():
    assert len(TABLES) >= 30


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_shipped_table_fits_in_its_own_schema_or_is_refused_by_name(name):
    frame = TABLES[name]().reset_index(drop=True)
    try:
        synthesizer = VAESynthesizer(seed=0, epochs=1, engine="local").fit(frame)
    except UserError as refused:
        message = str(refused)
        # names what is wrong: a column of the frame, or its rows
        assert any(repr(str(column)) in message for column in frame.columns) or "rows" in message, message
        return
    rows = synthesizer.sample(20, seed=0)
    assert list(rows.columns) == list(frame.columns)
    assert rows.dtypes.astype(str).to_dict() == frame.dtypes.astype(str).to_dict()
    assert len(rows) == 20 and not rows.isna().any().any()
