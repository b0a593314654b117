"""A new user's synthesis path on the command line, no Ray: `prepare` with its split and transforms,
`train --engine local`, `generate --local-dir` — the rows land on this machine in the source's schema, and the
output's summary scores them against the test split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.cli.main import main
from pipelines.datasets.sources import load_builtin

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fair_on_disk(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert main(["prepare", "fair", "--storage", str(store), "--split", "train=0.7,val=0.1,test=0.2",
                 "--transform", "quantile", "--transform", "affairs=log1p"]) == 0
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "train.epochs=4"]) == 0
    return store


def test_prepare_records_the_split_and_each_columns_transform(fair_on_disk):
    manifest = json.loads((fair_on_disk / "datasets" / "fair" / "_manifest.json").read_text())
    assert manifest["split"]["fractions"] == {"train": 0.7, "val": 0.1, "test": 0.2}
    transforms = {column["name"]: column["transform"] for column in manifest["numeric"]}
    assert transforms == {"age": "quantile", "yrs_married": "quantile", "children": "quantile", "affairs": "log1p"}


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_generate_copies_rows_in_the_source_schema_to_a_local_file(fair_on_disk, tmp_path, file_format):
    out = tmp_path / "out"
    assert main(["generate", "--model", "fair@latest", "--num-samples", "2000", "--storage", str(fair_on_disk),
                 "--engine", "local", "--local-dir", str(out), "--local-format", file_format, "--run", file_format]) == 0
    path = out / f"{file_format}.{file_format}"
    rows = pd.read_csv(path) if file_format == "csv" else pd.read_parquet(path)
    source = load_builtin("fair").table
    features = [c for c in source.columns if c != "had_affair"]  # fair's label is not a feature
    assert list(rows.columns) == features and len(rows) == 2000
    if file_format == "parquet":  # CSV forgets dtypes; Parquet keeps the source's
        assert {c: str(rows[c].dtype) for c in features if c in ("age", "affairs")} == {"age": "float64",
                                                                                       "affairs": "float64"}
    summary = json.loads((fair_on_disk / "samples" / "fair-v1" / file_format / "_summary.json").read_text())
    assert summary["sampler"] == "gmm" and summary["quality"]["compared_with"].startswith("test split")


def test_a_transform_for_a_column_that_is_not_numeric_is_refused_naming_it(tmp_path, capsys):
    assert main(["prepare", "fair", "--storage", str(tmp_path), "--transform", "occupation=quantile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "occupation" in err[-1]
    assert not (tmp_path / "datasets" / "fair").exists()


def holed_fair_through_the_cli(tmp_path: Path, holes: dict[str, float], prepare_flags: list[str], train_yaml: str,
                               num_samples: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """`fair` (plus a float code column, `band`) with a share of some columns' values missing, written as a CSV,
    then prepare (with `prepare_flags`), train --engine local and generate --local-dir, as a user runs them:
    (the source frame, the generated rows, the storage root)."""
    rng = np.random.default_rng(seed)
    source = load_builtin("fair").table.drop(columns=["had_affair"], errors="ignore")
    source = source.assign(children=source["children"].round().astype("int64"),
                           band=(source["yrs_married"] // 5).astype("float64"))
    source = source.astype({column: object for column in holes})
    for column, share in holes.items():
        source.loc[rng.random(len(source)) < share, column] = None
    source.to_csv(tmp_path / "holed.csv", index=False)
    store = tmp_path / "store"
    store.mkdir()
    assert main(["prepare", str(tmp_path / "holed.csv"), "--name", "holed", "--storage", str(store),
                 *prepare_flags]) == 0
    (tmp_path / "holed.yaml").write_text(f"name: holed\ndataset: holed\n{train_yaml}")
    assert main(["train", str(tmp_path / "holed.yaml"), "--storage", str(store), "--engine", "local"]) == 0
    assert main(["generate", "--model", "holed@latest", "--num-samples", str(num_samples), "--storage", str(store),
                 "--engine", "local", "--local-dir", str(tmp_path / "out"), "--run", "holed"]) == 0
    return source, pd.read_parquet(tmp_path / "out" / "holed.parquet"), store


def test_gaps_in_categorical_columns_are_generated_as_nulls_in_their_share(tmp_path):
    # a CSV as users have them: a quarter of two categorical columns empty, prepared with --impute median. The
    # generated Parquet has nulls there in about the source's share — it had the text '__missing__' — and the
    # summary's quality compares them with the held-out rows' gaps as one level
    source, rows, store = holed_fair_through_the_cli(
        tmp_path, {"occupation": 0.25, "band": 0.25}, ["--categorical", "band", "--impute", "median"],
        "train:\n  epochs: 4\n", 3000)
    for column in ("occupation", "band"):
        share = rows[column].isna().mean()
        assert 0.1 < share < 0.4, (column, share)
        assert "__missing__" not in set(rows[column].dropna().astype(str)), column
        assert set(rows[column].dropna().astype(str)) <= set(source[column].dropna().astype(str)), column
    # float codes in a CSV ("2.0") come back as the floats read_csv reads them as, not as their text
    assert rows["band"].dtype == pd.read_csv(tmp_path / "holed.csv")["band"].dtype == "float64"
    summary = json.loads((store / "samples" / "holed-v1" / "holed" / "_summary.json").read_text())
    assert summary["quality"]["column_shapes"] > 0.8


def test_with_impute_keep_generated_rows_have_gaps_in_the_sources_share_and_the_summary_scores_them(tmp_path):
    # SDV's synthesizers learn and generate missing values; so does --impute keep, through the default sampler
    # and training budget. The summary's figures count a gap as sdmetrics does (its DCR gave 0 % with them)
    holes = {"age": 0.2, "children": 0.2, "affairs": 0.2, "occupation": 0.2}
    source, rows, store = holed_fair_through_the_cli(tmp_path, holes, ["--impute", "keep", "--transform", "quantile"],
                                                     "", 4000, seed=1)
    manifest = json.loads((store / "datasets" / "holed" / "_manifest.json").read_text())
    assert {c["name"] for c in manifest["numeric"] if c["gaps"]} == {"age", "children", "affairs"}
    for column in holes:
        assert rows[column].isna().mean() == pytest.approx(source[column].isna().mean(), abs=0.06), column
    assert rows["yrs_married"].notna().all()
    quality = json.loads((store / "samples" / "holed-v1" / "holed" / "_summary.json").read_text())["quality"]
    assert quality["overall"] > 0.9 and 0.3 < quality["dcr_closer_to_training"] < 0.7, quality
