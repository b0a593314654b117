"""`vaepipe embed` end to end: one latent row per input row, as plain float columns."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.jobs.embed import EmbedJobConfig, run_embedding
from pipelines.storage.commit import list_committed_parts
from pipelines.storage.objects import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_embeddings_have_one_row_per_input_row(digits_zero_model):
    outcome = run_embedding(EmbedJobConfig(model=digits_zero_model["model"], input="digits", split="test",
                                           storage=digits_zero_model["storage"],
                                           compute={"actors": 2, "cpus_per_actor": 0.25}), progress=lambda _: None)
    location = resolve(outcome.output_uri)
    table = pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                              for uri in list_committed_parts(outcome.output_uri)])
    assert outcome.output_uri.endswith("/embeddings/zeros-v1/digits")
    assert table.num_rows == digits_zero_model["test_rows"] == len(set(table["row_id"].to_pylist()))
    assert {f"mu_{i}" for i in range(4)} | {f"logvar_{i}" for i in range(4)} | {"label"} <= set(table.column_names)
    assert table.schema.field("mu_0").type == pa.float32()
    # one split out: the probe needs the train rows too, and says so
    assert "train rows are not in this output" in outcome.summary["linear_probe_note"]


def test_embedding_every_split_of_a_labelled_input_reports_a_linear_probe_against_raw_and_pca(digits_zero_model):
    import json

    from pipelines.storage.layout import SUMMARY_FILE
    from pipelines.storage.objects import read_bytes

    lines = []
    outcome = run_embedding(EmbedJobConfig(model=digits_zero_model["model"], input="digits", engine="local",
                                           output="embeddings-probe", storage=digits_zero_model["storage"]),
                            progress=lines.append)
    summary = json.loads(read_bytes(f"{outcome.output_uri}/{SUMMARY_FILE}"))
    probe = summary["linear_probe"]
    assert set(probe["representations"]) == {"embedding", "raw", "pca_4"} and probe["classes"] == 10
    for result in probe["representations"].values():
        assert 0 <= result["all_labels"] <= 1 and 0 <= result["per_class"] <= 1
    # raw 8x8 digits are linearly separable; a latent of 4 learnt from zeros alone still beats chance (0.1) by far
    assert probe["representations"]["raw"]["all_labels"] > 0.9
    assert probe["representations"]["embedding"]["all_labels"] > 0.3
    assert any(line.startswith("linear probe of the label") for line in lines)
