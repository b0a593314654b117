"""Rows of a prepared dataset read straight from its shards with pyarrow (no Ray), and the model input they
make: for the few hundred or thousand rows a report or a sweep's last measurement looks at, starting Ray Data
costs more than reading."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from pipelines.datasets.features import image_features, table_features
from pipelines.datasets.manifest import DatasetManifest


def read_rows(dataset: str, manifest: DatasetManifest, split: Optional[str] = None, limit: Optional[int] = None,
              row_ids: Optional[Sequence[str]] = None, columns: Optional[Sequence[str]] = None) -> pa.Table:
    """Rows of `split` (every split when None), at most `limit`, only `row_ids` when given, in shard order;
    only `columns` when given."""
    import pyarrow.dataset as ds

    from pipelines.datasets.catalog import shard_uris
    from pipelines.storage.objects import resolve

    location = resolve(dataset)
    data = ds.dataset([resolve(uri).path for uri in shard_uris(dataset, manifest)], format="parquet",
                      filesystem=location.filesystem)
    condition = None
    if split is not None:
        condition = ds.field("split") == split
    if row_ids is not None:
        wanted = ds.field(manifest.id_column).isin([str(row_id) for row_id in row_ids])
        condition = wanted if condition is None else condition & wanted
    columns = list(columns) if columns is not None else None
    if limit is not None:
        return data.head(limit, columns=columns, filter=condition)
    return data.to_table(columns=columns, filter=condition)


def images(manifest: DatasetManifest, rows: pa.Table) -> np.ndarray:
    """uint8 images [N, C, H, W] of an image dataset's rows."""
    column = rows[manifest.image.column].combine_chunks()
    if len(column) == 0:
        return np.zeros((0, *manifest.image.shape), dtype=np.uint8)
    return column.to_numpy_ndarray().reshape(-1, *manifest.image.shape)


def features(manifest: DatasetManifest, rows: pa.Table, conditions: bool = True) -> np.ndarray:
    """The model's input of the rows: features (images scaled to [0, 1]; tables standardized and one-hot), then a
    conditional model's condition one-hots (unless `conditions` is False: the features alone)."""
    from pipelines.datasets.conditions import with_condition_input

    given = [column.name for column in manifest.condition or [] if column.name in rows.column_names]
    batch = {name: rows[name].to_numpy(zero_copy_only=False)
             for name in dict.fromkeys([*([] if manifest.kind == "image" else manifest.feature_columns), *given])}
    x = image_features(manifest, images(manifest, rows)) if manifest.kind == "image" else table_features(manifest, batch)
    return with_condition_input(manifest, x, batch) if conditions else x
