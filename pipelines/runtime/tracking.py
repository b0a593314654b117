"""Experiment tracking in MLflow: optional, off by default, one `tracking.mlflow` section in every job config.

What goes where (docs/design.md, "Experiment tracking"):
- train: one run per training run: the job config as params, every epoch's metrics (from a Ray Train
  `UserCallback`, which runs in the Train controller: Train V2 has no MLflow callback, ray#64179), the best
  epoch's metrics, the model card and the training report as artifacts;
- tune: a parent run for the sweep and one nested run per trial (a Tune callback on the driver, so a trial
  that ASHA stops or that fails is still closed with its status);
- score, generate, embed, nightly: one run with the job's summary figures (rows, anomaly rate, ...);
- the registry: a registered version is mirrored into MLflow's model registry under the same name, its card
  as tags; `vaepipe promote` moves the MLflow alias with the registry's (the card says where it is tracked).

MLflow is the `tracking` extra (`mlflow-skinny`: the full `mlflow` package pins pyarrow < 26). Without it, a
job whose config asks for tracking fails before it starts, naming the extra.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from pydantic import Field, field_validator

from pipelines.config import StrictModel
from pipelines.errors import UserError
from pipelines.redaction import has_url_credentials, redact

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
INSTALL_HINT = "pip install 'vaepipe[tracking]'"
# Set before mlflow is imported, unless the environment says otherwise: MLflow sends usage telemetry by
# default (a batch job must not call out), and retries a dead server for minutes (7 tries, backoff 2).
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
# MLflow's limits: a param value up to 6000 characters, a tag value up to 8000 (longer ones are cut).
PARAM_CHARS = 6000
TAG_CHARS = 5000
# the tag on a mirrored MLflow model version that names its vaepipe registry version
VERSION_TAG = "vaepipe.version"


class TrackingError(UserError, RuntimeError):
    """Tracking was asked for and cannot be done (MLflow missing or unreachable); the message says what to do."""


class MlflowConfig(StrictModel):
    """Where a job's runs go in MLflow."""

    tracking_uri: Optional[str] = Field(
        None, description=f"the MLflow tracking server, e.g. http://mlflow:5000 (default ${ENV_TRACKING_URI}); "
                          "credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or "
                          "MLFLOW_TRACKING_TOKEN, never from the URI")
    experiment: Optional[str] = Field(None, description="MLflow experiment name (default: the model's name)")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, value: Optional[str]) -> Optional[str]:
        if value and has_url_credentials(value):
            raise ValueError(f"{redact(value)!r} holds credentials (user:password@); remove them and set "
                             "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead")
        return value


class TrackingConfig(StrictModel):
    """Experiment tracking; off unless a tracker is configured (`tracking: {mlflow: {...}}`)."""

    mlflow: Optional[MlflowConfig] = Field(None, description="log runs, metrics and registered models to MLflow")


def _mlflow():
    for name, value in MLFLOW_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        import mlflow
    except ImportError:
        raise TrackingError(f"tracking.mlflow is set, but MLflow is not installed here: {INSTALL_HINT} "
                            "(or drop the tracking section from the config)") from None
    return mlflow


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def finite_numbers(values: dict) -> dict[str, float]:
    """The finite numbers of a (nested) dict, flattened: what MLflow can take as metrics."""
    return {key: float(value) for key, value in flatten(values).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


# What of a model card becomes tags of its MLflow model version: the scalars a person filters on. The
# card's bulky parts (the dataset manifest, the training history and config) go in as the card artifact.
CARD_TAG_SECTIONS = ("spec", "dataset", "metrics", "calibration", "training")
CARD_BULKY = ("dataset.manifest", "training.history", "training.config", "calibration.val_quantile")


def card_tags(card: dict) -> dict[str, str]:
    tags = {}
    for key, value in flatten({k: card[k] for k in CARD_TAG_SECTIONS if k in card}).items():
        if key.startswith(CARD_BULKY) or isinstance(value, (list, dict)) or value is None:
            continue
        tags[f"card.{key}"] = str(value)[:TAG_CHARS]
    return tags


@dataclass(frozen=True)
class MlflowTracking:
    """A resolved MLflow destination: picklable (Ray ships it to the Train controller and Tune's driver)."""

    tracking_uri: str
    experiment: str

    def client(self):
        return _mlflow().MlflowClient(self.tracking_uri)

    @contextlib.contextmanager
    def calls(self, what: str) -> Iterator[None]:
        """MLflow's errors as a TrackingError naming the server and what was being done."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as err:
            detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise TrackingError(f"MLflow at {redact(self.tracking_uri)} could not {what}: {redact(detail)[:300]}; "
                                "is the tracking server running and reachable from here?") from None

    def experiment_id(self) -> str:
        client = self.client()
        with self.calls(f"open experiment {self.experiment!r}"):
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                return found.experiment_id
            try:
                return client.create_experiment(self.experiment)
            except Exception:  # noqa: BLE001 -- created meanwhile by a concurrent job: use that one
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
                return found.experiment_id

    def start_run(self, name: str, params: dict, tags: Optional[dict] = None,
                  parent_run_id: Optional[str] = None) -> "TrackedRun":
        """A new run in the experiment with `params` (flattened) logged; nested under `parent_run_id` if given."""
        from mlflow.entities import Param

        client = self.client()
        all_tags = {"vaepipe.job": name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        experiment_id = self.experiment_id()
        with self.calls(f"start run {name!r}"):
            run = client.create_run(experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
            flat = [Param(key, str(value)[:PARAM_CHARS]) for key, value in flatten(params).items()]
            for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
                client.log_batch(run.info.run_id, params=flat[start:start + 100])
        return TrackedRun(self, run.info.run_id, experiment_id)

    def register_version(self, run: "TrackedRun", name: str, version: int, card: dict, source: str,
                         aliases: tuple[str, ...] = ()) -> str:
        """Mirror registry version `name@version` into MLflow's model registry (same name), its card as tags and
        `aliases` set on it; returns MLflow's version number."""
        client = self.client()
        with self.calls(f"register model {name!r}"):
            if not client.search_registered_models(filter_string=f"name = '{name}'"):
                try:
                    client.create_registered_model(name, description="mirrored from the vaepipe registry")
                except Exception:  # noqa: BLE001 -- created meanwhile by a concurrent job
                    client.get_registered_model(name)
            mirrored = client.create_model_version(
                name, source=source, run_id=run.run_id, tags={VERSION_TAG: str(version), **card_tags(card)},
                description=f"vaepipe {name}@{version}")
            for alias in aliases:
                client.set_registered_model_alias(name, alias, mirrored.version)
        return str(mirrored.version)

    def mirrored_version(self, name: str, version: int) -> Optional[str]:
        """MLflow's version number of registry version `name@version`, or None when it was never mirrored."""
        client = self.client()
        with self.calls(f"find the versions of model {name!r}"):
            for found in client.search_model_versions(filter_string=f"name = '{name}'"):
                if found.tags.get(VERSION_TAG) == str(version):
                    return str(found.version)
        return None

    def set_alias(self, name: str, alias: str, version: int) -> str:
        """Point MLflow's `alias` of `name` at the mirror of registry version `version`; returns MLflow's number."""
        mirrored = self.mirrored_version(name, version)
        if mirrored is None:
            raise TrackingError(f"MLflow at {redact(self.tracking_uri)} has no mirror of {name}@{version} (no model "
                                f"version tagged {VERSION_TAG}={version}); its alias {alias!r} was left alone")
        with self.calls(f"set alias {alias!r} of model {name!r}"):
            self.client().set_registered_model_alias(name, alias, mirrored)
        return mirrored


@dataclass(frozen=True)
class TrackedRun:
    """One MLflow run a job logs to."""

    tracking: MlflowTracking
    run_id: str
    experiment_id: str

    @property
    def url(self) -> str:
        return f"{self.tracking.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        from mlflow.entities import Metric

        numbers = finite_numbers(metrics)
        if not numbers:
            return
        import time

        now = int(time.time() * 1000)
        with self.tracking.calls("log metrics"):
            self.tracking.client().log_batch(
                self.run_id, metrics=[Metric(key, value, now, step or 0) for key, value in numbers.items()])

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        with self.tracking.calls("set tags"):
            self.tracking.client().log_batch(self.run_id, tags=[RunTag(k, str(v)[:TAG_CHARS]) for k, v in tags.items()])

    def log_dict(self, values: dict, file_name: str) -> None:
        with self.tracking.calls(f"log {file_name}"):
            self.tracking.client().log_dict(self.run_id, values, file_name)

    def log_folder(self, local_dir: str, artifact_path: str) -> None:
        with self.tracking.calls(f"log the {artifact_path} artifacts"):
            self.tracking.client().log_artifacts(self.run_id, local_dir, artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        # set_terminated prints MLflow's "View run ..." lines on stdout; the job says where the run is itself
        with self.tracking.calls("finish the run"), contextlib.redirect_stdout(io.StringIO()):
            self.tracking.client().set_terminated(self.run_id, status=status)

    def card_entry(self) -> dict:
        """What a model card records of the run that produced it: where `vaepipe promote` mirrors aliases."""
        return {"mlflow": {"tracking_uri": self.tracking.tracking_uri, "experiment": self.tracking.experiment,
                           "experiment_id": self.experiment_id, "run_id": self.run_id}}


def tracking_for(config: TrackingConfig, default_experiment: str) -> Optional[MlflowTracking]:
    """The MLflow destination a job config asks for, or None (tracking off); MLflow is imported (and its
    absence reported) here, before the job starts anything."""
    if config.mlflow is None:
        return None
    _mlflow()
    uri = config.mlflow.tracking_uri or os.environ.get(ENV_TRACKING_URI)
    if not uri:
        raise TrackingError(f"tracking.mlflow is set but names no server: set tracking.mlflow.tracking_uri "
                            f"(e.g. http://mlflow:5000) or ${ENV_TRACKING_URI}")
    if has_url_credentials(uri):
        raise TrackingError(f"${ENV_TRACKING_URI} holds credentials (user:password@); remove them and set "
                            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead")
    return MlflowTracking(uri, config.mlflow.experiment or default_experiment)


@contextlib.contextmanager
def tracked_run(tracking: Optional[MlflowTracking], name: str, params: dict, tags: Optional[dict] = None,
                say: Callable[[str], None] = print) -> Iterator[Optional[TrackedRun]]:
    """A run for the block (None when tracking is off), finished with the block's outcome: FINISHED, or
    FAILED when it raises (KILLED on Ctrl-C)."""
    if tracking is None:
        yield None
        return
    run = tracking.start_run(name, params, tags)
    say(f"MLflow run: {run.url}")
    try:
        yield run
    except KeyboardInterrupt:
        _finish_quietly(run, "KILLED")
        raise
    except BaseException:
        _finish_quietly(run, "FAILED")
        raise
    run.finish()


def _finish_quietly(run: TrackedRun, status: str) -> None:
    try:
        run.finish(status)
    except TrackingError as err:  # the job's own error is the one to report
        warnings.warn(str(err), stacklevel=3)


def after_the_job(what: str, action: Callable[[], Any]) -> Any:
    """Tracking done after a job's output is committed: a failure is a warning, not the job's failure."""
    try:
        return action()
    except TrackingError as err:
        warnings.warn(f"{what}: {err}", stacklevel=2)
        return None


def mirror_alias(card: dict, name: str, alias: str, version: int) -> Optional[str]:
    """Move MLflow's `alias` with the registry's, when the version's card says it was mirrored into MLflow;
    returns a line saying what was done, or None when the model is not tracked."""
    entry = (card.get("tracking") or {}).get("mlflow")
    if not entry:
        return None
    tracking = MlflowTracking(entry["tracking_uri"], entry.get("experiment") or name)
    try:
        _mlflow()
        mirrored = tracking.set_alias(name, alias, version)
    except TrackingError as err:
        return (f"warning: the registry alias moved, MLflow's did not ({err}); run the same `vaepipe promote` "
                "again to bring MLflow in step")
    return f"MLflow at {redact(tracking.tracking_uri)}: {name}@{alias} → MLflow version {mirrored}"


# --- Ray callbacks: per-epoch metrics of a Train run, nested runs of a sweep ------------------------


def train_metrics_callback(run: TrackedRun):
    """A Ray Train `UserCallback` that logs rank 0's metrics of every report (one per epoch) to `run`, with the
    epoch as the step. It runs in the Train controller; a failed log is a warning, never the training's end."""
    from ray.train import UserCallback

    class EpochMetricsToMlflow(UserCallback):
        def __init__(self, tracked: TrackedRun):
            self.tracked = tracked
            self.failed = False

        def after_report(self, run_context, metrics, checkpoint):
            if self.failed or not metrics:
                return
            try:
                self.tracked.log_metrics(metrics[0], step=int(metrics[0].get("epoch", 0)))
            except TrackingError as err:
                self.failed = True
                warnings.warn(f"per-epoch metrics are no longer logged to MLflow: {err}", stacklevel=2)

    return EpochMetricsToMlflow(run)


def epoch_metrics_logger(run: TrackedRun) -> Callable[[dict], None]:
    """What `train_metrics_callback` does for a run trained in one process (engine local): every epoch's metrics
    to `run`, the epoch as the step; after a failed log, a warning and no more logging."""
    failed = False

    def log(metrics: dict) -> None:
        nonlocal failed
        if failed or not metrics:
            return
        try:
            run.log_metrics(metrics, step=int(metrics.get("epoch", 0)))
        except TrackingError as err:
            failed = True
            warnings.warn(f"per-epoch metrics are no longer logged to MLflow: {err}", stacklevel=2)

    return log


def sweep_tracking_callback(parent: TrackedRun, metric_keys: tuple[str, ...]):
    """A Tune callback (on the driver) that opens a nested MLflow run per trial under `parent`, logs the trial's
    searched values as params and `metric_keys` of every result (one per epoch) as metrics, and closes the run
    with the trial's end: FINISHED (ASHA's early stops included, tagged), FAILED on error."""
    from ray.tune import Callback

    class TrialsToMlflow(Callback):
        def __init__(self):
            self.runs: dict[str, TrackedRun] = {}

        def _run(self, trial) -> TrackedRun:
            if trial.trial_id not in self.runs:
                self.runs[trial.trial_id] = parent.tracking.start_run(
                    f"trial {trial.trial_id}", dict(trial.config), {"vaepipe.trial_id": trial.trial_id},
                    parent_run_id=parent.run_id)
            return self.runs[trial.trial_id]

        def on_trial_start(self, iteration, trials, trial, **info):
            self._run(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            wanted = {key: result[key] for key in metric_keys if key in result}
            self._run(trial).log_metrics(wanted, step=int(result.get("epoch", 0)))

        def on_trial_complete(self, iteration, trials, trial, **info):
            run = self._run(trial)
            last = trial.last_result or {}
            run.set_tags({"vaepipe.epochs_run": last.get("epoch", 0)})
            run.finish("FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._run(trial).finish("FAILED")

    return TrialsToMlflow()
