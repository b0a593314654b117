"""`vaepipe score`: anomaly scores for every row of a prepared dataset, written to
scores/<model>/<dataset>/<date>/ as Parquet parts + `_summary.json` + `_SUCCESS`.

Each row gets the negative ELBO (z at the posterior mean, so a re-run writes the
same numbers), its reconstruction and KL terms, optionally an importance-weighted
-log p(x), its percentile among the model's validation scores, and `is_anomaly`
against the calibrated threshold (or one the user gives).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date as date_type
from datetime import datetime, timezone
from typing import Callable, Optional

import numpy as np
from pydantic import Field, field_validator, model_validator

from pipelines.batch_inference import BatchJobError, ComputeConfig, ModelActor
from pipelines.config_loading import StrictModel
from pipelines.ray_runtime import RayConfig

SUMMARY = "_summary.json"
# what a scores part holds besides the label and passthrough columns
SCORE_COLUMNS = ("row_id", "anomaly_score", "neg_elbo", "recon_nll", "kl", "iw_nll", "percentile", "is_anomaly")
SCORE_QUANTILES = (0.5, 0.9, 0.99, 0.999)


class ScoreJobConfig(StrictModel):
    """Everything `vaepipe score` (and `vaepipe nightly`) needs; see configs/nightly.yaml."""

    model: str = Field(description="registered model: NAME@VERSION, NAME@PROMOTED or NAME@latest")
    input: str = Field(description="prepared dataset to score: a name under <storage>/datasets/ or a full URI")
    storage: Optional[str] = Field(None, description="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    output: str = Field("scores", description="output root: a folder under the storage root or a full URI")
    date: Optional[str] = Field(None, description="partition date YYYY-MM-DD (default: today, UTC)")
    split: Optional[str] = Field(None, description="score only this split of the input (default: every row)")
    passthrough: list[str] = Field(default_factory=list,
                                   description="input columns copied to the output (the label always is)")
    threshold: Optional[float] = Field(None, description="is_anomaly when anomaly_score > this (default: the card's)")
    contamination: Optional[float] = Field(
        None, gt=0, lt=1, description="flag this fraction of the model's validation distribution instead")
    iw_samples: int = Field(0, ge=0, description="importance samples for iw_nll (0 = off; costs k decoder passes)")
    normal_label: Optional[str] = Field(
        None, description="label value of normal rows, for ROC-AUC when the label has more than two values")
    overwrite: bool = False
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("date", mode="before")
    @classmethod
    def _date_as_text(cls, value):
        # YAML (and `--set date=2026-11-24`) reads an unquoted date as a date object
        return value.isoformat() if isinstance(value, (date_type, datetime)) else value

    @model_validator(mode="after")
    def _one_threshold(self):
        if self.threshold is not None and self.contamination is not None:
            raise ValueError("give threshold or contamination, not both")
        if self.date is not None:
            try:
                datetime.strptime(self.date, "%Y-%m-%d")
            except ValueError:
                raise ValueError(f"date must be YYYY-MM-DD, got {self.date!r}") from None
        return self


@dataclass
class ScoreOutcome:
    output_uri: str
    model: str
    rows: int
    summary: dict
    seconds: float


def today_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


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


class ScoreActor(ModelActor):
    def __init__(self, root: str, reference: str, use_gpu: bool, threshold: float, iw_samples: int,
                 passthrough: tuple[str, ...]):
        super().__init__(root, reference, use_gpu)
        calibration = self.card["calibration"]
        self.score = score_column(calibration)
        self.levels = np.asarray(calibration["val_quantile_levels"], dtype=np.float64)
        self.quantiles = np.asarray(calibration["val_quantiles"], dtype=np.float64)
        self.threshold = threshold
        self.iw_samples = iw_samples
        self.passthrough = passthrough

    def __call__(self, batch: dict) -> dict:
        from pipelines.datasets.reader import batch_tensor, to_model_input
        from vae_core import anomaly_scores

        x = to_model_input(batch_tensor(batch["x"]).to(self.device), self.manifest)
        scores = {name: value.float().cpu().numpy() for name, value in
                  anomaly_scores(self.model, x, iw_samples=self.iw_samples).items()}
        out = {"row_id": batch["row_id"], **scores}
        out["percentile"] = 100.0 * np.interp(scores[self.score], self.quantiles, self.levels)
        out["is_anomaly"] = scores[self.score] > self.threshold
        for column in self.passthrough:
            out[column] = batch[column]
        return out


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
        "score_quantiles": {f"p{100 * q:g}": float(np.quantile(scores, q)) for q in SCORE_QUANTILES},
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


def run_scoring(config: ScoreJobConfig, progress: Callable[[str], None] = print) -> ScoreOutcome:
    """Score the input and commit scores/<model>/<dataset>/<date>/; `AlreadyComplete` if it exists."""
    from pipelines.batch_inference import map_with_model, open_row_job, output_root, read_attempt_parts, write_parts
    from pipelines.outputs import OutputCommit
    from pipelines.ray_runtime import ray_session
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.scores import build_scores_report
    from pipelines.storage import write_json

    started = time.monotonic()
    job = open_row_job(config.storage, config.model, config.input, config.split, config.passthrough,
                       output_columns=lambda _: SCORE_COLUMNS)
    root, model, source, passthrough, label = job.root, job.model, job.source, job.passthrough, job.label
    threshold = anomaly_threshold(model.card["calibration"], config.threshold, config.contamination)
    date = config.date or today_utc()
    prefix = f"{output_root(root, config.output)}/{model.slug}/{source.manifest.name}/{date}"
    progress(f"scoring {source.rows} rows of {source.uri}{f' (split {config.split})' if config.split else ''} "
             f"with {model.reference} on {config.compute.actors} actor(s); threshold {threshold:.3f}")
    # the commit first: a complete output is reported before Ray starts
    with OutputCommit(prefix, job="score", overwrite=config.overwrite) as commit, ray_session(config.ray):
        dataset = map_with_model(job.rows(config.compute.actors), ScoreActor, model, root,
                                 config.compute, threshold=threshold, iw_samples=config.iw_samples,
                                 passthrough=passthrough)
        write_parts(dataset, commit)
        score = score_column(model.card["calibration"])
        written = read_attempt_parts(commit, [score, "is_anomaly", *([label] if label else [])])
        summary = score_summary(written[score].to_numpy(), written["is_anomaly"].to_numpy(), threshold, score,
                                written[label].to_numpy() if label else None, config.normal_label)
        if summary["rows"] != source.rows:
            raise BatchJobError(f"scoring wrote {summary['rows']} rows for {source.rows} input rows; "
                                f"no _SUCCESS written -- re-run the job")
        write_json(f"{prefix}/{SUMMARY}", summary)
        commit.commit(expected_rows=source.rows, metadata={
            "model": model.reference, "input": source.uri, "input_fingerprint": source.fingerprint,
            "split": config.split, "date": date, "label": label, "normal_label": config.normal_label,
            "rows_in": source.rows, "rows_out": summary["rows"],
            "seconds": round(time.monotonic() - started, 3), "summary": summary})
    report_after_job(build_scores_report, root, prefix, progress=progress)
    return ScoreOutcome(prefix, model.reference, source.rows, summary, time.monotonic() - started)
