"""`vaepipe score` end to end on local Ray + the session's SeaweedFS."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.outputs import AlreadyComplete, list_committed_parts, read_success
from pipelines.score import ScoreJobConfig, run_scoring
from pipelines.storage import read_json, resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def read_output(prefix: str):
    location = resolve(prefix)
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                             for uri in list_committed_parts(prefix)])


def score(model: dict, **fields):
    config = ScoreJobConfig(model=model["model"], input=model["dataset"], storage=model["storage"],
                            compute={"actors": 2, "cpus_per_actor": 0.25, "batch_size": 64}, **fields)
    return run_scoring(config, progress=lambda _: None)


@pytest.fixture(scope="module")
def scored(digits_zero_model):
    return score(digits_zero_model, split="test", date="2026-11-24", normal_label="0")


def test_scores_one_row_per_input_row_with_unique_ids(scored, digits_zero_model):
    table = read_output(scored.output_uri)
    ids = table["row_id"].to_pylist()
    assert table.num_rows == digits_zero_model["test_rows"] == read_success(scored.output_uri)["rows"]
    assert len(set(ids)) == len(ids)


def test_other_digits_score_above_the_trained_digit(scored):
    assert scored.summary["roc_auc"] >= 0.9, scored.summary


def test_summary_is_stored_beside_success(scored):
    stored = read_json(f"{scored.output_uri}/_summary.json")
    assert stored == read_success(scored.output_uri)["summary"]
    assert set(stored) >= {"rows", "anomaly_rate", "neg_elbo_quantiles", "roc_auc", "precision_at_k"}


def test_score_columns_are_consistent(scored):
    table = read_output(scored.output_uri).to_pandas()
    assert {"row_id", "neg_elbo", "recon_nll", "kl", "percentile", "is_anomaly", "label"} <= set(table.columns)
    np.testing.assert_allclose(table["neg_elbo"], table["recon_nll"] + table["kl"], rtol=1e-5)
    assert table["percentile"].between(0, 100).all()
    assert (table["is_anomaly"] == (table["neg_elbo"] > scored.summary["threshold"])).all()


def test_rescoring_a_complete_date_is_refused_without_overwrite(scored, digits_zero_model):
    with pytest.raises(AlreadyComplete):
        score(digits_zero_model, split="test", date="2026-11-24")

