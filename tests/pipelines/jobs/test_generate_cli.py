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


def test_gaps_in_categorical_columns_are_generated_as_nulls_in_their_share(tmp_path):
    # a CSV as users have them: a quarter of two categorical columns empty, prepared with --impute median. The
    # generated Parquet has nulls there in about the source's share — it had the text '__missing__' — and the
    # summary's quality compares them with the held-out rows' gaps as one level
    rng = np.random.default_rng(0)
    source = load_builtin("fair").table
    source = source.assign(occupation=source["occupation"].astype(object),
                           band=(source["yrs_married"] // 5).astype("float64"))  # a float code column
    gaps = {"occupation": rng.random(len(source)) < 0.25, "band": rng.random(len(source)) < 0.25}
    for column, rows in gaps.items():
        source.loc[rows, column] = None
    source.drop(columns=["had_affair"], errors="ignore").to_csv(tmp_path / "holed.csv", index=False)
    store = tmp_path / "store"
    store.mkdir()
    assert main(["prepare", str(tmp_path / "holed.csv"), "--name", "holed", "--storage", str(store),
                 "--categorical", "band", "--impute", "median"]) == 0
    (tmp_path / "holed.yaml").write_text("name: holed\ndataset: holed\ntrain:\n  epochs: 4\n")
    assert main(["train", str(tmp_path / "holed.yaml"), "--storage", str(store), "--engine", "local"]) == 0
    out = tmp_path / "out"
    assert main(["generate", "--model", "holed@latest", "--num-samples", "3000", "--storage", str(store),
                 "--engine", "local", "--local-dir", str(out), "--run", "gaps"]) == 0
    rows = pd.read_parquet(out / "gaps.parquet")
    for column in gaps:
        share = rows[column].isna().mean()
        assert 0.1 < share < 0.4, (column, share)
        assert "__missing__" not in set(rows[column].dropna().astype(str)), column
        assert set(rows[column].dropna().astype(str)) <= set(source[column].dropna().astype(str)), column
    summary = json.loads((store / "samples" / "holed-v1" / "gaps" / "_summary.json").read_text())
    assert summary["quality"]["column_shapes"] > 0.8


def test_with_impute_keep_generated_rows_have_gaps_in_the_sources_share_and_the_summary_scores_them(tmp_path):
    # SDV's synthesizers learn and generate missing values; so does --impute keep, through the default sampler
    # and training budget. The summary's figures count a gap as sdmetrics does (its DCR gave 0 % with them)
    rng = np.random.default_rng(1)
    source = load_builtin("fair").table.drop(columns=["had_affair"], errors="ignore")
    source = source.assign(children=source["children"].round().astype("int64")).astype({"children": object,
                                                                                        "occupation": object})
    for column in ("age", "children", "affairs", "occupation"):
        source.loc[rng.random(len(source)) < 0.2, column] = None
    source.to_csv(tmp_path / "holed.csv", index=False)
    store = tmp_path / "store"
    store.mkdir()
    assert main(["prepare", str(tmp_path / "holed.csv"), "--name", "holed", "--storage", str(store),
                 "--impute", "keep", "--transform", "quantile"]) == 0
    manifest = json.loads((store / "datasets" / "holed" / "_manifest.json").read_text())
    assert {c["name"] for c in manifest["numeric"] if c["gaps"]} == {"age", "children", "affairs"}
    (tmp_path / "holed.yaml").write_text("name: holed\ndataset: holed\n")
    assert main(["train", str(tmp_path / "holed.yaml"), "--storage", str(store), "--engine", "local"]) == 0
    out = tmp_path / "out"
    assert main(["generate", "--model", "holed@latest", "--num-samples", "4000", "--storage", str(store),
                 "--engine", "local", "--local-dir", str(out), "--run", "keep"]) == 0
    rows = pd.read_parquet(out / "keep.parquet")
    for column in ("age", "children", "affairs", "occupation"):
        assert rows[column].isna().mean() == pytest.approx(source[column].isna().mean(), abs=0.06), column
    assert rows["yrs_married"].notna().all()
    quality = json.loads((store / "samples" / "holed-v1" / "keep" / "_summary.json").read_text())["quality"]
    assert quality["overall"] > 0.9 and 0.3 < quality["dcr_closer_to_training"] < 0.7, quality
