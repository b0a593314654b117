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
