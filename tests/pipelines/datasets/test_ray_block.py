"""A numpy batch leaves our Ray Data UDFs as an Arrow table built by Arrow's inference instead of Ray's per-value
checks: the columns and values Ray Data would build, except that [N, ...] arrays are Arrow's canonical
fixed-shape tensors — what `prepare` writes and the local engine's parts hold — not Ray's own tensor type."""
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.datasets.reader import numpy_batch, ray_block


def rays_own(batch: dict) -> pa.Table:
    from ray.data.block import BlockAccessor

    return BlockAccessor.batch_to_block(batch)


def _batch() -> dict:
    rng = np.random.default_rng(0)
    return {"row_id": np.array([f"row-{i}" for i in range(64)], dtype=object),
            "label": np.array(["a", None] * 32, dtype=object),
            "anomaly_score": rng.random(64).astype(np.float32), "percentile": rng.random(64),
            "is_anomaly": rng.random(64) > 0.5, "count": np.arange(64),
            "x": rng.random((64, 5)).astype(np.float32), "image": rng.integers(0, 255, (64, 1, 4, 4), dtype=np.uint8)}


def test_a_batch_of_ids_scores_flags_and_tensors_has_rays_columns_and_values_with_arrows_tensor_type():
    batch = _batch()
    ours, theirs = ray_block(batch), rays_own(batch)
    assert isinstance(ours, pa.Table) and ours.schema.names == theirs.schema.names
    tensors = {"x", "image"}
    for name in ours.schema.names:
        if name in tensors:
            assert isinstance(ours.schema.field(name).type, pa.FixedShapeTensorType), name
            np.testing.assert_array_equal(ours[name].combine_chunks().to_numpy_ndarray(), batch[name])
        else:
            assert ours.schema.field(name) == theirs.schema.field(name) and ours[name].equals(theirs[name]), name
    # what Ray Data hands the next UDF (batch_format="numpy") is the batch itself
    back = numpy_batch(ours)
    for name, values in batch.items():
        np.testing.assert_array_equal(back[name], values)


def test_an_image_output_reads_back_as_tensors_with_pyarrow_alone(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(ray_block(_batch()), path)
    code = ("import sys, pyarrow.parquet as pq\n"
            "column = pq.read_table(sys.argv[1])['image'].combine_chunks()\n"
            "assert 'ray' not in sys.modules\n"
            "print(column.type.extension_name, column.to_numpy_ndarray().shape)\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["arrow.fixed_shape_tensor", "(64,", "1,", "4,", "4)"]


def test_a_column_arrow_does_not_type_as_text_or_numbers_is_left_to_ray_data():
    mixed = {"row_id": np.array(["a", "b"], dtype=object), "value": np.array([1, "x"], dtype=object)}
    ragged = {"row_id": np.array(["a", "b"], dtype=object),
              "value": np.array([np.zeros(2), np.zeros(3)], dtype=object)}
    assert ray_block(mixed) is mixed and ray_block(ragged) is ragged
