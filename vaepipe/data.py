"""What a notebook hands over — a DataFrame, a 2-D array, an image array — as the rows `vaepipe prepare` would
read (a `SourceTable`), and rows of an already fitted model's schema as its input features.

Row ids are the positions 0..N-1, as `prepare` numbers a CSV without an id column, so the same rows get the same
split (a hash of the id) in a notebook and in `vaepipe prepare`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.datasets.manifest import MISSING_LEVEL, DatasetManifest
from pipelines.datasets.sources import SourceError, SourceTable

DESCRIPTION = "notebook"


def array_columns(width: int) -> list[str]:
    """Column names of a 2-D array's features: x0, x1, ..."""
    return [f"x{i}" for i in range(width)]


def as_images(x: np.ndarray) -> np.ndarray:
    """[N, H, W] or [N, C, H, W] (C 1 or 3) images as uint8 [N, C, H, W]: uint8 as given, floats in [0, 1]
    scaled to 0..255 (the range every image dataset is stored in)."""
    images = x[:, None] if x.ndim == 3 else x
    if images.shape[1] not in (1, 3):
        raise SourceError(f"images must be [N, H, W] or [N, C, H, W] with C 1 or 3, got shape {x.shape}")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    values = np.asarray(images, dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise SourceError(f"float images must hold values in [0, 1] (got {np.nanmin(values):g}..{np.nanmax(values):g}); "
                          "pass uint8 images for 0..255")
    return np.rint(values * 255).astype(np.uint8)


def source_table(x, labels=None, name: str = DESCRIPTION) -> SourceTable:
    """`x` as the rows `prepare` reads: a DataFrame (its columns), a 2-D array (columns x0..), or images
    ([N, H, W] / [N, C, H, W]); `labels` are kept beside them, never trained on."""
    label_values = None if labels is None else np.asarray(labels)
    if isinstance(x, pd.DataFrame):
        frame = x.reset_index(drop=True)
        kind = "tabular"
    else:
        array = np.asarray(x)
        if array.ndim == 2:
            frame, kind = pd.DataFrame(array, columns=array_columns(array.shape[1])), "tabular"
        elif array.ndim in (3, 4):
            frame, kind = None, "image"
        else:
            raise SourceError(f"X must be a DataFrame, a 2-D array of rows or an image array [N, (C,) H, W]; got "
                              f"an array of shape {array.shape}")
    rows = len(frame) if frame is not None else len(array)
    if label_values is not None and len(label_values) != rows:
        raise SourceError(f"{rows} rows but {len(label_values)} labels")
    ids = np.asarray([str(i) for i in range(rows)], dtype=object)
    label_name = None if label_values is None else "label"
    if kind == "image":
        return SourceTable("image", name, ids, labels=label_values, images=as_images(array), label_name=label_name)
    return SourceTable("tabular", name, ids, labels=label_values, table=frame, label_name=label_name)


def model_input(manifest: DatasetManifest, x) -> dict[str, np.ndarray]:
    """Rows in a fitted model's schema as a numpy batch with the model input `x` and `row_id` (0..N-1), cleaned and
    featurized as `prepare` and the scoring actors do: numeric columns parsed as numbers, categorical ones as
    text; a missing column, a NaN or an unseen level is an error naming the column."""
    from pipelines.datasets.preparation import clean_tabular
    from pipelines.datasets.reader import featurize_batch

    if manifest.kind != "image" and not isinstance(x, pd.DataFrame) and np.ndim(x) == 2:
        x = _named_by_position(manifest, np.asarray(x))
    source = source_table(x)
    if manifest.kind == "image":
        if source.kind != "image" or tuple(source.images.shape[1:]) != tuple(manifest.image.shape):
            got = f"shape {tuple(source.images.shape[1:])}" if source.kind == "image" else "a table"
            raise SourceError(f"the model was fitted to images {tuple(manifest.image.shape)} (C,H,W); got {got}")
        batch = {manifest.image.column: source.images}
    else:
        if source.kind != "tabular":
            raise SourceError("the model was fitted to a table; got an image array")
        missing = [c for c in manifest.feature_columns if c not in source.table.columns]
        if missing:
            raise SourceError(f"columns {missing} the model was fitted to are missing (columns: "
                              f"{list(source.table.columns)})")
        extra = [c for c in source.table.columns if c not in manifest.feature_columns]
        if extra:
            # scikit-learn refuses other feature names too: a column left in (the label) is no feature
            raise SourceError(f"X has column(s) {extra} the model was not fitted to; pass "
                              f"X[model.feature_names_in_] (the columns {manifest.column_order or manifest.feature_columns})")
        # a column whose missing values the model learned (fit(impute=...) kept them: a categorical level, a
        # numeric gap) reads them as such; anywhere else a missing value is refused by name, as the detector
        # scores rows as they are
        learned = {c.name for c in manifest.numeric if c.gaps} | {
            c.name for c in manifest.categorical if MISSING_LEVEL in c.levels}
        splits = np.full(source.rows, "train", dtype=object)
        tables = [clean_tabular(source, [c.name for c in manifest.numeric if (c.name in learned) == gaps],
                                [c.name for c in manifest.categorical if (c.name in learned) == gaps], splits,
                                "keep" if gaps else "error")[0] for gaps in (False, True)]
        table = pd.concat(tables, axis=1)
        batch = {name: table[name].to_numpy() for name in manifest.feature_columns}
    batch["row_id"] = source.row_ids
    return featurize_batch(batch, manifest, ("row_id",))


def _named_by_position(manifest: DatasetManifest, array: np.ndarray) -> pd.DataFrame:
    """A 2-D array's columns as the fitted frame's, by position (scikit-learn reads an array given to a model
    fitted on a DataFrame the same way); another width is refused: its extra columns were silently ignored."""
    names = manifest.column_order or manifest.feature_columns
    if array.shape[1] != len(names):
        raise SourceError(f"X has {array.shape[1]} columns, but the model was fitted to {len(names)}: {names}")
    return pd.DataFrame(array, columns=names)


def restore_dtypes(frame: pd.DataFrame, manifest: DatasetManifest) -> pd.DataFrame:
    """Generated rows with each column in the dtype the fitted frame had where numpy has none (pandas' `str`,
    `category` with the fitted levels, the nullable `Int64` and `boolean`); numpy dtypes are already the source's
    (`features_to_table`)."""
    out = frame.copy()
    for column in [*manifest.numeric, *manifest.categorical]:
        if column.dtype == "category":
            levels = [level for level in column.levels if level != MISSING_LEVEL]  # a missing value is no level
            out[column.name] = pd.Categorical(out[column.name], categories=levels)
        elif _pandas_only(column.dtype):
            out[column.name] = out[column.name].astype(column.dtype)
    return out


def _pandas_only(dtype: str) -> bool:
    """Whether `dtype` names one of pandas' own dtypes (str, Int64, boolean, ...) rather than numpy's."""
    try:
        return isinstance(pd.api.types.pandas_dtype(dtype), pd.api.extensions.ExtensionDtype)
    except TypeError:
        return False
