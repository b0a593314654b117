"""`engine: local` and `engine: ray` run the same model actors over the same rows: for the same model and input
they write the same score parts, row for row (and generate the same seeded samples)."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from pipelines.storage.objects import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def read_parts(prefix: str) -> pd.DataFrame:
    location = resolve(prefix)
    return ds.dataset(location.path, format="parquet", filesystem=location.filesystem).to_table().to_pandas()


@pytest.fixture(scope="module")
def saved_model(s3_store, ray_cluster) -> dict:
    """A small detector fitted in this process on breast_cancer's benign rows, saved beside the prepared
    built-in dataset on the S3 server."""
    from sklearn.datasets import load_breast_cancer

    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
    from vaepipe import VAEDetector

    root = f"s3://{s3_store.bucket}/engines-{uuid.uuid4().hex[:8]}"
    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda name: name.replace(" ", "_"))
    reference = VAEDetector(epochs=2, seed=0, engine="local").fit(frame[data.target == 1]).save(root)
    prepare_dataset(PrepareConfig(name="breast_cancer", source="breast_cancer", storage=root, rows_per_shard=100))
    return {"root": root, "model": reference}


def test_local_and_ray_engines_write_the_same_score_parts_row_for_row(saved_model):
    from pipelines.jobs.score import ScoreJobConfig, run_scoring

    outputs = {}
    for engine, date in (("local", "2026-12-01"), ("ray", "2026-12-02")):
        # batches smaller than a shard and two actors: Ray cuts and orders the rows differently from this process
        outcome = run_scoring(ScoreJobConfig(model=saved_model["model"], input="breast_cancer",
                                             storage=saved_model["root"], date=date, engine=engine,
                                             compute={"actors": 2, "cpus_per_actor": 0.5, "batch_size": 64}),
                              progress=lambda _: None)
        assert outcome.engine == engine and outcome.rows == 569
        outputs[engine] = read_parts(outcome.output_uri).sort_values("row_id", key=lambda ids: ids.astype(int))
    local, on_ray = (outputs[engine].reset_index(drop=True) for engine in ("local", "ray"))
    assert list(local.columns) == list(on_ray.columns)
    assert local["row_id"].tolist() == on_ray["row_id"].tolist() == [str(i) for i in range(569)]
    pd.testing.assert_frame_equal(local, on_ray, check_exact=False, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(local["is_anomaly"], on_ray["is_anomaly"])


def test_local_and_ray_engines_generate_the_same_seeded_samples(saved_model):
    from pipelines.jobs.generate import GenerateJobConfig, run_generation

    outputs = {}
    for engine in ("local", "ray"):
        outcome = run_generation(GenerateJobConfig(model=saved_model["model"], storage=saved_model["root"],
                                                   num_samples=3000, block_rows=1000, seed=7, run=f"seed7-{engine}", with_ids=True,
                                                   engine=engine, compute={"actors": 2, "cpus_per_actor": 0.5}),
                                 progress=lambda _: None)
        assert outcome.engine == engine
        outputs[engine] = read_parts(outcome.output_uri).sort_values("sample_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(outputs["local"], outputs["ray"], check_exact=False, rtol=1e-5, atol=1e-5)


def test_a_model_whose_training_rows_are_not_stored_generates_from_the_prior_and_refuses_gmm(saved_model):
    from pipelines.errors import BatchJobError
    from pipelines.jobs.generate import GenerateJobConfig, run_generation
    from pipelines.storage.commit import read_success

    fields = dict(model=saved_model["model"], storage=saved_model["root"], num_samples=100, engine="local")
    outcome = run_generation(GenerateJobConfig(**fields), progress=lambda _: None)
    assert read_success(outcome.output_uri)["sampler"] == "prior"
    assert outcome.summary["quality"] is None  # nothing stored to compare with, and it says so
    with pytest.raises(BatchJobError, match="use --sampler prior"):
        run_generation(GenerateJobConfig(**fields, sampler="gmm"), progress=lambda _: None)


def test_local_and_ray_engines_decode_the_same_embedded_rows_in_the_source_schema(saved_model):
    from pipelines.jobs.embed import EmbedJobConfig, run_embedding
    from pipelines.jobs.generate import GenerateJobConfig, run_generation

    embedded = run_embedding(EmbedJobConfig(model=saved_model["model"], input="breast_cancer", engine="local",
                                            storage=saved_model["root"]), progress=lambda _: None)
    outputs = {}
    for engine in ("local", "ray"):
        # radius > 0: the noise of a row must not depend on which actor or batch it landed in
        outcome = run_generation(GenerateJobConfig(
            model=saved_model["model"], storage=saved_model["root"], from_embeddings=embedded.output_uri,
            radius=0.3, seed=5, block_rows=100, run=f"decoded-{engine}", engine=engine,
            compute={"actors": 2, "cpus_per_actor": 0.5, "batch_size": 64}), progress=lambda _: None)
        assert outcome.engine == engine and outcome.rows == 569
        outputs[engine] = read_parts(outcome.output_uri).sort_values(
            "row_id", key=lambda ids: ids.astype(int)).reset_index(drop=True)
    local, on_ray = outputs["local"], outputs["ray"]
    assert local.columns[0] == "row_id" and local["row_id"].tolist() == [str(i) for i in range(569)]
    assert "mean_radius" in local.columns and "label" not in local.columns
    pd.testing.assert_frame_equal(local, on_ray, check_exact=False, rtol=1e-5, atol=1e-5)
