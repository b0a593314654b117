"""What a Ray Train worker is handed: its validated config (`WorkerConfig`) and the key of the splits the driver read
for it. Torch-free, as the trainer that builds it (`training.trainer`): a Tune trial's actor builds trainers and
never imports torch.
"""
from __future__ import annotations

from pydantic import Field, field_validator

from pipelines.config import StrictModel
from pipelines.datasets.manifest import DatasetManifest
from pipelines.training.config import LoopConfig

# The key of a worker's config that holds the splits the driver read for it (`trainer.worker_splits`): train as
# one list of batch pieces per rank, val whole; empty when the workers take them from Ray Train's datasets
HANDED_SPLITS = "handed_splits"


class WorkerConfig(StrictModel):
    """Everything a worker's loop receives, validated again in the worker (Ray passes it as a plain dict)."""

    loop: LoopConfig
    spec: dict = Field(description="vae_core.ModelSpec.to_dict() of the model to train")
    manifest: DatasetManifest
    checkpoint_every: int = Field(ge=1)
    threads: int = Field(ge=1, description="torch intra-op threads (ScalingConfig.threads, resolved by the driver)")
    run_uri: str = Field(description="the run's folder on storage, where a divergence is recorded")

    @field_validator("loop")
    @classmethod
    def _budget_resolved(cls, loop: LoopConfig) -> LoopConfig:
        auto = [name for name in ("epochs", "batch_size", "kl_warmup_epochs") if getattr(loop, name) == "auto"]
        if auto:  # a driver that forgot `training.budget`: fail before the first step, not inside range("auto")
            raise ValueError(f"train.{', train.'.join(auto)} still auto: the driver sets them (training.budget)")
        return loop


def cached_bytes(manifest: DatasetManifest, world_size: int) -> float:
    """Bytes of one worker's cache: its share of train and all of val (uint8 images, float32 features)."""
    bytes_per_row = manifest.feature_dim * (1 if manifest.kind == "image" else 4)
    return (manifest.split_rows["train"] / world_size + manifest.split_rows["val"]) * bytes_per_row


def should_cache(loop: LoopConfig, manifest: DatasetManifest, world_size: int) -> bool:
    if loop.data_loading != "auto":
        return loop.data_loading == "cache"
    return cached_bytes(manifest, world_size) < loop.cache_limit_mb * 2**20
