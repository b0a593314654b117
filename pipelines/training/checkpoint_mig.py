"""MIG of a training checkpoint on the validation rows of a dataset with factor columns: what a sweep on such a
dataset records for every trial (the sweep report's MIG against β) and, with `search.metric: mig`, selects on.

The rows are read once, without Ray (`datasets.local_rows`), at most `metrics.disentanglement.SUMMARY_ROWS`
of them; each checkpoint is loaded on the driver and encodes them in chunks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.metrics.disentanglement import SUMMARY_ROWS, mig

ENCODE_CHUNK = 2048  # rows per encoder call: bounded memory for any image size


@dataclass(frozen=True)
class FactorRows:
    """Model inputs of some rows and their known factors, one row each."""

    x: torch.Tensor
    factors: pd.DataFrame


def validation_factor_rows(dataset: str, manifest: DatasetManifest, limit: int = SUMMARY_ROWS) -> FactorRows:
    """The first `limit` validation rows (every split's when the dataset has no val rows) with their factors;
    the factors that take one value on them are left out (they explain nothing)."""
    from pipelines.datasets.local_rows import features, read_rows

    rows = read_rows(dataset, manifest, "val", limit=limit)
    if rows.num_rows < 2:
        rows = read_rows(dataset, manifest, None, limit=limit)
    factors = rows.select(list(manifest.factor_columns or [])).to_pandas()
    return FactorRows(torch.from_numpy(features(manifest, rows)),
                      factors[[name for name in factors.columns if factors[name].nunique() > 1]])


def checkpoint_mig(checkpoint, rows: FactorRows) -> float:
    """MIG of the latent means a Ray Train checkpoint's model gives `rows` (NaN when no factor varies)."""
    from pipelines.training.checkpoints import load_checkpoint

    if not len(rows.factors.columns):
        return float("nan")
    with checkpoint.as_directory() as directory:
        model, _, _ = load_checkpoint(directory)
    with model.inference():
        mu = torch.cat([model.encode(chunk).mu.float() for chunk in rows.x.split(ENCODE_CHUNK)]).numpy()
    if not np.isfinite(mu).all():
        return float("nan")
    return mig(mu, rows.factors)
