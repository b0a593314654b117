"""`vaepipe score`: anomaly scores for every row of a prepared dataset, written to
scores/<model>/<dataset>/<date>/ as Parquet parts + `_summary.json` + `_SUCCESS`.

Each row gets the negative ELBO (z at the posterior mean, so a re-run writes the
same numbers), its reconstruction and KL terms, optionally an importance-weighted
-log p(x), its percentile among the model's validation scores, and `is_anomaly`
against the calibrated threshold (or one the user gives). The summary also says how
far the run's scores drifted from the model's validation scores (PSI, KS, the anomaly
rate against the expected one; `metrics.drift`) and which alarms that raised.
"""
from __future__ import annotations

from datetime import date as date_type
from datetime import datetime, timezone
from typing import Callable, Optional

import numpy as np
from pydantic import Field, field_validator, model_validator

from pipelines.batch.config import RowJobConfig
from pipelines.config import StrictModel
from pipelines.batch.model_actors import ModelActor, ModelWork
from pipelines.batch.model_input import open_row_input
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.metrics.anomaly import anomaly_threshold, score_column, score_summary
from pipelines.metrics.drift import drift_alarms, drift_figures
from pipelines.storage.layout import SUMMARY_FILE, output_root, scores_uri

# what a scores part holds besides the label and passthrough columns
SCORE_COLUMNS = ("row_id", "anomaly_score", "neg_elbo", "recon_nll", "kl", "iw_nll", "percentile", "is_anomaly")


class DriftConfig(StrictModel):
    """When a run's scores raise a drift alarm (`metrics.drift`), and whether an alarm fails the command."""

    psi_alarm: Optional[float] = Field(
        0.25, gt=0, description="alarm when the PSI against the validation scores exceeds this (null: never; "
                                "0.1-0.25 reads as a moderate shift, above 0.25 as a shift worth acting on)")
    ks_alarm: Optional[float] = Field(None, gt=0, lt=1, description="alarm when the KS distance exceeds this")
    anomaly_rate_alarm: Optional[float] = Field(
        3.0, gt=0, description="alarm when the anomaly rate exceeds this many times the rate the threshold flags "
                               "on validation data (the calibrated contamination, for the card's threshold)")
    fail: bool = Field(False, description="exit with status 3 on an alarm, after the output is committed "
                                          "(--fail-on-drift), so a schedule can alert")


class ScoreJobConfig(RowJobConfig):
    """Everything `vaepipe score` (and `vaepipe nightly`) needs; see configs/nightly.yaml."""

    output: str = Field("scores", description="output root: a folder under the storage root or a full URI")
    date: Optional[str] = Field(None, description="partition date YYYY-MM-DD (default: today, UTC)")
    series: Optional[str] = Field(
        None, description="the folder of these scores under <output>/<model>/ (default: the input dataset's "
                          "name): every date of a dated input shares one, so its nightly history is in one place")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    threshold: Optional[float] = Field(None, description="is_anomaly when anomaly_score > this (default: the card's)")
    contamination: Optional[float] = Field(
        None, gt=0, lt=1, description="flag this fraction of the model's validation distribution instead")
    iw_samples: int = Field(0, ge=0, description="importance samples for iw_nll (0 = off; costs k decoder passes)")
    normal_label: Optional[str] = Field(
        None, description="label value of normal rows, for ROC-AUC when the label has more than two values")

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


def today_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


class ScoreActor(ModelActor):
    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, threshold: float,
                 iw_samples: int, passthrough: tuple[str, ...], loaded: Optional[tuple] = None):
        super().__init__(root, reference, use_gpu, loaded)
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
        # a score the model could not compute (NaN) is no sign the row is normal: flagged for a person to look at
        out["is_anomaly"] = (scores[self.score] > self.threshold) | ~np.isfinite(scores[self.score])
        for column in self.passthrough:
            out[column] = batch[column]
        return out


def run_scoring(config: ScoreJobConfig, progress: Callable[[str], None] = print) -> BatchOutcome:
    """Score the input and commit scores/<model>/<dataset>/<date>/; `AlreadyComplete` if it exists."""
    from pipelines.batch.parts import read_attempt_parts
    from pipelines.storage.objects import write_json

    root, model = open_model(config)
    rows = open_row_input(root, model, config.input, config.split, config.passthrough, SCORE_COLUMNS)
    threshold = anomaly_threshold(model.card["calibration"], config.threshold, config.contamination)
    score = score_column(model.card["calibration"])
    date = config.date or today_utc()
    prefix = scores_uri(output_root(root, config.output), model.slug, config.series or rows.source.manifest.name,
                        date)

    def summarize(commit) -> dict:
        label = rows.label
        written = read_attempt_parts(commit, [score, "is_anomaly", *([label] if label else [])])
        scores = written[score].to_numpy()
        summary = score_summary(scores, written["is_anomaly"].to_numpy(), threshold, score,
                                written[label].to_numpy() if label else None, config.normal_label)
        drift = drift_figures(scores, model.card["calibration"], threshold, summary["anomaly_rate"])
        limits = config.drift
        summary["drift"] = {**drift, "alarms": drift_alarms(drift, limits.psi_alarm, limits.ks_alarm,
                                                            limits.anomaly_rate_alarm),
                            "limits": limits.model_dump(exclude={"fail"})}
        write_json(f"{prefix}/{SUMMARY_FILE}", summary)
        return {"summary": summary}

    return run_batch("score", config, model, BatchPlan(
        prefix=prefix, rows=rows.source.rows,
        description=f"scoring {rows.source.rows} rows of {rows.source.uri}"
                    f"{f' (split {config.split})' if config.split else ''} with {model.reference}; "
                    f"threshold {threshold:.3f}",
        work=ModelWork(ScoreActor, rows.dataset, rows.batches, dict(
            threshold=threshold, iw_samples=config.iw_samples, passthrough=rows.passthrough)),
        metadata={**rows.metadata, "date": date, "normal_label": config.normal_label},
        finish=summarize), progress)
