"""The anomaly threshold a registered model carries, measured on the validation split of its dataset."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import batch_tensor, iter_split_batches, to_model_input
from pipelines.metrics.anomaly import SCORE_COLUMN
from vae_core import VAE, anomaly_scores

# rows per model call when calibrating: what a scoring actor takes by default (ComputeConfig.batch_size)
CALIBRATION_BATCH = 4096


@torch.no_grad()
def batch_scores(model: VAE, batches: Iterable[np.ndarray], manifest: DatasetManifest) -> np.ndarray:
    """Deterministic anomaly scores (`vae_core.anomaly_scores`' SCORE_COLUMN, at z = posterior mean) of the rows
    of each batch of model input `x` (uint8 images or features), in order."""
    model.eval()
    scores = [anomaly_scores(model, to_model_input(batch_tensor(x), manifest))[SCORE_COLUMN].numpy() for x in batches]
    return np.concatenate(scores) if scores else np.empty(0)


def validation_scores(model: VAE, dataset: str, manifest: DatasetManifest) -> np.ndarray:
    """Scores of every validation row, read in this process with pyarrow (a few thousand rows: starting Ray Data
    for them cost the job seconds)."""
    return batch_scores(model, (batch["x"] for batch in iter_split_batches(dataset, manifest, "val",
                                                                           batch_size=CALIBRATION_BATCH)), manifest)
