"""`vaepipe augment` as a user runs it: a conditional model tops up each class of a labelled dataset, the result is
a new prepared dataset (real rows unchanged and in their splits, generated rows in train, `is_synthetic` on every
row, the manifest counting real and generated rows per class) that `vaepipe train` reads like any other; a second
run changes nothing, and a model that is not conditioned on the label is refused by name."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def rows_of(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(part) for part in sorted(folder.glob("part-*.parquet"))])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert main(["prepare", "digits", "--storage", str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=digits-cvae", "--set", "model.condition_on=[label]", "--set", "train.epochs=10"]) == 0
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "train.epochs=1"]) == 0
    return store


def augment(store: Path, *flags: str) -> int:
    return main(["augment", "--storage", str(store), "--engine", "local", *flags])


def test_each_class_is_topped_up_and_the_real_rows_stay_as_they_were(store):
    assert augment(store, "--model", "digits-cvae@1", "--input", "digits", "--name", "digits-200",
                   "--per-class", "200") == 0
    before, after = rows_of(store / "datasets" / "digits"), rows_of(store / "datasets" / "digits-200")
    manifest = json.loads((store / "datasets" / "digits-200" / "_manifest.json").read_text())
    record = manifest["augmentation"]
    assert record["sampler"] == "interpolate"  # auto
    assert record["classifier_val_accuracy"] >= 0.8  # the model learnt the digits: no warning
    real_train = before.filter(pa.compute.equal(before["split"], "train"))
    for level, counts in record["train_rows"].items():
        assert counts["real"] == int(np.sum(np.asarray(real_train["label"].to_pylist()) == int(level)))
        assert counts["real"] + counts["synthetic"] == 200
    synthetic = np.asarray(after["is_synthetic"].to_pylist())
    assert synthetic.sum() == sum(c["synthetic"] for c in record["train_rows"].values())
    assert set(np.asarray(after["split"].to_pylist())[synthetic]) == {"train"}  # val and test stay real
    real = after.filter(pa.compute.invert(after["is_synthetic"])).sort_by("row_id")
    before = before.sort_by("row_id")
    assert real.select(["row_id", "split", "label"]).equals(before.select(["row_id", "split", "label"]))
    pixels = [np.stack(table["image"].to_numpy(zero_copy_only=False)).reshape(len(table), -1) for table in (real, before)]
    assert np.array_equal(*pixels)
    labels = pd.Series(np.asarray(after["label"].to_pylist())[np.asarray(after["split"].to_pylist()) == "train"])
    assert set(labels.value_counts()) == {200}
    assert manifest["split_rows"]["train"] == 2000 and manifest["split_rows"]["val"] == json.loads(
        (store / "datasets" / "digits" / "_manifest.json").read_text())["split_rows"]["val"]
    # a dataset like any other: an unconditional model trains on it
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=on-augmented", "--set", "dataset=digits-200", "--set", "train.epochs=1"]) == 0


def test_a_second_run_changes_nothing(store, capsys):
    flags = ["--model", "digits-cvae@1", "--input", "digits", "--name", "digits-bal", "--balance"]
    assert augment(store, *flags) == 0
    manifest = (store / "datasets" / "digits-bal" / "_manifest.json").read_bytes()
    first = rows_of(store / "datasets" / "digits-bal").sort_by("row_id")
    capsys.readouterr()
    assert augment(store, *flags) == 0
    assert "already complete" in capsys.readouterr().out
    assert (store / "datasets" / "digits-bal" / "_manifest.json").read_bytes() == manifest
    assert augment(store, *flags, "--overwrite") == 0  # the generated rows are reused, the same dataset again
    assert "reusing the rows already generated" in capsys.readouterr().out
    again = rows_of(store / "datasets" / "digits-bal").sort_by("row_id")
    assert again.drop(["image"]).equals(first.drop(["image"]))
    assert np.array_equal(*(np.stack(t["image"].to_numpy(zero_copy_only=False)) for t in (again, first)))


def test_a_model_whose_classifier_did_not_learn_the_classes_is_named_in_a_warning(store, capsys):
    # with its classifier's weight at 0, q(y|x) stays at its initialisation: about chance on the val rows
    assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=digits-blind", "--set", "model.condition_on=[label]", "--set", "train.epochs=1",
                 "--set", "train.classifier_weight=0"]) == 0
    capsys.readouterr()
    assert augment(store, "--model", "digits-blind@1", "--input", "digits", "--name", "blind", "--ratio", "0.1",
                   "--sampler", "prior") == 0
    out = capsys.readouterr().out
    assert "WARNING: digits-blind@1's classifier q(y|x) labels" in out and "--sampler interpolate starts" in out
    record = json.loads((store / "datasets" / "blind" / "_manifest.json").read_text())["augmentation"]
    assert record["classifier_val_accuracy"] < 0.5 and record["sampler"] == "prior"
    # its labels would be wrong more often than right: refused before anything is generated or written
    assert augment(store, "--model", "digits-blind@1", "--input", "digits", "--name", "blind-self", "--ratio",
                   "0.1", "--pseudo-label", "0.9") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --pseudo-label: digits-blind@1's classifier q(y|x) labels") and "below 80%" in err
    assert not (store / "datasets" / "blind-self").exists()
    assert not list((store / "samples" / "digits-blind-v1").glob("augment-blind-self-*"))


def test_a_model_not_conditioned_on_the_label_is_refused_with_nothing_written(store, capsys):
    assert augment(store, "--model", "digits@1", "--input", "digits", "--name", "refused", "--balance") == 2
    assert "digits@1 is not conditioned on its dataset's label" in capsys.readouterr().err
    assert not (store / "datasets" / "refused").exists()
    assert augment(store, "--model", "digits-cvae@1", "--input", "digits", "--name", "refused", "--balance",
                   "--pseudo-label", "0") == 2  # a probability threshold in (0, 1]
    assert "pseudo_label: Input should be greater than 0" in capsys.readouterr().err
    assert not (store / "datasets" / "refused").exists()
    with pytest.raises(SystemExit):  # one target only, argparse says so
        augment(store, "--model", "digits-cvae@1", "--input", "digits", "--name", "two", "--balance", "--ratio", "1")


def cancer_model(tmp_path: Path, frame: pd.DataFrame, epochs: int, fmt: str = "csv") -> Path:
    """A store with `frame` prepared as `cancer` (label `diagnosis`) and `cancer-cvae@1` trained on it."""
    source, store = tmp_path / f"cancer.{fmt}", tmp_path / "store"
    frame.to_csv(source, index=False) if fmt == "csv" else frame.to_parquet(source)
    assert main(["prepare", str(source), "--name", "cancer", "--label-column", "diagnosis", "--storage",
                 str(store)]) == 0
    assert main(["train", str(ROOT / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
                 "--set", "name=cancer-cvae", "--set", "dataset=cancer", "--set", "model.condition_on=[diagnosis]",
                 "--set", f"train.epochs={epochs}"]) == 0
    return store


def test_an_imbalanced_table_is_balanced_in_its_own_schema(tmp_path, capsys):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :8].copy()
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    frame = pd.concat([frame[frame.diagnosis == "benign"], frame[frame.diagnosis == "malignant"].head(30)])
    store = cancer_model(tmp_path, frame, epochs=50)
    assert augment(store, "--model", "cancer-cvae@1", "--input", "cancer", "--name", "cancer-balanced",
                   "--balance") == 0
    after = rows_of(store / "datasets" / "cancer-balanced").to_pandas()
    train = after[after.split == "train"]
    assert train.diagnosis.value_counts()["malignant"] == train.diagnosis.value_counts()["benign"]
    assert train[train.is_synthetic].diagnosis.eq("malignant").all()
    before = rows_of(store / "datasets" / "cancer").schema
    assert all(after[name].dtype.kind == np.dtype(before.field(name).type.to_pandas_dtype()).kind
               for name in frame.columns[:8])
    # a table's rows come from interpolate (auto), which has no temperature to scale
    samples = store / "samples" / "cancer-cvae-v1" / "augment-cancer-balanced-interpolate-seed0"
    assert json.loads((samples / "_summary.json").read_text())["sampler"] == "interpolate"
    capsys.readouterr()
    assert augment(store, "--model", "cancer-cvae@1", "--input", "cancer", "--name", "cancer-balanced",
                   "--balance", "--overwrite") == 0
    out = capsys.readouterr().out
    assert "reusing the rows already generated" in out and "encoding up to" not in out  # nothing refitted
    assert augment(store, "--model", "cancer-cvae@1", "--input", "cancer", "--name", "warm", "--balance",
                   "--temperature", "0.8") == 2
    assert "pass --sampler prior or gmm with --temperature" in capsys.readouterr().err
    assert not (store / "datasets" / "warm").exists()


def test_an_augmented_table_keeps_the_source_dtypes_of_timestamps_booleans_and_whole_numbers(tmp_path):
    """Generated rows (timestamps, booleans, int64) were joined to the real rows as stored (float64 numbers,
    text levels) and the new dataset's dtypes were inferred from that mix: it would generate floats and text."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :3].copy()
    rng = np.random.default_rng(0)
    frame["seen_at"] = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**7, len(frame)), unit="s")
    frame["smoker"] = rng.random(len(frame)) < 0.3
    frame["visits"] = rng.poisson(3, len(frame)).astype(np.int64)
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    frame = pd.concat([frame[frame.diagnosis == "benign"], frame[frame.diagnosis == "malignant"].head(30)])
    store = cancer_model(tmp_path, frame, epochs=5, fmt="parquet")
    assert augment(store, "--model", "cancer-cvae@1", "--input", "cancer", "--name", "cancer-balanced",
                   "--balance") == 0
    before, after = (json.loads((store / "datasets" / name / "_manifest.json").read_text())
                     for name in ("cancer", "cancer-balanced"))
    dtypes = {column["name"]: column["dtype"] for column in [*before["numeric"], *before["categorical"]]}
    assert {"seen_at": "datetime64[us, UTC]", "smoker": "bool", "visits": "int64"}.items() <= dtypes.items()
    assert {column["name"]: column["dtype"] for column in [*after["numeric"], *after["categorical"]]} == dtypes
    rows = rows_of(store / "datasets" / "cancer-balanced").to_pandas()
    generated = rows[rows.is_synthetic]
    assert len(generated) > 0 and set(generated.smoker) <= {"True", "False"}
    seen = next(column for column in before["numeric"] if column["name"] == "seen_at")
    assert generated.seen_at.between(seen["min"], seen["max"]).all()  # microseconds, as the real rows


def test_pseudo_labels_fill_the_unlabelled_train_rows_the_classifier_is_sure_of(store, capsys):
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.datasets.sources import SourceTable, load_builtin
    from pipelines.jobs.prepare import prepare_dataset

    digits = load_builtin("digits")
    truth = np.asarray(digits.labels).astype(int)
    full = rows_of(store / "datasets" / "digits")
    split = dict(zip(full["row_id"].to_pylist(), full["split"].to_pylist()))
    train = np.asarray([split[str(i)] == "train" for i in digits.row_ids])
    # 10 labelled train rows per class (the first of each), every other train row unlabelled: a sparse set
    kept = np.concatenate([np.flatnonzero(train & (truth == k))[:10] for k in range(10)])
    partial = np.where(train, None, truth).astype(object)
    partial[kept] = truth[kept]
    prepare_dataset(PrepareConfig(name="digits-few", source="digits, 10 labels per class", storage=str(store),
                                  label_column="label"),
                    source=SourceTable("image", "digits", digits.row_ids, labels=partial, images=digits.images,
                                       label_name="label"))
    capsys.readouterr()
    assert augment(store, "--model", "digits-cvae@1", "--input", "digits-few", "--name", "digits-self",
                   "--per-class", "200", "--pseudo-label", "0.9") == 0
    out = capsys.readouterr().out
    assert "unlabelled train rows with digits-cvae@1's classifier q(y|x) ≥ 0.9" in out
    after = rows_of(store / "datasets" / "digits-self")
    record = json.loads((store / "datasets" / "digits-self" / "_manifest.json").read_text())["augmentation"]
    assert record["pseudo_label"] == 0.9 and record["pseudo_label_column"] == "label_from_model"
    assert after.schema.field("label").type == pa.int64()  # the input's type, not the level's text
    real = after.filter(pa.compute.invert(after["is_synthetic"]))
    ids = np.asarray(real["row_id"].to_pylist()).astype(int)
    labels, from_model = real["label"].to_pylist(), np.asarray(real["label_from_model"].to_pylist())
    given = np.isin(ids, kept) | ~train[ids]
    assert not from_model[given].any()  # a label the input had is kept as it was
    assert all(labels[i] == truth[ids[i]] for i in np.flatnonzero(given))
    assert not any(labels[i] is not None for i in np.flatnonzero(~given & ~from_model))  # unsure: still unlabelled
    pseudo = np.flatnonzero(from_model)
    # the 10-epoch model's q(y|x) is right on ~97 % of val rows; the ones it is sure of are labelled better still
    assert len(pseudo) > 0.5 * (~given).sum()
    assert np.mean([labels[i] == truth[ids[i]] for i in pseudo]) > 0.93
    assert not np.asarray(after.filter(after["is_synthetic"])["label_from_model"].to_pylist()).any()
    for level, counts in record["train_rows"].items():
        assert counts["real"] == 10
        assert counts["pseudo_labelled"] == sum(labels[i] == int(level) for i in pseudo)
        assert counts["real"] + counts["pseudo_labelled"] + counts["synthetic"] == max(
            200, counts["real"] + counts["pseudo_labelled"])
    # pseudo-labels alone (no class below 1 labelled row): nothing generated, no samples
    assert augment(store, "--model", "digits-cvae@1", "--input", "digits-few", "--name", "digits-pseudo",
                   "--per-class", "1", "--pseudo-label", "0.9") == 0
    alone = json.loads((store / "datasets" / "digits-pseudo" / "_manifest.json").read_text())["augmentation"]
    assert alone["samples"] is None and all(c["synthetic"] == 0 for c in alone["train_rows"].values())
    assert alone["train_rows"] == {level: {**c, "synthetic": 0} for level, c in record["train_rows"].items()}


@pytest.mark.parametrize("column", ["is_synthetic", "label_from_model"])
def test_an_input_feature_named_like_a_provenance_column_is_refused_never_overwritten(tmp_path, capsys, column):
    """The augmented dataset's shards gain `is_synthetic` (and `label_from_model` with --pseudo-label); an input
    feature of either name would be overwritten in every shard, so augment refuses it by name, writing nothing."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :4].copy()
    frame[column] = (data.target.to_numpy() + np.arange(len(frame))) % 2  # a feature of the user's own
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    if column == "label_from_model":  # self-training needs unlabelled train rows
        frame.loc[frame.index[::3], "diagnosis"] = None
    store = cancer_model(tmp_path, frame, epochs=30)
    capsys.readouterr()
    flags = ("--balance", "--pseudo-label", "0.5") if column == "label_from_model" else ("--balance",)
    assert augment(store, "--model", "cancer-cvae@1", "--input", "cancer", "--name", "augmented", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"column {column!r}" in err[0], err
    assert not (store / "datasets" / "augmented").exists() and not (store / "samples").exists()  # nor generated
