"""A training run (or sweep) on storage: its id, the config kept beside its checkpoints (so `--resume` needs
only the id), what may change on resume, whether its workers stopped because training diverged, and the
dataset it trains on, checked before Ray starts."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import TypeVar

from pipelines.config import StrictModel
from pipelines.datasets.catalog import load_manifest, verify_shards
from pipelines.datasets.condition_levels import with_conditions
from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import TrainingError
from pipelines.storage.layout import DIVERGED_FILE, JOB_FILE, resolve_dataset, run_uri, runs_uri
from pipelines.training.config import TrainJobConfig

C = TypeVar("C", bound=StrictModel)


def new_run_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def save_job_config(run: str, config: StrictModel) -> None:
    """Keep a run's (or sweep's) config beside its checkpoints, so `--resume` needs only the id."""
    from pipelines.storage.objects import write_json

    write_json(f"{run}/{JOB_FILE}", config.model_dump(mode="json"))


def load_run_config(root: str, run_id: str, model: type[C] = TrainJobConfig) -> C:
    from pipelines.storage.objects import exists, read_record

    run = run_uri(root, run_id)
    if not exists(f"{run}/{JOB_FILE}"):
        raise TrainingError(f"no run {run_id!r} under {runs_uri(root)} (nothing to resume)")
    return read_record(model, f"{run}/{JOB_FILE}", "job config")


# What a checkpoint's weights are shaped by: changing one on --resume cannot load them. (A sweep also
# keeps its search: Tune resumes the space it started with.)
FIELDS_FIXED_ON_RESUME = ("dataset", "model", "search")


def check_resume_changes(stored: StrictModel, resumed: StrictModel, run_id: str) -> None:
    """Refuse, before Ray starts, an override on `--resume` that the run's checkpoints cannot take."""
    before, after = stored.model_dump(mode="json"), resumed.model_dump(mode="json")

    def changes(path: str, old, new):
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                yield from changes(f"{path}.{key}", old.get(key), new.get(key))
        elif old != new:
            yield path, old, new

    for section in FIELDS_FIXED_ON_RESUME:
        for field, old, new in changes(section, before.get(section), after.get(section)):
            raise TrainingError(f"--resume {run_id} --set {field}={json.dumps(new)}: {field} is {json.dumps(old)} in "
                                f"the run's checkpoints and cannot change on resume; start a new run instead "
                                f"(without --resume)")


def check_not_diverged(run: str, config: TrainJobConfig, run_id: str) -> None:
    """Refuse to register a run whose workers stopped because training diverged (`training.loop.divergence`
    leaves DIVERGED_FILE in the run)."""
    from pipelines.storage.objects import exists, read_json

    if not exists(f"{run}/{DIVERGED_FILE}"):
        return
    record = read_json(f"{run}/{DIVERGED_FILE}")
    raise TrainingError(
        f"training run {run_id} diverged at epoch {record.get('diverged_at_epoch', '?')}: "
        f"{record.get('diverged_because', 'the loss exploded')}; nothing was registered. Lower train.lr "
        f"(now {config.train.lr:g}; try {config.train.lr / 10:g}) or set train.grad_clip, then train again")


def load_training_data(config: TrainJobConfig, root: str) -> tuple[str, DatasetManifest]:
    """(dataset URI, manifest) of the job's dataset, after checking the shards and that every worker gets rows; a
    conditional model's manifest lists its conditions."""
    from pipelines.storage.objects import check_access

    check_access(root)
    dataset = resolve_dataset(root, config.dataset)
    manifest = load_manifest(dataset)
    verify_shards(dataset, manifest, checksums=config.verify_checksums)
    if manifest.split_rows["train"] < config.scaling.num_workers or manifest.split_rows["val"] == 0:
        raise TrainingError(f"dataset {dataset} has {manifest.split_rows} rows per split: training needs at least "
                            f"one train row per worker and a non-empty val split")
    return dataset, with_conditions(dataset, manifest, config.model.condition_on)
