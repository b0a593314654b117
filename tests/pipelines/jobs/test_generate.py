"""`vaepipe generate` on the mixed-type `fair` table, end to end on local Ray + SeaweedFS."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.jobs.generate import GenerateJobConfig, run_generation
from pipelines.storage.commit import list_committed_parts, read_success
from pipelines.storage.objects import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def generate(model: dict, **fields):
    config = GenerateJobConfig(model=model["model"], storage=model["storage"], block_rows=1000, with_ids=True,
                               compute={"actors": 2, "cpus_per_actor": 0.25}, **fields)
    outcome = run_generation(config, progress=lambda _: None)
    return outcome, committed_parts(outcome.output_uri).to_pandas().sort_values("sample_id").reset_index(drop=True)


def committed_parts(prefix: str) -> pa.Table:
    location = resolve(prefix)
    return pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                             for uri in list_committed_parts(prefix)])


@pytest.fixture(scope="module")
def samples(fair_model):
    return generate(fair_model, num_samples=5000, seed=7)


def test_generated_rows_have_the_original_schema(samples, fair_model):
    outcome, table = samples
    manifest = fair_model["manifest"]
    assert list(table.columns) == ["sample_id", *manifest.feature_columns]
    assert table["sample_id"].tolist() == list(range(5000)) and read_success(outcome.output_uri)["rows"] == 5000
    for column in manifest.numeric:
        assert str(table[column.name].dtype) == column.dtype  # the source dtype, integer-valued floats included
        assert table[column.name].between(column.min, column.max).all()


def test_by_default_rows_have_exactly_the_source_columns_and_the_summary_scores_them(fair_model):
    from pipelines.storage.layout import SUMMARY_FILE
    from pipelines.storage.objects import read_json

    config = GenerateJobConfig(model=fair_model["model"], storage=fair_model["storage"], num_samples=3000, seed=3,
                               compute={"actors": 2, "cpus_per_actor": 0.25})
    outcome = run_generation(config, progress=lambda _: None)
    location = resolve(outcome.output_uri)
    table = pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                              for uri in list_committed_parts(outcome.output_uri)])
    manifest = fair_model["manifest"]
    assert table.column_names == manifest.column_order  # no sample_id, the source's order
    summary = read_json(f"{outcome.output_uri}/{SUMMARY_FILE}")
    assert summary["sampler"] == "gmm" and read_success(outcome.output_uri)["sampler"] == "gmm"
    quality = summary["quality"]
    assert 0.8 < quality["overall"] <= 1 and 0.8 < quality["column_shapes"] <= 1
    assert 0.2 < quality["dcr_closer_to_training"] < 0.8  # not copying training rows


def test_categorical_values_are_training_levels(samples, fair_model):
    _, table = samples
    for column in fair_model["manifest"].categorical:
        assert set(table[column.name]) <= set(column.levels), column.name


def test_numeric_means_and_stds_are_close_to_the_training_data(samples, fair_model):
    _, table = samples
    for column in fair_model["manifest"].numeric:
        values = table[column.name].to_numpy(dtype=float)
        assert abs(values.mean() - column.mean) < 0.25 * column.std, (column.name, values.mean(), column.mean)
        assert 0.6 < values.std() / column.std < 1.5, (column.name, values.std(), column.std)


def test_mostly_zero_columns_keep_their_share_of_exact_zeros(samples, fair_model):
    _, table = samples
    real = fair_model["manifest"]
    inflated = [c for c in real.numeric if c.zero_inflated]
    assert {c.name for c in inflated} == {"children", "affairs"}
    shares = {c.name: fair_model["zero_share"][c.name] for c in inflated}
    for name, share in shares.items():
        assert abs((table[name] == 0).mean() - share) < 0.05, (name, (table[name] == 0).mean(), share)


def test_same_seed_gives_the_same_rows_whatever_the_actor_count(samples, fair_model):
    _, table = samples
    config = GenerateJobConfig(model=fair_model["model"], storage=fair_model["storage"], block_rows=1000,
                               num_samples=5000, seed=7, run="one-actor", with_ids=True,
                               compute={"actors": 1, "cpus_per_actor": 0.25})
    outcome = run_generation(config, progress=lambda _: None)
    location = resolve(outcome.output_uri)
    again = pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                              for uri in list_committed_parts(outcome.output_uri)])
    assert again.to_pandas().sort_values("sample_id").reset_index(drop=True).equals(table)


def test_image_samples_are_uint8_with_a_png_grid(digits_zero_model):
    from PIL import Image

    from pipelines.storage.objects import read_bytes

    outcome, _ = generate(digits_zero_model, num_samples=100, seed=1)
    # Arrow's canonical tensor type, as `prepare` writes images, whichever engine wrote them (pyarrow alone reads it)
    column = committed_parts(outcome.output_uri)["image"].combine_chunks()
    assert isinstance(column.type, pa.FixedShapeTensorType)
    images = column.to_numpy_ndarray()
    assert images.dtype == np.uint8 and images.shape == (100, 1, 8, 8)
    grid = Image.open(io.BytesIO(read_bytes(f"{outcome.output_uri}/samples.png")))
    assert grid.size[0] >= 64
