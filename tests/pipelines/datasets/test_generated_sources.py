"""`vaepipe prepare shapes | factor_table`: generated samples with their factors as columns of the shards and
the manifest, any number of rows, the same rows for the same seed (local storage root, no Ray)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest, shard_uris, verify_shards
from pipelines.datasets.factor_table import FACTOR_NAMES as TABLE_FACTORS
from pipelines.datasets.preparation import PrepareConfig
from pipelines.datasets.shapes import FACTOR_NAMES, SHAPES, factor_grids, render_factors
from pipelines.datasets.sources import SourceError
from pipelines.jobs.prepare import prepare_dataset
from pipelines.storage.layout import dataset_uri
from pipelines.storage.objects import read_bytes


def shards(root: str, name: str) -> pd.DataFrame:
    uri = dataset_uri(root, name)
    manifest = load_manifest(uri)
    return pd.concat([pq.read_table(io.BytesIO(read_bytes(part))).to_pandas() for part in shard_uris(uri, manifest)],
                     ignore_index=True)


def test_shapes_stores_each_factor_as_a_column_beside_its_image(tmp_path):
    root = str(tmp_path)
    manifest = prepare_dataset(PrepareConfig(name="shapes", source="shapes", rows=400, seed=5, storage=root))
    assert manifest.kind == "image" and tuple(manifest.image.shape) == (1, 32, 32) and manifest.rows == 400
    assert manifest.factor_columns == list(FACTOR_NAMES)
    assert manifest.feature_columns == ["image"] and manifest.label_column is None
    verify_shards(dataset_uri(root, "shapes"), manifest, checksums=True)
    rows = shards(root, "shapes")
    assert set(rows["shape"]) <= set(SHAPES)
    for name in FACTOR_NAMES[1:]:
        assert np.isin(rows[name].to_numpy(), factor_grids(32)[name]).all(), name
    # each stored image is the rendering of its stored factors
    images = np.stack([np.asarray(image).reshape(1, 32, 32) for image in rows["image"]])
    assert np.array_equal(images[:50], render_factors(rows[list(FACTOR_NAMES)].head(50), 32))


def test_the_same_seed_prepares_the_same_rows_and_another_seed_others(tmp_path):
    first, again, other = (prepare_dataset(PrepareConfig(name="shapes", source="shapes", rows=300, seed=seed,
                                                         storage=str(tmp_path / folder)))
                           for folder, seed in (("a", 1), ("b", 1), ("c", 2)))
    # byte for byte: the shards' checksums (their keys, and so the fingerprint, name the attempt that wrote them)
    assert [shard.sha256 for shard in first.shards] == [shard.sha256 for shard in again.shards]
    assert first.split_rows == again.split_rows
    assert not set(shard.sha256 for shard in first.shards) & set(shard.sha256 for shard in other.shards)


def test_shapes_renders_64_pixel_images_on_request_and_refuses_other_sizes(tmp_path):
    manifest = prepare_dataset(PrepareConfig(name="s64", source="shapes", rows=50, image_shape=(1, 64, 64),
                                             storage=str(tmp_path)))
    assert tuple(manifest.image.shape) == (1, 64, 64)
    assert set(shards(str(tmp_path), "s64")["pos_x"]) <= set(factor_grids(64)["pos_x"])
    with pytest.raises(SourceError, match="1x32x32 or 1x64x64"):
        prepare_dataset(PrepareConfig(name="s48", source="shapes", rows=50, image_shape=(1, 48, 48),
                                      storage=str(tmp_path)))


def test_factor_table_keeps_factors_out_of_the_features(tmp_path):
    manifest = prepare_dataset(PrepareConfig(name="ft", source="factor_table", rows=500, storage=str(tmp_path)))
    assert manifest.kind == "tabular" and manifest.factor_columns == list(TABLE_FACTORS)
    assert manifest.feature_columns == [f"x{j:02d}" for j in range(12)]
    assert set(TABLE_FACTORS) <= set(shards(str(tmp_path), "ft").columns)


def test_rows_and_seed_are_refused_for_fixed_samples_and_rows_are_bounded(tmp_path):
    with pytest.raises(SourceError, match="--rows and --seed are for the generated samples only"):
        prepare_dataset(PrepareConfig(name="d", source="digits", rows=10, seed=1, storage=str(tmp_path)))
    with pytest.raises(SourceError, match="--rows must be between 1 and 2,000,000"):
        prepare_dataset(PrepareConfig(name="s", source="shapes", rows=2_000_001, storage=str(tmp_path)))


def test_the_command_prepares_the_rows_asked_for(tmp_path, capsys):
    assert main(["prepare", "shapes", "--rows", "321", "--seed", "4", "--storage", str(tmp_path)]) == 0
    assert "dataset shapes: 321 rows" in capsys.readouterr().out
    assert load_manifest(dataset_uri(str(tmp_path), "shapes")).source == "builtin:shapes (321 rows, seed 4, 32 px)"
