"""A prepared dataset's split as model inputs: a Ray Dataset ready for `iter_torch_batches` (`read_split`), or
numpy batches read in this process with pyarrow (`iter_split_batches`, the `local` engine's reader), both
featurized by the same `featurize_batch`.

Every batch leaves the Ray Data pipeline as one fixed-shape tensor column `x`
(docs/design.md: one tensor column instead of one per feature made collation
5x cheaper). Images stay uint8 until they reach the worker — a quarter of the
bytes through the object store and onto a GPU; the worker divides by 255.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from pipelines.datasets.catalog import shard_uris
from pipelines.datasets.conditions import with_condition_input
from pipelines.datasets.features import table_features
from pipelines.datasets.manifest import DatasetManifest
from pipelines.runtime import ray_private


def arrow_table(batch: dict):
    """A numpy batch as an Arrow table: an [N, ...] array becomes a fixed-shape tensor column (Arrow's canonical
    extension, the type `prepare` writes images as and any pyarrow reads without Ray), the rest Arrow's
    inference. The local engine writes its output parts from it, and every block our Ray Data tasks return is
    built by it (`ray_block`), so both engines write the same Parquet."""
    import pyarrow as pa

    columns = {}
    for name, values in batch.items():
        values = np.asarray(values)
        # in an object column (text), NaN and pandas' NA are how pandas marks a missing value: null in Arrow
        columns[name] = (pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
                         if values.ndim > 1 else pa.array(values, from_pandas=values.dtype == object))
    return pa.table(columns)


def ray_block(batch: dict):
    """A numpy batch returned by one of our Ray Data UDFs as `arrow_table` would build it. Ray Data's own
    conversion checks every value of a text column for its length in Python: in a 10M-row score that was most
    of the scoring actors' and read tasks' CPU (py-spy at 11b165e: 145 of an actor's 232 busy samples, for the
    row ids); and it writes [N, ...] arrays as Ray's own tensor type, which pyarrow reads without Ray only as
    its storage (the local engine wrote Arrow's). A column Arrow types otherwise than as numbers or text (mixed
    Python objects, arrays of arrays) leaves the batch to Ray Data as it is."""
    import pyarrow as pa

    if not all(isinstance(values, np.ndarray) for values in batch.values()):
        return batch
    try:
        table = arrow_table(batch)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        return batch
    for name, values in batch.items():
        kind = table.schema.field(name).type
        if values.dtype == object and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return batch
    return table


def featurized_block(batch: dict, manifest: DatasetManifest, keep: Sequence[str]):
    """`featurize_batch` for a Ray Data task: its output as `ray_block`."""
    return ray_block(featurize_batch(batch, manifest, keep))


def featurize_batch(batch: dict, manifest: DatasetManifest, keep: Sequence[str]) -> dict:
    out = {name: batch[name] for name in keep}
    if manifest.kind == "image":
        x = np.ascontiguousarray(batch[manifest.image.column])
    else:
        x = table_features(manifest, batch)
    out["x"] = with_condition_input(manifest, x, batch)
    return out


def read_split(dataset: str, manifest: DatasetManifest, split: str | None, keep: Sequence[str] = (),
               min_blocks: int | None = None):
    """Rows of `split` (all rows when None) from the shards the manifest lists, featurized in map_batches.

    `min_blocks` asks for at least that many read blocks, so a pool of that many
    actors all get work even when small shards would be read as one block.
    """
    import ray.data
    from ray.data.expressions import col

    from pipelines.storage.objects import resolve

    location = resolve(dataset)
    paths = [resolve(uri).path for uri in shard_uris(dataset, manifest)]
    with ray_private.parquet_reader_v1():
        ds = ray.data.read_parquet(paths, filesystem=location.filesystem, override_num_blocks=min_blocks)
    if split is not None:
        ds = ds.filter(expr=col("split") == split)
    return ds.map_batches(featurized_block, fn_kwargs={"manifest": manifest, "keep": tuple(keep)},
                          batch_format="numpy", batch_size=None)


def numpy_batch(batch) -> dict[str, np.ndarray]:
    """An Arrow record batch (or table) as the numpy batch Ray Data's `batch_format="numpy"` gives: tensor
    columns as [N, ...] arrays, strings as object arrays."""
    import pyarrow as pa

    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if isinstance(column.type, pa.FixedShapeTensorType):
            out[name] = column.to_numpy_ndarray()
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def iter_split_batches(dataset: str, manifest: DatasetManifest, split: str | None, keep: Sequence[str] = (),
                       batch_size: int = 4096) -> Iterator[dict]:
    """In this process, without Ray: the rows of `split` (all rows when None) from the shards the manifest lists,
    in shard order, at most `batch_size` per batch, featurized as `read_split`'s batches are."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.storage.objects import resolve

    location = resolve(dataset)
    columns = list(dict.fromkeys([*manifest.feature_columns, *keep, *(["split"] if split is not None else [])]))
    # a conditional model's label column, where the input has one (without, every row's label is unknown)
    conditions = [column.name for column in manifest.condition or [] if column.name not in columns]
    for uri in shard_uris(dataset, manifest):
        with location.filesystem.open_input_file(resolve(uri).path) as handle:
            shard = pq.ParquetFile(handle)
            present = [name for name in conditions if name in shard.schema_arrow.names]
            for batch in shard.iter_batches(batch_size=batch_size, columns=columns + present):
                if split is not None:
                    batch = batch.filter(pc.equal(batch.column("split"), split))
                if batch.num_rows:
                    yield featurize_batch(numpy_batch(batch), manifest, keep)


def batch_tensor(x: np.ndarray):
    """A batch column as a torch tensor without a copy.

    Arrow buffers are read-only and torch warns about that; nothing downstream
    writes into the tensor (`to_model_input` converts images to a new one)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(x))


def to_model_input(x, manifest: DatasetManifest):
    """The float tensor a model consumes, from a batch's `x` column (torch, on any device)."""
    import torch

    if x.dtype != torch.uint8:
        return x
    if not manifest.condition:
        return x.to(torch.float32).mul_(1.0 / manifest.image.max_value)
    # pixels scaled, the condition one-hots (0/1 stored as uint8) as they are
    pixels = x[:, :manifest.feature_dim].to(torch.float32).mul_(1.0 / manifest.image.max_value)
    return torch.cat([pixels, x[:, manifest.feature_dim:].to(torch.float32)], dim=1)

