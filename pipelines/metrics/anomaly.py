"""Anomaly scores as numbers a person can act on: the calibration a model card carries, the threshold a run
uses, and the summary of a scored dataset (pure numpy / scikit-learn)."""
from __future__ import annotations

from typing import Optional

import numpy as np

# the score column that is calibrated, thresholded and ranked (cards written before it existed say "neg_elbo")
SCORE_COLUMN = "anomaly_score"
SCORE_QUANTILES = (0.5, 0.9, 0.99, 0.999)
CALIBRATION_LEVELS = np.linspace(0.0, 1.0, 201)


def calibration_card(scores: np.ndarray, contamination: float) -> dict:
    """The model card's calibration: the threshold at the upper `contamination` quantile of the validation
    scores, and the validation quantiles a scoring run places each row among (its percentile)."""
    return {
        "score": SCORE_COLUMN,
        "contamination": contamination,
        "threshold": float(np.quantile(scores, 1.0 - contamination)),
        "val_rows": int(scores.size),
        "val_quantile_levels": CALIBRATION_LEVELS.tolist(),
        "val_quantiles": np.quantile(scores, CALIBRATION_LEVELS).tolist(),
    }


def anomaly_threshold(calibration: dict, threshold: Optional[float], contamination: Optional[float]) -> float:
    """The user's threshold, else the upper `contamination` quantile of the validation scores, else the card's."""
    if threshold is not None:
        return float(threshold)
    if contamination is not None:
        return float(np.interp(1.0 - contamination, calibration["val_quantile_levels"], calibration["val_quantiles"]))
    return float(calibration["threshold"])


def score_column(record: dict) -> str:
    """The score column a calibration card or a stored score summary is about: what is_anomaly,
    percentile and ranking use. Records written before anomaly_score existed name none: neg_elbo."""
    return record.get("score", "neg_elbo")


def anomaly_classes(labels: np.ndarray, normal_label: Optional[str] = None) -> tuple[Optional[np.ndarray], str]:
    """(True where a row's label marks an anomaly, "") or (None, why the labels cannot say).

    Labels mark anomalies as: label != `normal_label` when given, else the larger
    of exactly two label values (1 / True).
    """
    values = np.asarray(labels).astype(str)
    if normal_label is not None:
        positive = values != str(normal_label)
    elif len(set(values.tolist())) == 2:
        positive = values == sorted(set(values.tolist()))[-1]
    else:
        return None, "skipped: the label has more than two values; pass --normal-label"
    if positive.all() or not positive.any():
        return None, "skipped: every row has the same class"
    return positive, ""


def score_summary(scores: np.ndarray, is_anomaly: np.ndarray, threshold: float, score: str,
                  labels: Optional[np.ndarray] = None, normal_label: Optional[str] = None) -> dict:
    """Rows, anomaly rate and quantiles of the `score` column; ROC-AUC and precision@k (k = true anomalies)
    with labels that mark anomalies (`anomaly_classes`)."""
    summary = {
        "rows": int(scores.size),
        "anomalies": int(is_anomaly.sum()),
        "anomaly_rate": float(is_anomaly.mean()) if scores.size else 0.0,
        "score": score,
        "threshold": threshold,
        "score_quantiles": {f"p{100 * q:g}": float(value)
                            for q, value in zip(SCORE_QUANTILES, np.quantile(scores, SCORE_QUANTILES))},
    }
    if labels is None:
        return summary
    positive, why_not = anomaly_classes(labels, normal_label)
    if positive is None:
        summary["label_metrics"] = why_not
        return summary
    from sklearn.metrics import roc_auc_score

    k = int(positive.sum())
    top_k = np.argsort(-scores, kind="stable")[:k]
    summary.update({"roc_auc": float(roc_auc_score(positive, scores)), "k": k,
                    "precision_at_k": float(positive[top_k].mean()), "label_anomaly_rate": float(positive.mean())})
    return summary
