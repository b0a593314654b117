"""The results table of a sweep: one row per trial with its config and its last and best validation metrics,
rewritten under runs/<sweep>/ (trials.parquet + trials.csv) each time a trial ends, so a person or a
report can read it while the sweep runs."""
from __future__ import annotations

import io
import json
from typing import Optional

import pandas as pd

from ray.tune import Callback

from pipelines.storage.layout import SWEEP_CSV, SWEEP_TABLE
from pipelines.training.sweep_config import SEARCHED_FIELDS

METRIC = "val_neg_elbo"  # validation negative ELBO at β=1: comparable across β, unlike the training loss
# the results table's columns before and after the searched fields, in the order people read them
LEADING_COLUMNS = ("trial_id", "status", "stopped_early", "epochs")
RESULT_COLUMNS = ("best_val_neg_elbo", "best_val_recon_nll", "best_val_kl", "best_epoch", "mig", "diverged_at_epoch")
# the column, added when the sweep ends on a dataset with factor columns, of the MIG of each trial's best checkpoint
MIG_COLUMN = "mig"
_VAL = ("val_neg_elbo", "val_recon_nll", "val_kl")


def _kept(result: dict) -> dict:
    return {key: result.get(key) for key in ("epoch", *_VAL, "checkpoint_path", "timestamp", "diverged_at_epoch")}


def trial_row(trial_id: str, status: str, params: dict, last: dict, best: dict, max_epochs: int,
              error: Optional[str] = None) -> dict:
    """One table row. `stopped_early`: ended by the scheduler before `max_epochs` (not by an error)."""
    epochs = int(last["epoch"]) if last.get("epoch") is not None else 0
    return {
        "trial_id": trial_id, "status": status,
        "stopped_early": status == "TERMINATED" and epochs < max_epochs,
        "epochs": epochs,
        # a list value (hidden widths) as JSON text, so every column has one type
        **{name: json.dumps(params[name]) if isinstance(params.get(name), (list, tuple)) else params.get(name)
           for name in SEARCHED_FIELDS},
        **{key: last.get(key) for key in _VAL},
        "best_epoch": best.get("epoch"),
        **{f"best_{key}": best.get(key) for key in _VAL},
        "best_checkpoint_path": best.get("checkpoint_path"),
        "diverged_at_epoch": last.get("diverged_at_epoch"),
        "last_report_at": last.get("timestamp"),
        "error": error,
    }


def display_columns() -> list[str]:
    """The columns a person sees of the table (the CLI's and the report's), the searched fields included."""
    return [*LEADING_COLUMNS, *SEARCHED_FIELDS, *RESULT_COLUMNS]


def write_table(sweep_uri: str, rows: list[dict]) -> pd.DataFrame:
    from pipelines.storage.objects import write_bytes

    frame = pd.DataFrame(rows).sort_values("trial_id", ignore_index=True)
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    write_bytes(f"{sweep_uri}/{SWEEP_TABLE}", parquet.getvalue())
    write_bytes(f"{sweep_uri}/{SWEEP_CSV}", frame.to_csv(index=False).encode())
    return frame


def with_mig_column(sweep_uri: str, table: pd.DataFrame, mig_by_trial: dict[str, float]) -> pd.DataFrame:
    """The results table with each trial's MIG (`MIG_COLUMN`, empty for a trial without a measured checkpoint),
    written back under the sweep."""
    return write_table(sweep_uri, table.assign(**{MIG_COLUMN: table["trial_id"].map(mig_by_trial).astype(float)})
                       .to_dict("records"))


def read_table(sweep_uri: str) -> pd.DataFrame:
    from pipelines.storage.objects import read_bytes

    return pd.read_parquet(io.BytesIO(read_bytes(f"{sweep_uri}/{SWEEP_TABLE}")))


def _error_line(trial) -> str:
    error = trial.get_error()
    lines = str(error).strip().splitlines() if error else []
    return lines[-1] if lines else f"failed; see {trial.path}/error.txt"


class TrialTable(Callback):
    """A Tune callback that keeps each trial's last and best (lowest `METRIC`) result and rewrites the table
    whenever a trial ends. Its state is saved with Tune's experiment state, so a resumed sweep keeps the rows
    of trials that finished before the interruption."""

    def __init__(self, sweep_uri: str, max_epochs: int, template_values: dict):
        """`template_values`: the searched fields' values in the template, for the columns a sweep doesn't vary."""
        self.sweep_uri, self.max_epochs, self.template_values = sweep_uri, max_epochs, template_values
        self.last: dict[str, dict] = {}
        self.best: dict[str, dict] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        kept = self.last[trial.trial_id] = _kept(result)
        best = self.best.get(trial.trial_id)
        if result.get(METRIC) is not None and (best is None or result[METRIC] < best[METRIC]):
            self.best[trial.trial_id] = kept

    def rows(self, trials, ended: Optional[str] = None) -> list[dict]:
        """One row per trial; `ended`: the id of a trial that has finished though Tune still says RUNNING."""
        return [trial_row(t.trial_id, "TERMINATED" if t.trial_id == ended else t.status,
                          {**self.template_values, **t.config}, self.last.get(t.trial_id, {}),
                          self.best.get(t.trial_id, {}), self.max_epochs,
                          error=_error_line(t) if t.status == "ERROR" else None)
                for t in trials]

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Tune calls this before it marks the trial TERMINATED (`TuneController.stop_trial`): written as Tune has
        # it, a finished trial read RUNNING until the next one ended, and a sweep killed in between lost it
        write_table(self.sweep_uri, self.rows(trials, ended=trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        write_table(self.sweep_uri, self.rows(trials))

    def on_experiment_end(self, trials, **info):
        write_table(self.sweep_uri, self.rows(trials))

    def get_state(self) -> dict:
        return {"last": self.last, "best": self.best}

    def set_state(self, state: dict) -> None:
        self.last, self.best = state["last"], state["best"]
