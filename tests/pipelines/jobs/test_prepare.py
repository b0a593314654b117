"""`vaepipe prepare` on every source kind, against the real S3 server, and the inputs it must refuse."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest, shard_uris, verify_shards
from pipelines.datasets.preparation import PrepareConfig, assign_splits
from pipelines.jobs.prepare import prepare_dataset
from pipelines.datasets.sources import SourceError
from pipelines.storage.layout import dataset_uri
from pipelines.naming import InvalidName
from pipelines.storage.commit import is_complete
from pipelines.storage.objects import list_files, read_bytes, write_bytes


def _read_dataset(root: str, name: str) -> pd.DataFrame:
    uri = dataset_uri(root, name)
    manifest = load_manifest(uri)
    frames = [pq.read_table(io.BytesIO(read_bytes(part))).to_pandas() for part in shard_uris(uri, manifest)]
    return pd.concat(frames, ignore_index=True)


def _csv(tmp_path, frame: pd.DataFrame, name: str = "table.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _png(path, size=(8, 8), value=128, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=value if mode == "L" else (value, 0, 0)).save(path)


# --- sources -----------------------------------------------------------------------

def test_builtin_digits_becomes_uint8_tensor_shards_with_a_complete_manifest(s3_prefix):
    manifest = prepare_dataset(PrepareConfig(name="digits", source="digits", storage=s3_prefix, rows_per_shard=500))
    uri = dataset_uri(s3_prefix, "digits")
    assert is_complete(uri)
    assert manifest.kind == "image" and tuple(manifest.image.shape) == (1, 8, 8)
    assert manifest.rows == 1797 and sum(manifest.split_rows.values()) == 1797
    assert [s.rows for s in manifest.shards] == [500, 500, 500, 297]
    verify_shards(uri, manifest, checksums=True)
    table = pq.read_table(io.BytesIO(read_bytes(shard_uris(uri, manifest)[0])))
    assert isinstance(table.schema.field("image").type, pa.FixedShapeTensorType)
    images = table.column("image").combine_chunks().to_numpy_ndarray()
    assert images.dtype == np.uint8 and images.shape == (500, 1, 8, 8) and images.max() == 255


def test_builtin_mixed_table_keeps_original_columns_and_records_roles(s3_prefix):
    manifest = prepare_dataset(PrepareConfig(name="fair", source="fair", storage=s3_prefix))
    assert [c.name for c in manifest.numeric] == ["age", "yrs_married", "children", "affairs"]
    occupation = next(c for c in manifest.categorical if c.name == "occupation")
    assert "professional" in occupation.levels and sum(occupation.train_counts) == manifest.split_rows["train"]
    rows = _read_dataset(s3_prefix, "fair")
    assert {"age", "occupation", "had_affair", "row_id", "split"} <= set(rows.columns)
    assert rows["occupation"].isin(occupation.levels).all()


def test_skewed_and_mostly_zero_columns_get_their_own_scaling_and_map_back():
    from pipelines.datasets.features import features_to_table, table_features
    from pipelines.datasets.manifest import DatasetManifest
    from pipelines.datasets.preparation import numeric_stats

    rng = np.random.default_rng(0)
    amounts = rng.lognormal(1.0, 1.2, 5000)  # long right tail
    affairs = np.where(rng.random(5000) < 0.7, 0.0, rng.lognormal(1.0, 1.2, 5000))  # mostly zero, then a tail
    ages = rng.normal(40, 10, 5000)
    skewed, zeros, plain = (numeric_stats(name, values, "float64") for name, values in
                            [("amount", amounts), ("affairs", affairs), ("age", ages)])
    assert (skewed.transform, skewed.zero_inflated, skewed.width) == ("log1p", False, 1)
    assert (zeros.transform, zeros.zero_inflated, zeros.width) == ("log1p", True, 2)
    assert (plain.transform, plain.zero_inflated, plain.width) == ("identity", False, 1)
    assert zeros.mean == pytest.approx(affairs.mean()) and zeros.std == pytest.approx(affairs.std())

    features = skewed.to_model(amounts)[:, 0]
    assert abs(features.mean()) < 1e-9 and features.std() == pytest.approx(1.0)
    assert features.max() < 6  # on the raw scale the tail sits a dozen standard deviations out
    pair = zeros.to_model(affairs)
    np.testing.assert_array_equal(pair[:, 0], affairs != 0)
    assert pair[affairs != 0, 1].std() == pytest.approx(1.0) and not pair[affairs == 0, 1].any()

    manifest = DatasetManifest.model_construct(kind="table", numeric=[skewed, zeros, plain], categorical=[])
    features = table_features(manifest, {"amount": amounts, "affairs": affairs, "age": ages})
    assert features.shape == (5000, 4) == (5000, manifest.feature_dim)
    np.testing.assert_array_equal(features[:, 2], affairs != 0)  # plain columns first, then the pairs
    back = features_to_table(manifest, features)
    assert list(back.columns) == ["amount", "affairs", "age"]
    for name, values in [("amount", amounts), ("affairs", affairs), ("age", ages)]:
        np.testing.assert_allclose(back[name], values, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'amount' has value -3, but the model reads it on a log scale"):
        table_features(manifest, {"amount": np.array([1.0, -3.0]), "affairs": np.zeros(2), "age": np.ones(2)})


def test_statistics_come_from_the_train_split_only(s3_prefix):
    manifest = prepare_dataset(PrepareConfig(name="bc", source="breast_cancer", storage=s3_prefix))
    rows = _read_dataset(s3_prefix, "bc")
    train = rows[rows["split"] == "train"]["mean_radius"]
    stats = next(c for c in manifest.numeric if c.name == "mean_radius")
    assert stats.mean == pytest.approx(train.mean())
    assert stats.mean != pytest.approx(rows["mean_radius"].mean(), rel=1e-9)


def test_split_depends_only_on_the_row_id():
    ids = np.array([str(i) for i in range(2000)], dtype=object)
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    splits = assign_splits(ids, fractions)
    shuffled = np.random.default_rng(0).permutation(len(ids))
    assert (assign_splits(ids[shuffled], fractions) == splits[shuffled]).all()
    assert 0.75 < np.mean(splits == "train") < 0.85


def test_csv_with_id_label_and_inferred_categoricals(s3_prefix, tmp_path):
    frame = pd.DataFrame({"customer": [f"c{i}" for i in range(300)], "spend": np.arange(300) * 1.5,
                          "plan": ["basic", "pro", "team"] * 100, "churned": [0, 1] * 150})
    config = PrepareConfig(name="customers", source=_csv(tmp_path, frame), storage=s3_prefix,
                           id_column="customer", label_column="churned")
    manifest = prepare_dataset(config)
    assert [c.name for c in manifest.numeric] == ["spend"]
    assert [(c.name, c.levels) for c in manifest.categorical] == [("plan", ["basic", "pro", "team"])]
    assert manifest.label_column == "churned"
    assert sorted(_read_dataset(s3_prefix, "customers")["row_id"]) == sorted(frame["customer"])


def test_parquet_files_under_an_s3_prefix_are_read_together(s3_prefix):
    for part in range(2):
        frame = pd.DataFrame({"x": np.arange(100) + 100 * part, "y": np.ones(100)})
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        write_bytes(f"{s3_prefix}/raw/part-{part}.parquet", buffer.getvalue())
    manifest = prepare_dataset(PrepareConfig(name="two-files", source=f"{s3_prefix}/raw", storage=s3_prefix))
    assert manifest.rows == 200


def test_image_folder_with_class_folders_and_resize(s3_prefix, tmp_path):
    for label in ("cats", "dogs"):
        for i in range(5):
            _png(tmp_path / "imgs" / label / f"{i}.png", size=(12 + i, 10), value=40 * i, mode="RGB")
    config = PrepareConfig(name="pets", source=str(tmp_path / "imgs"), storage=s3_prefix, image_shape=(1, 8, 8))
    manifest = prepare_dataset(config)
    assert tuple(manifest.image.shape) == (1, 8, 8) and manifest.rows == 10
    assert set(_read_dataset(s3_prefix, "pets")["label"]) == {"cats", "dogs"}


def _digit_folder(folder, count: int) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(count):
        _png_array(folder / str(digits.target[i]) / f"d{i:04d}.png", (digits.images[i] * 15).astype(np.uint8))


def _png_array(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_an_image_folder_prepared_a_shard_at_a_time_holds_the_rows_of_the_whole_folder(s3_prefix, tmp_path):
    """Shard by shard (bounded memory) the dataset is row for row what the whole folder read at once gives."""
    from pipelines.datasets.preparation import build_arrow_table
    from pipelines.datasets.sources import load_image_folder

    _digit_folder(tmp_path / "digits", 600)
    config = PrepareConfig(name="folder", source=str(tmp_path / "digits"), storage=s3_prefix, rows_per_shard=256)
    manifest = prepare_dataset(config)
    assert [shard.rows for shard in manifest.shards] == [256, 256, 88]
    whole, fields = build_arrow_table(load_image_folder(str(tmp_path / "digits"), None), config)
    assert manifest.split_rows == fields["split_rows"] and manifest.label_column == "label"
    assert tuple(manifest.image.shape) == (1, 8, 8) and manifest.rows == 600
    stored = pa.concat_tables(pq.read_table(io.BytesIO(read_bytes(part)))
                              for part in shard_uris(dataset_uri(s3_prefix, "folder"), manifest))
    assert stored.select(whole.column_names).equals(whole)


@pytest.mark.reliability("bad input")
def test_a_bad_image_late_in_a_folder_leaves_the_dataset_it_would_overwrite_as_it_was(s3_prefix, tmp_path,
                                                                                       capsys):
    _digit_folder(tmp_path / "digits", 300)
    assert main(["prepare", str(tmp_path / "digits"), "--name", "kept", "--storage", s3_prefix]) == 0
    target = dataset_uri(s3_prefix, "kept")
    before = {(f.uri, f.size) for f in list_files(target, include_hidden=True)}
    (tmp_path / "digits" / "9" / "z-last.png").write_bytes(b"not a png at all")
    code = main(["prepare", str(tmp_path / "digits"), "--name", "kept", "--storage", s3_prefix, "--overwrite",
                 "--rows-per-shard", "256"])
    err = capsys.readouterr().err
    assert code == 2 and [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if "z-last.png" in line]
    assert is_complete(target)
    assert {(f.uri, f.size) for f in list_files(target, include_hidden=True)} == before


def test_images_in_folders_below_a_class_folder_take_its_label_as_torchvision_reads_them(s3_prefix, tmp_path):
    """`cat/indoor/a.png` is a cat (torchvision's ImageFolder); was labelled "indoor", merging the sub-folders
    of every class into one class of their name."""
    for label in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / "pets" / label / f"{i}.png", value=10 * i)
            _png(tmp_path / "pets" / label / "indoor" / f"{i}.png", value=10 * i + 5)
    prepare_dataset(PrepareConfig(name="pets", source=str(tmp_path / "pets"), storage=s3_prefix))
    rows = _read_dataset(s3_prefix, "pets")
    assert sorted(zip(rows["row_id"], rows["label"])) == sorted(
        (f"{label}/{folder}{i}.png", label) for label in ("cat", "dog") for folder in ("", "indoor/") for i in range(3))


def test_an_image_folder_under_an_s3_prefix_prepares_as_the_same_folder_on_disk(s3_prefix, tmp_path, capsys):
    """Images kept in a bucket (class folders under a prefix) were read as table files: refused."""
    _digit_folder(tmp_path / "digits", 120)
    for path in sorted((tmp_path / "digits").rglob("*.png")):
        write_bytes(f"{s3_prefix}/raw/digits/{path.relative_to(tmp_path / 'digits').as_posix()}", path.read_bytes())
    local = prepare_dataset(PrepareConfig(name="local", source=str(tmp_path / "digits"), storage=s3_prefix))
    remote = prepare_dataset(PrepareConfig(name="remote", source=f"{s3_prefix}/raw/digits/", storage=s3_prefix))
    assert remote.label_column == "label" and remote.split_rows == local.split_rows and remote.rows == 120
    pd.testing.assert_frame_equal(_read_dataset(s3_prefix, "remote"), _read_dataset(s3_prefix, "local"))
    write_bytes(f"{s3_prefix}/raw/digits/3/broken.png", b"\x89PNG\r\n\x1a\nxx")
    assert main(["prepare", f"{s3_prefix}/raw/digits", "--name", "broken", "--storage", s3_prefix]) == 2
    assert f"cannot read image {s3_prefix}/raw/digits/3/broken.png" in capsys.readouterr().err


def test_sixteen_bit_images_are_scaled_to_eight_bits_not_clipped_white(s3_prefix, tmp_path):
    """Pillow's own conversion clips 16-bit grey at 255 (a 16-bit scan was 99.6 % white): each pixel is its
    value scaled from 0..65535 to 0..255, the same for every file."""
    rng = np.random.default_rng(0)
    scans = {f"{i}.png": rng.integers(0, 65536, size=(6, 7)).astype(np.uint16) for i in range(4)}
    scans["dark.png"] = np.full((6, 7), 1000, dtype=np.uint16)
    for name, pixels in scans.items():
        _png_array(tmp_path / "scans" / name, pixels)
    assert Image.open(tmp_path / "scans" / "0.png").mode == "I;16"
    prepare_dataset(PrepareConfig(name="scans", source=str(tmp_path / "scans"), storage=s3_prefix))
    rows = _read_dataset(s3_prefix, "scans")
    for row_id, image in zip(rows["row_id"], rows["image"]):
        expected = np.rint(scans[row_id] / 257.0).astype(np.uint8)
        assert np.array_equal(np.asarray(image).reshape(6, 7), expected), row_id


def test_every_image_format_torchvision_reads_is_read(s3_prefix, tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    for suffix in (".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".PNG"):
        Image.fromarray(pixels).save(tmp_path / f"img{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
    # WebP has no grey mode: its file is RGB, so every image is read as grey
    manifest = prepare_dataset(PrepareConfig(name="formats", source=str(tmp_path), storage=s3_prefix,
                                             image_shape=(1, 8, 8)))
    assert manifest.rows == 7
    assert all(np.array_equal(np.asarray(image).reshape(8, 8), pixels)
               for image in _read_dataset(s3_prefix, "formats")["image"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_hive_partition_folders_are_columns_as_pyarrow_and_ray_data_read_them(s3_prefix, tmp_path, fmt):
    """`year=2024/region=north/part-0.parquet` (Spark's, pyarrow's and Ray Data's layout) holds rows whose
    year and region are in the folder names: they were dropped silently. Read as pyarrow.dataset reads them
    (values URL-decoded; whole numbers as numbers), from the store."""
    import pyarrow.dataset as ds

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=240), "year": np.repeat([2023, 2024, 2025], 80),
                          "region": np.tile(["north", "south west"], 120)})
    local = tmp_path / "events"
    if fmt == "parquet":
        pq.write_to_dataset(pa.Table.from_pandas(frame), local, partition_cols=["year", "region"])
    else:
        for (year, region), part in frame.groupby(["year", "region"]):
            folder = local / f"year={year}" / f"region={region.replace(' ', '%20')}"
            folder.mkdir(parents=True)
            part[["x"]].to_csv(folder / "part-0.csv", index=False)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        write_bytes(f"{s3_prefix}/raw/{path.relative_to(local).as_posix()}", path.read_bytes())
    manifest = prepare_dataset(PrepareConfig(name="events", source=f"{s3_prefix}/raw", storage=s3_prefix))
    assert manifest.feature_columns == ["x", "year", "region"]
    rows = _read_dataset(s3_prefix, "events").sort_values("x", ignore_index=True)
    expected = ds.dataset(local, format=fmt, partitioning="hive").to_table().to_pandas().sort_values(
        "x", ignore_index=True)
    assert {column.name: column.dtype for column in manifest.numeric}["year"] == "int64"
    assert rows["year"].tolist() == expected["year"].tolist()
    assert rows["region"].tolist() == expected["region"].tolist() == frame.sort_values("x")["region"].tolist()
    assert np.allclose(rows["x"], expected["x"])


def test_prepare_cli_prints_where_the_dataset_lives(s3_prefix, capsys):
    assert main(["prepare", "digits", "--storage", s3_prefix, "--rows-per-shard", "900"]) == 0
    out = capsys.readouterr().out
    assert f"{s3_prefix}/datasets/digits/" in out
    assert len([f for f in list_files(dataset_uri(s3_prefix, "digits"))]) == 2


@pytest.mark.reliability("bad input")
def test_preparing_twice_refuses_without_overwrite_and_replaces_with_it(s3_prefix, capsys):
    assert main(["prepare", "digits", "--storage", s3_prefix]) == 0
    assert main(["prepare", "digits", "--storage", s3_prefix]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["prepare", "digits", "--storage", s3_prefix, "--overwrite", "--rows-per-shard", "1000"]) == 0
    assert len(load_manifest(dataset_uri(s3_prefix, "digits")).shards) == 2


# --- bad input: a clear error naming the problem, nothing marked complete ----------

def _refused(s3_prefix, name: str, capsys, *args: str) -> str:
    assert main(["prepare", *args, "--name", name, "--storage", s3_prefix]) == 2
    assert not is_complete(dataset_uri(s3_prefix, name))
    return capsys.readouterr().err


@pytest.mark.reliability("bad input")
def test_missing_file_is_named(s3_prefix, tmp_path, capsys):
    err = _refused(s3_prefix, "missing", capsys, str(tmp_path / "nope.csv"))
    assert "nope.csv" in err and "does not exist" in err


@pytest.mark.reliability("bad input")
def test_unreadable_image_is_named(s3_prefix, tmp_path, capsys):
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png at all")
    err = _refused(s3_prefix, "broken", capsys, str(tmp_path / "imgs"))
    assert "broken.png" in err


@pytest.mark.reliability("bad input")
def test_inconsistent_image_sizes_without_resize_name_both_files(s3_prefix, tmp_path, capsys):
    _png(tmp_path / "imgs" / "a.png", size=(8, 8))
    _png(tmp_path / "imgs" / "b.png", size=(9, 8))
    err = _refused(s3_prefix, "sizes", capsys, str(tmp_path / "imgs"))
    assert "a.png" in err and "b.png" in err and "--image-shape" in err


@pytest.mark.reliability("bad input")
def test_non_numeric_value_in_numeric_column_names_column_and_row(s3_prefix, tmp_path, capsys):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(50)], "age": [str(i) for i in range(50)]})
    frame.loc[17, "age"] = "forty"
    err = _refused(s3_prefix, "dirty", capsys, _csv(tmp_path, frame), "--id-column", "id")
    assert "'age'" in err and "'r17'" in err and "'forty'" in err


@pytest.mark.reliability("bad input")
def test_nan_is_an_error_unless_an_impute_policy_is_given(s3_prefix, tmp_path, capsys):
    frame = pd.DataFrame({"a": np.arange(100, dtype=float), "b": np.ones(100)})
    frame.loc[5, "a"] = np.nan
    frame.loc[9, "b"] = np.inf
    source = _csv(tmp_path, frame)
    err = _refused(s3_prefix, "nans", capsys, source)
    assert "'a'" in err and "NaN/inf" in err and "--impute" in err
    assert main(["prepare", source, "--name", "nans", "--storage", s3_prefix, "--impute", "drop"]) == 0
    assert load_manifest(dataset_uri(s3_prefix, "nans")).rows == 98


@pytest.mark.reliability("bad input")
def test_empty_dataset_is_refused(s3_prefix, tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("a,b\n")
    err = _refused(s3_prefix, "empty", capsys, str(tmp_path / "empty.csv"))
    assert "empty" in err


@pytest.mark.reliability("bad input")
@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_unsafe_dataset_names_are_refused(s3_prefix, name):
    with pytest.raises((InvalidName, ValueError)):
        PrepareConfig(name=name, source="digits", storage=s3_prefix)


@pytest.mark.reliability("bad input")
def test_duplicate_ids_are_refused(s3_prefix, tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SourceError, match="'a' appears more than once"):
        prepare_dataset(PrepareConfig(name="dups", source=_csv(tmp_path, frame), storage=s3_prefix, id_column="id"))


@pytest.mark.reliability("bad input")
def test_changed_shard_fails_verification(s3_prefix):
    manifest = prepare_dataset(PrepareConfig(name="digits", source="digits", storage=s3_prefix))
    uri = dataset_uri(s3_prefix, "digits")
    first = shard_uris(uri, manifest)[0]
    data = bytearray(read_bytes(first))
    data[len(data) // 2] ^= 0xFF
    write_bytes(first, bytes(data))
    assert hashlib.sha256(bytes(data)).hexdigest() != manifest.shards[0].sha256
    with pytest.raises(Exception, match="checksum"):
        verify_shards(uri, manifest, checksums=True)


def _dialect_table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"amount": rng.normal(size=200).round(3), "count": rng.integers(0, 9, 200),
                         "city": rng.choice(["Zürich", "Málaga", "Besançon, Doubs"], 200),
                         "price": np.exp(rng.uniform(0, 15, 200)).round(2)})


def _grouped(frame: pd.DataFrame, thousands: str = ",", decimal: str = ".") -> pd.DataFrame:
    """`price` as a spreadsheet formats it: 1,234,567.89 (or 1.234.567,89)."""
    text = frame["price"].map("{:,.2f}".format).str.replace(",", "\0").str.replace(".", decimal).str.replace(
        "\0", thousands)
    return frame.assign(price=text)


@pytest.mark.parametrize("name, write, flags", [
    ("semicolons.csv", lambda f, p: f.to_csv(p, sep=";", decimal=",", index=False), ["--delimiter", ";", "--decimal", ","]),
    ("windows.csv", lambda f, p: f.to_csv(p, index=False, encoding="cp1252"), ["--encoding", "cp1252"]),
    ("tabs.tsv", lambda f, p: f.to_csv(p, sep="\t", index=False), []),
    ("packed.csv.gz", lambda f, p: f.to_csv(p, index=False), []),
    ("packed.tsv.bz2", lambda f, p: f.to_csv(p, sep="\t", index=False), []),
    ("grouped.csv", lambda f, p: _grouped(f).to_csv(p, index=False), ["--thousands", ","]),
    ("european.csv", lambda f, p: _grouped(f, ".", ",").to_csv(p, sep=";", decimal=",", index=False),
     ["--delimiter", ";", "--decimal", ",", "--thousands", "."]),
], ids=["semicolon-decimal-comma", "cp1252", "tsv", "csv-gz", "tsv-bz2", "thousands", "thousands-decimal-comma"])
def test_csv_dialects_prepare_into_the_dataset_a_plain_csv_makes(s3_prefix, tmp_path, name, write, flags):
    """What spreadsheets and exports write — semicolons with decimal commas, a Windows code page, tabs,
    compressed files — prepares with the flags a pandas user would pass (`sep`, `decimal`, `encoding`) into the
    same dataset as the plain UTF-8 comma CSV of the same rows (a compressed file or a .tsv needs none)."""
    frame = _dialect_table()
    assert main(["prepare", _csv(tmp_path, frame), "--name", "plain", "--storage", s3_prefix]) == 0
    write(frame, tmp_path / name)
    assert main(["prepare", str(tmp_path / name), "--name", "dialect", "--storage", s3_prefix, *flags]) == 0
    plain, dialect = (load_manifest(dataset_uri(s3_prefix, n)) for n in ("plain", "dialect"))
    assert dialect.numeric == plain.numeric and dialect.categorical == plain.categorical
    pd.testing.assert_frame_equal(_read_dataset(s3_prefix, "dialect"), _read_dataset(s3_prefix, "plain"))


def test_a_csv_that_marks_gaps_with_a_question_mark_prepares_as_one_with_empty_fields(s3_prefix, tmp_path):
    """UCI's tables write '?' where a value is missing: `--missing '?'` reads it as pandas' na_values does."""
    frame = _dialect_table()
    frame.loc[::7, "amount"] = np.nan
    frame.loc[::11, "city"] = None
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / "uci.csv", index=False, na_rep="?")
    for name, flags in (("plain", []), ("uci", ["--missing", "?"])):
        assert main(["prepare", str(tmp_path / f"{name}.csv"), "--name", name, "--impute", "median",
                     "--storage", s3_prefix, *flags]) == 0
    # a Parquet file's text column with '?' (numbers as text, as an export typed it) reads the same
    frame.astype({"amount": object}).where(frame.notna(), "?").astype({"amount": str}).to_parquet(
        tmp_path / "uci.parquet")
    assert main(["prepare", str(tmp_path / "uci.parquet"), "--name", "uci-parquet", "--impute", "median",
                 "--storage", s3_prefix, "--missing", "?"]) == 0
    plain, uci, parquet = (load_manifest(dataset_uri(s3_prefix, n)) for n in ("plain", "uci", "uci-parquet"))
    assert uci.numeric == plain.numeric == parquet.numeric and uci.categorical == plain.categorical
    pd.testing.assert_frame_equal(_read_dataset(s3_prefix, "uci"), _read_dataset(s3_prefix, "plain"))
    pd.testing.assert_frame_equal(_read_dataset(s3_prefix, "uci-parquet"), _read_dataset(s3_prefix, "plain"))
