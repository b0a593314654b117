"""A numpy batch leaves our Ray Data UDFs as the Arrow table Ray Data itself would build from it (the same schema,
tensor columns included, and the same values), built by Arrow's inference instead of Ray's per-value checks."""
import numpy as np
import pyarrow as pa

from pipelines.datasets.reader import ray_block


def rays_own(batch: dict) -> pa.Table:
    from ray.data.block import BlockAccessor

    return BlockAccessor.batch_to_block(batch)


def test_a_batch_of_ids_scores_flags_and_tensors_becomes_the_table_ray_data_would_build():
    rng = np.random.default_rng(0)
    batch = {"row_id": np.array([f"row-{i}" for i in range(64)], dtype=object),
             "label": np.array(["a", None] * 32, dtype=object),
             "anomaly_score": rng.random(64).astype(np.float32), "percentile": rng.random(64),
             "is_anomaly": rng.random(64) > 0.5, "count": np.arange(64),
             "x": rng.random((64, 5)).astype(np.float32), "image": rng.integers(0, 255, (64, 1, 4, 4), dtype=np.uint8)}
    ours, theirs = ray_block(batch), rays_own(batch)
    assert isinstance(ours, pa.Table)
    assert ours.schema == theirs.schema
    assert ours.equals(theirs)


def test_a_column_arrow_does_not_type_as_text_or_numbers_is_left_to_ray_data():
    mixed = {"row_id": np.array(["a", "b"], dtype=object), "value": np.array([1, "x"], dtype=object)}
    ragged = {"row_id": np.array(["a", "b"], dtype=object),
              "value": np.array([np.zeros(2), np.zeros(3)], dtype=object)}
    assert ray_block(mixed) is mixed and ray_block(ragged) is ragged
