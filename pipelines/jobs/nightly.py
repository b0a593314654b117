"""`vaepipe nightly`: what the cluster's schedule runs — score one date's input with the promoted model.

The config is a scoring config (configs/nightly.yaml) where a bare model name
means its PROMOTED version and the date defaults to today (UTC), so the same
file runs unchanged every night and a re-run of a finished night does nothing.
"""
from __future__ import annotations

from typing import Iterable

from pipelines.jobs.score import ScoreJobConfig, today_utc


def nightly_config(path: str, overrides: Iterable[str] = ()) -> ScoreJobConfig:
    from pipelines.config import load_config
    from pipelines.storage.registry import PROMOTED

    config = load_config(ScoreJobConfig, path, overrides)
    model = config.model if "@" in config.model else f"{config.model}@{PROMOTED}"
    return config.model_copy(update={"model": model, "date": config.date or today_utc()})
