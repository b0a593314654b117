"""Conditional models through the product, as a user runs them: `vaepipe train --set model.condition_on=[...]`,
then `vaepipe generate --condition / --per-class / --conditions`. Generated rows are the class they were asked
for (judged by a classifier trained on real rows), a table whose label is mostly missing still trains
(semi-supervised), a categorical column can be the condition, and a level or column the model does not know is
refused by name with nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from pipelines.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def rows_of(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(part) for part in sorted(folder.glob("*.parquet"))])


def generate(store: Path, model: str, *extra: str) -> int:
    return main(["generate", "--model", model, "--storage", str(store), "--engine", "local", *extra])


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert main(["prepare", "digits", "--storage", str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=digits-cvae", "--set", "model.condition_on=[label]", "--set", "train.epochs=15"]) == 0
    return store


def test_per_class_digits_are_classified_as_the_digit_asked_for(digits_store):
    from sklearn.datasets import load_digits

    assert generate(digits_store, "digits-cvae@1", "--per-class", "30") == 0
    samples = rows_of(digits_store / "samples" / "digits-cvae-v1" / "prior-seed0-perclass30-t1")
    asked = np.asarray(samples["label"].to_pylist())
    assert samples.schema.field("label").type == pa.int64()  # the source's label type
    assert sorted(np.unique(asked, return_counts=True)[1]) == [30] * 10
    digits = load_digits()
    real = LogisticRegression(max_iter=3000).fit(digits.data / 16.0, digits.target)
    pixels = np.stack(samples["image"].to_numpy(zero_copy_only=False)).reshape(len(samples), -1) / 255.0
    assert (real.predict(pixels) == asked).mean() >= 0.8  # chance: 0.1


def test_one_condition_for_every_row_and_a_conditions_file(digits_store, tmp_path):
    assert generate(digits_store, "digits-cvae@1", "--num-samples", "12", "--condition", "label=7",
                    "--run", "sevens") == 0
    assert set(rows_of(digits_store / "samples" / "digits-cvae-v1" / "sevens")["label"].to_pylist()) == {7}
    requests = tmp_path / "asked.csv"
    requests.write_text("label,num_rows\n3,4\n8,2\n")
    assert generate(digits_store, "digits-cvae@1", "--conditions", str(requests), "--run", "from-file") == 0
    rows = rows_of(digits_store / "samples" / "digits-cvae-v1" / "from-file")
    assert sorted(rows["label"].to_pylist()) == [3, 3, 3, 3, 8, 8]


@pytest.mark.parametrize("flags, named", [
    (["--num-samples", "5", "--condition", "label=12"], "label='12' is not a level the model was trained with"),
    (["--num-samples", "5", "--condition", "colour=3"], "'colour' is not one of the model's conditions"),
    (["--num-samples", "5", "--condition", "label"], "--condition 'label': write it as COLUMN=LEVEL"),
])
def test_an_unknown_level_or_condition_is_refused_by_name_with_nothing_written(digits_store, capsys, flags, named):
    assert generate(digits_store, "digits-cvae@1", *flags, "--run", "refused") == 2
    assert named in capsys.readouterr().err
    assert not (digits_store / "samples" / "digits-cvae-v1" / "refused").exists()


def test_an_unconditional_model_refuses_a_condition(digits_store, capsys):
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(digits_store), "--engine",
                 "local", "--set", "train.epochs=1"]) == 0
    assert generate(digits_store, "digits@1", "--per-class", "3") == 2
    assert "per_class needs a model with exactly one condition" in capsys.readouterr().err
    # interpolate needs no condition: between any training row and its neighbours
    assert generate(digits_store, "digits@1", "--num-samples", "20", "--sampler", "interpolate", "--run", "i") == 0
    assert len(rows_of(digits_store / "samples" / "digits-v1" / "i")) == 20


def test_a_mostly_unlabelled_table_trains_and_generates_each_class(tmp_path):
    """breast_cancer with the diagnosis kept on 30 train rows only: the rows without one still train the model
    (M2), the manifest counts only labelled rows, and generated rows follow the asked diagnosis."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :10].copy()
    frame["diagnosis"] = data.target.astype("Int64")
    frame["row_id"] = [f"r{i}" for i in range(len(frame))]
    keep = np.random.default_rng(0).permutation(len(frame))[:40]
    frame.loc[~frame.index.isin(keep), "diagnosis"] = pd.NA
    source = tmp_path / "cancer.csv"
    frame.to_csv(source, index=False)
    store = tmp_path / "store"
    assert main(["prepare", str(source), "--name", "cancer", "--id-column", "row_id", "--label-column", "diagnosis",
                 "--storage", str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=cancer", "--set", "dataset=cancer", "--set", "model.condition_on=[diagnosis]",
                 ]) == 0  # the auto budget: 3,000 steps
    card = json.loads((store / "models" / "cancer" / "1" / "model.json").read_text())
    (condition,) = card["dataset"]["manifest"]["condition"]
    assert condition["levels"] == ["0", "1"]  # a CSV's label is text
    assert 0 < sum(condition["train_counts"]) <= 40  # the labelled train rows only
    assert generate(store, "cancer@1", "--per-class", "200", "--seed", "1") == 0
    samples = rows_of(store / "samples" / "cancer-v1" / "gmm-seed1-perclass200-t1").to_pandas()
    features = list(data.frame.columns[:10])
    real = LogisticRegression(max_iter=5000).fit(data.frame[features], data.target)
    asked = samples["diagnosis"].astype(int)
    assert sorted(asked.value_counts()) == [200, 200]
    assert (real.predict(samples[features]) == asked).mean() >= 0.8  # chance: 0.5


def test_a_categorical_column_as_the_condition(tmp_path):
    store = tmp_path / "store"
    assert main(["prepare", "fair", "--storage", str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "model.condition_on=[religious]", "--set", "train.epochs=5"]) == 0
    assert generate(store, "fair@1", "--num-samples", "50", "--condition", "religious=strongly", "--run", "s") == 0
    rows = rows_of(store / "samples" / "fair-v1" / "s").to_pandas()
    assert set(rows["religious"]) == {"strongly"}
    assert list(rows.columns) == json.loads((store / "datasets" / "fair" / "_manifest.json").read_text())[
        "column_order"]
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "model.condition_on=[age]", "--set", "train.epochs=1"]) == 2


def test_interpolate_generates_the_asked_levels_and_refuses_a_combination_no_training_row_has(tmp_path, capsys):
    """--sampler interpolate (SMOTE in latent space, `vae_core.interpolate_latents`: tests/vae_core) through the
    product: rows at the levels asked for, the anchors counted in the summary; a combination of levels that no
    training row has (fair: no student with a grade-school education) is refused by name with nothing written,
    while the prior still generates it; temperature does not apply."""
    store = tmp_path / "store"
    assert main(["prepare", "fair", "--storage", str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "model.condition_on=[educ,occupation]", "--set", "train.epochs=3"]) == 0
    assert generate(store, "fair@1", "--num-samples", "300", "--condition", "educ=advanced_degree",
                    "--condition", "occupation=professional", "--sampler", "interpolate", "--run", "i") == 0
    rows = rows_of(store / "samples" / "fair-v1" / "i").to_pandas()
    assert set(rows["educ"]) == {"advanced_degree"} and set(rows["occupation"]) == {"professional"}
    summary = json.loads((store / "samples" / "fair-v1" / "i" / "_summary.json").read_text())
    assert summary["sampler"] == "interpolate" and summary["anchors"] > 1000
    flags = ["--num-samples", "5", "--condition", "educ=grade_school", "--condition", "occupation=student"]
    assert generate(store, "fair@1", *flags, "--sampler", "interpolate", "--run", "refused") == 2
    assert "has educ=grade_school, occupation=student; use --sampler prior or gmm" in capsys.readouterr().err
    assert not (store / "samples" / "fair-v1" / "refused").exists()
    assert generate(store, "fair@1", *flags, "--sampler", "prior", "--run", "prior") == 0
    assert generate(store, "fair@1", "--num-samples", "5", "--sampler", "interpolate", "--temperature", "0.5") == 2
    assert "interpolate places z between two training rows' latents" in capsys.readouterr().err
