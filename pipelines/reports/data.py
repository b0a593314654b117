"""The labels of a prepared dataset's rows, for a report (the rows are read by `datasets.local_rows`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from pipelines.datasets.manifest import DatasetManifest


def labels(manifest: DatasetManifest, rows: pa.Table) -> Optional[np.ndarray]:
    """The label column's values, or None when the dataset has no label."""
    if manifest.label_column is None or manifest.label_column not in rows.column_names:
        return None
    return rows[manifest.label_column].to_numpy(zero_copy_only=False)
