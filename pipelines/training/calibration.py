"""The anomaly threshold a registered model carries, measured on the validation split of its dataset."""
from __future__ import annotations

import numpy as np
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import batch_tensor, read_split, to_model_input
from pipelines.metrics.anomaly import SCORE_COLUMN
from vae_core import VAE, anomaly_scores


@torch.no_grad()
def validation_scores(model: VAE, dataset: str, manifest: DatasetManifest, batch_size: int = 4096) -> np.ndarray:
    """Deterministic anomaly scores (`vae_core.anomaly_scores`' SCORE_COLUMN, at z = posterior mean)
    of every validation row."""
    model.eval()
    scores = []
    for batch in read_split(dataset, manifest, "val").iter_batches(batch_size=batch_size, batch_format="numpy"):
        x = to_model_input(batch_tensor(batch["x"]), manifest)
        scores.append(anomaly_scores(model, x)[SCORE_COLUMN].numpy())
    return np.concatenate(scores) if scores else np.empty(0)
