"""A run's best checkpoint becomes a registered model version: calibrated on the validation split, refused
when any of its numbers is not finite, and stored with a card naming its data, run, config and metrics."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import TrainingError
from pipelines.metrics.anomaly import calibration_card
from pipelines.training.calibration import validation_scores
from pipelines.training.config import TrainJobConfig
from vae_core import model_to_bytes


def check_finite_metrics(metrics: dict, calibration: dict, where: str) -> None:
    """A model whose best metrics or calibration are non-finite must never be registered (nor scored with)."""
    numbers = {**{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
               "calibration.threshold": calibration["threshold"]}
    bad = sorted(name for name, value in numbers.items() if not np.isfinite(value))
    if bad or not np.all(np.isfinite(calibration["val_quantiles"])):
        raise TrainingError(f"{where}: {', '.join(bad) or 'the validation score quantiles'} are NaN/inf: the "
                            "model is broken (training diverged); nothing was registered — lower train.lr")


@dataclass
class ExportedModel:
    version: int
    card: dict
    history: list[dict]


def model_card(model, config: TrainJobConfig, dataset: str, manifest: DatasetManifest, best_metrics: dict,
               state: dict, val_scores: np.ndarray, run_id: str, run: str,
               training_extra: Optional[dict] = None, tracking: Optional[dict] = None) -> dict:
    """The card a trained model is registered with: spec, data, run, config, metrics and the anomaly threshold
    calibrated on the validation rows' scores `val_scores` (refused when any of its numbers is not finite), and
    where the run is tracked (`tracking`, when it is)."""
    calibration = calibration_card(val_scores, config.contamination)
    check_finite_metrics(best_metrics, calibration, f"run {run_id}, epoch {best_metrics['epoch']}")
    return {
        "spec": json.loads(model.spec.to_json()),
        "dataset": {"uri": dataset, "name": manifest.name, "fingerprint": manifest.fingerprint,
                    "manifest": manifest.model_dump(mode="json")},
        "training": {"run_id": run_id, "run_uri": run, "best_epoch": int(best_metrics["epoch"]),
                     "config": config.model_dump(mode="json"), "history": state["history"],
                     "resumed_at_epochs": state.get("resumed_at", []), **(training_extra or {})},
        "metrics": {k: best_metrics[k] for k in ("val_neg_elbo", "val_recon_nll", "val_kl", "epoch")},
        "calibration": calibration,
        **({"tracking": tracking} if tracking else {}),
    }


def export_model(root: str, config: TrainJobConfig, dataset: str, manifest: DatasetManifest, checkpoint,
                 best_metrics: dict, run_id: str, run: str, progress: Callable[[str], None] = print,
                 training_extra: Optional[dict] = None, latest_checkpoint=None,
                 tracking: Optional[dict] = None) -> ExportedModel:
    """Calibrate a training checkpoint's anomaly threshold on the validation split and register it as a new
    version of `config.name`, with a card naming the data, run, config and metrics (`model_card`).

    The card's history is the whole run's, read from `latest_checkpoint` when given (the best
    checkpoint knows only the epochs up to itself). `tracking`: where the run is tracked
    (`runtime.tracking.TrackedRun.card_entry`), recorded so that promotions move MLflow's aliases too."""
    from pipelines.storage.registry import register_model
    from pipelines.training.checkpoints import load_checkpoint, load_checkpoint_state

    with checkpoint.as_directory() as directory:
        model, _, state = load_checkpoint(directory)
    if latest_checkpoint is not None:
        with latest_checkpoint.as_directory() as directory:
            state = load_checkpoint_state(directory)
    progress(f"best epoch {best_metrics['epoch']}: val -ELBO {best_metrics['val_neg_elbo']:.3f}; "
             "calibrating the anomaly threshold on the validation split")
    card = model_card(model, config, dataset, manifest, best_metrics, state,
                      validation_scores(model, dataset, manifest), run_id, run, training_extra, tracking)
    weights, _ = model_to_bytes(model)
    return ExportedModel(register_model(root, config.name, weights, card), card, state["history"])


def mirror_registration(tracked, root: str, name: str, exported, progress: Callable[[str], None]) -> None:
    """What MLflow gets of a registered version (train and tune): the best epoch's metrics under `best.`, the card
    as an artifact, and the version in MLflow's model registry with the card as tags."""
    from pipelines.storage.layout import model_version_uri

    tracked.log_metrics({f"best.{key}": value for key, value in exported.card["metrics"].items()})
    tracked.log_dict(exported.card, "model.json")
    mirrored = tracked.tracking.register_version(tracked, name, exported.version, exported.card,
                                                 model_version_uri(root, name, exported.version))
    progress(f"MLflow model registry: {name} version {mirrored} mirrors {name}@{exported.version}")
