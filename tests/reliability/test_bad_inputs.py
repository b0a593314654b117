"""Bad inputs the other test modules do not try yet, each refused the same way: exit status 2, one
`error:` line naming the problem, no new `_SUCCESS`, and every object already on storage unchanged.
All are refused on the driver before Ray starts, so they cost a second or two each."""
from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest, shard_uris
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.storage.layout import dataset_uri
from pipelines.storage.objects import read_bytes, write_bytes
from tests.reliability.refusals import assert_refused, objects

pytestmark = [pytest.mark.reliability("bad input"), pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def model(digits_zero_model) -> dict:
    return digits_zero_model


def score_args(model: dict, *args: str) -> list[str]:
    return ["score", "--storage", model["storage"], "--date", "2026-09-30", *args]


def damaged_copy(model: dict, name: str, damage) -> str:
    """A fresh copy of the digits dataset whose first shard `damage(bytes) -> bytes` rewrote; its URI."""
    prepare_dataset(PrepareConfig(name=name, source="digits", storage=model["storage"], overwrite=True))
    uri = dataset_uri(model["storage"], name)
    first = shard_uris(uri, load_manifest(uri))[0]
    write_bytes(first, damage(read_bytes(first)))
    return first


# --- damaged or drifted datasets ---------------------------------------------------------

def test_truncated_shard_is_refused_by_score(model, capsys):
    shard = damaged_copy(model, "truncated", lambda data: data[: len(data) // 2])
    assert_refused(model["storage"], score_args(model, "--model", model["model"], "--input", "truncated"),
                   capsys, shard, "truncated")


def test_shard_rewritten_with_a_renamed_column_is_refused_by_score(model, capsys):
    def rename_image_column(data: bytes) -> bytes:
        table = pq.read_table(io.BytesIO(data))
        buffer = io.BytesIO()
        pq.write_table(table.rename_columns(["pixels" if c == "image" else c for c in table.column_names]), buffer)
        return buffer.getvalue()

    shard = damaged_copy(model, "drifted", rename_image_column)
    assert_refused(model["storage"], score_args(model, "--model", model["model"], "--input", "drifted"),
                   capsys, shard, "changed or truncated after prepare")


def test_shard_with_a_flipped_byte_fails_its_checksum_before_training(model, capsys):
    def flip_a_byte(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]

    shard = damaged_copy(model, "flipped", flip_a_byte)
    assert_refused(model["storage"], ["train", "configs/digits.yaml", "--storage", model["storage"],
                                      "--set", "dataset=flipped", "--set", "name=flipped"],
                   capsys, shard, "does not match its checksum")


def test_csv_files_whose_columns_drift_are_refused_by_prepare(model, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}).to_csv(tmp_path / "in" / "a.csv", index=False)
    pd.DataFrame({"x": [5.0, 6.0], "z": [7.0, 8.0]}).to_csv(tmp_path / "in" / "b.csv", index=False)
    assert_refused(model["storage"], ["prepare", str(tmp_path / "in"), "--name", "drift", "--storage",
                                      model["storage"]], capsys, "b.csv", "must have the same columns")


# --- bad values --------------------------------------------------------------------------

def test_infinite_feature_value_is_refused_by_prepare(model, tmp_path, capsys):
    pd.DataFrame({"a": [1.0, float("inf"), 3.0] * 20}).to_csv(tmp_path / "inf.csv", index=False)
    assert_refused(model["storage"], ["prepare", str(tmp_path / "inf.csv"), "--name", "inf", "--storage",
                                      model["storage"]], capsys, "'a'", "NaN/inf", "--impute")


def test_text_in_a_column_declared_numeric_is_refused_by_prepare(model, tmp_path, capsys):
    pd.DataFrame({"plan": ["basic", "pro"] * 20, "x": range(40)}).to_csv(tmp_path / "plans.csv", index=False)
    assert_refused(model["storage"], ["prepare", str(tmp_path / "plans.csv"), "--name", "plans", "--numeric", "plan",
                                      "--storage", model["storage"]], capsys, "'plan'", "non-numeric value 'basic'")


def test_bad_source_does_not_touch_an_existing_dataset_even_with_overwrite(model, tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("a,b\n")
    assert_refused(model["storage"], ["prepare", str(tmp_path / "empty.csv"), "--name", model["dataset"],
                                      "--overwrite", "--storage", model["storage"]], capsys, "empty")
    assert load_manifest(dataset_uri(model["storage"], model["dataset"])).rows == 1797


# --- images that do not fit the model ------------------------------------------------------

@pytest.mark.parametrize("size, mode, shape", [((9, 9), "L", "(1, 9, 9)"), ((8, 8), "RGB", "(3, 8, 8)")],
                         ids=["wrong-size", "wrong-channels"])
def test_images_of_another_shape_are_refused_by_score(model, tmp_path, capsys, size, mode, shape):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        Image.new(mode, size, color=i * 20 if mode == "L" else (i * 20, 0, 0)).save(folder / f"{i}.png")
    name = f"shape-{mode.lower()}-{size[0]}"
    prepare_dataset(PrepareConfig(name=name, source=str(folder), storage=model["storage"], overwrite=True))
    assert_refused(model["storage"], score_args(model, "--model", model["model"], "--input", name), capsys,
                   f"images are {shape} (C,H,W) but the model expects (1, 8, 8)")


# --- storage and credentials -----------------------------------------------------------------

def test_missing_bucket_is_named(model, capsys):
    assert_refused(model["storage"], ["prepare", "digits", "--storage", "s3://no-such-bucket-vaepipe/x"], capsys,
                   "bucket 'no-such-bucket-vaepipe' does not exist")


def test_wrong_secret_key_is_named_and_not_printed(model, s3_store, capsys, monkeypatch):
    wrong = "wrong-secret-" + "7" * 24
    before = objects(model["storage"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    code = main(score_args(model, "--model", model["model"], "--input", model["dataset"]))
    err = capsys.readouterr().err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_store.secret_key)
    assert code == 2 and err.startswith("error: credentials were rejected") and "AWS_SECRET_ACCESS_KEY" in err
    assert wrong not in err and s3_store.secret_key not in err
    assert objects(model["storage"]) == before


# --- references, names and config values ---------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--model", "nosuch@1", "--input", "digits"], "no registered versions of model 'nosuch'"),
    (["--model", "../zeros@1", "--input", "digits"], "model name '../zeros' contains '/'"),
    (["--model", "zeros@1", "--input", "../../etc"], "dataset name '../../etc' contains '/'"),
    (["--model", "zeros@1", "--input", "digits", "--set", "compute.actor=2"], "compute.actor"),
    (["--model", "zeros@1", "--input", "digits", "--actors", "0"], "compute.actors"),
    (["--model", "zeros@1", "--input", "digits", "--contamination", "1.5"], "contamination"),
    (["--model", "zeros@1", "--input", "digits", "--date", "2026-13-45"], "date must be YYYY-MM-DD"),
], ids=["unknown-model", "model-name-with-dotdot", "input-name-with-dotdot", "config-typo", "zero-actors",
        "contamination-out-of-range", "impossible-date"])
def test_bad_score_references_and_settings_are_refused(model, capsys, args, fragment):
    assert_refused(model["storage"], score_args(model, *args), capsys, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["prepare", "digits", "--set", "split.tran=0.8"], "split"),
    (["prepare", "digits", "--rows-per-shard", "0"], "rows_per_shard"),
    (["train", "configs/digits.yaml", "--set", "name=a/b"], "contains '/'"),
    (["train", "configs/digits.yaml", "--set", "train.epochs=-3"], "train.epochs"),
], ids=["split-typo", "zero-rows-per-shard", "model-name-with-slash", "negative-epochs"])
def test_bad_job_configs_are_refused(model, capsys, argv, fragment):
    assert_refused(model["storage"], [*argv, "--storage", model["storage"]], capsys, fragment)
