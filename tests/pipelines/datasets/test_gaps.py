"""Missing values kept (`prepare --impute keep`): a numeric column with gaps is an [is-present, value] pair the
model learns, and rows decoded from the model have gaps where the pair says so, in the column's own dtype."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.datasets.features import FeatureError, features_to_table, table_features
from pipelines.datasets.manifest import MISSING_LEVEL
from pipelines.datasets.preparation import PrepareConfig, prepare_in_memory
from pipelines.datasets.sources import SourceTable, load_builtin
from pipelines.training.model_spec import model_spec_for
from pipelines.training.config import ModelConfig


def holed_fair(share: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """The built-in `fair` table with `share` of age, children (whole numbers), affairs (mostly zero) and
    occupation (text) missing, and a timestamp column with gaps."""
    rng = np.random.default_rng(seed)
    frame = load_builtin("fair").table.copy()
    frame["children"] = frame["children"].round().astype("int64")
    frame["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, len(frame)), unit="D")
    frame = frame.astype({"children": object, "occupation": object})
    for column in ("age", "children", "affairs", "occupation", "when"):
        frame.loc[rng.random(len(frame)) < share, column] = None
    return frame


def prepared(frame: pd.DataFrame, **options):
    source = SourceTable("tabular", "holed fair", np.asarray([str(i) for i in range(len(frame))], dtype=object),
                         table=frame)
    return prepare_in_memory(source, PrepareConfig(name="holed", source="dataframe", impute="keep", **options))


def test_keep_stores_the_gaps_and_marks_only_the_columns_that_have_them():
    frame = holed_fair()
    manifest, rows = prepared(frame)
    numeric = {c.name: c for c in manifest.numeric}
    assert {name for name, c in numeric.items() if c.gaps} == {"age", "children", "affairs", "when"}
    # one indicator per column: affairs (68 % zeros) would be zero-inflated, but its pair says present or not
    assert not numeric["affairs"].zero_inflated and numeric["affairs"].width == 2
    for column in ("age", "children", "affairs"):
        assert int(np.isnan(rows[column].to_numpy()).sum()) == int(frame[column].isna().sum()), column
    assert rows["occupation"].to_pylist().count(MISSING_LEVEL) == int(frame["occupation"].isna().sum())
    # the statistics are the present train values'
    train = rows.filter(rows["split"].to_numpy() == "train")["age"].to_numpy()
    assert numeric["age"].mean == pytest.approx(np.nanmean(train)) and numeric["age"].min == np.nanmin(train)
    # the model's input: the pairs after the plain columns, one block each
    spec = model_spec_for(manifest, ModelConfig())
    assert [(b.kind, b.size) for b in spec.likelihood][:2] == [("gaussian", 1), ("zero_inflated", 8)]
    assert sum(b.size for b in spec.likelihood) == manifest.feature_dim


def test_a_gap_is_an_indicator_of_zero_and_comes_back_as_a_gap_in_the_columns_dtype():
    frame = holed_fair()
    manifest, rows = prepared(frame)
    features = table_features(manifest, {c: rows[c].to_numpy(zero_copy_only=False) for c in manifest.feature_columns})
    assert np.isfinite(features).all()
    back = features_to_table(manifest, features)
    for column in ("age", "children", "affairs", "when"):
        assert back[column].isna().tolist() == pd.isna(rows[column].to_numpy(zero_copy_only=False)).tolist(), column
    present = ~back["age"].isna()
    assert np.allclose(back["age"][present], rows["age"].to_numpy()[present.to_numpy()], rtol=1e-5)
    assert str(back["children"].dtype) == "Int64"            # whole numbers with gaps: pandas' nullable int
    assert str(back["age"].dtype) == "float64" and str(back["when"].dtype).startswith("datetime64")
    assert back["occupation"].isna().sum() == frame["occupation"].isna().sum()


def test_a_gap_in_a_column_that_had_none_in_training_is_still_refused_by_name():
    manifest, rows = prepared(holed_fair())
    batch = {c: rows[c].to_numpy(zero_copy_only=False) for c in manifest.feature_columns}
    batch["yrs_married"] = batch["yrs_married"].copy()
    batch["yrs_married"][3] = np.nan
    with pytest.raises(FeatureError, match="column 'yrs_married' has NaN/inf"):
        table_features(manifest, batch)


def test_a_column_with_no_present_train_value_is_refused_by_name():
    frame = holed_fair()
    frame["age"] = np.nan
    with pytest.raises(Exception, match="column 'age' has no valid train values"):
        prepared(frame)
