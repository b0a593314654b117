"""The config every batch verb starts from: which model, where its outputs go, and the actor pool."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from pipelines.config import StrictModel
from pipelines.runtime.engine import ENGINE_HELP, Engine
from pipelines.runtime.ray_session import RayConfig
from pipelines.runtime.tracking import TrackingConfig


CPU_ACTOR_CPUS = 0.5


class ComputeConfig(StrictModel):
    """The actor pool every batch job runs its model in."""

    actors: int = Field(2, ge=1, description="model actors (ActorPoolStrategy size); each loads the model once")
    cpus_per_actor: Optional[float] = Field(
        None, gt=0, description=f"logical CPUs per actor (default {CPU_ACTOR_CPUS}: fractional, so reads and "
                                "writes still get scheduled beside the actors on a small machine; with use_gpu, "
                                "Ray Data's own: 1 CPU beside each GPU actor)")
    batch_size: int = Field(4096, ge=1, description="rows per model call")
    use_gpu: bool = False
    gpus_per_actor: float = Field(1.0, gt=0, description="GPUs per actor when use_gpu (e.g. 0.25 shares one GPU)")

    def actor_resources(self) -> dict[str, float]:
        """The `num_cpus` / `num_gpus` of each model actor, as `map_batches` takes them. A GPU actor names no
        CPUs unless asked, and Ray Data reserves 1 CPU beside it itself: given both, Ray Data warns that this
        is experimental and may cause scheduling issues (seen on an H200 with 0.5 CPU + 1 GPU per actor)."""
        if not self.use_gpu:
            return {"num_cpus": CPU_ACTOR_CPUS if self.cpus_per_actor is None else self.cpus_per_actor}
        cpus = {} if self.cpus_per_actor is None else {"num_cpus": self.cpus_per_actor}
        return {**cpus, "num_gpus": self.gpus_per_actor}


class LeaseConfig(StrictModel):
    """How the output's `_LEASE` is kept alive (storage.commit): renewed every `heartbeat_seconds`; a lease
    not renewed for `expires_after_heartbeats` heartbeats is dead, whatever host held it, and a retry that
    finds one waits at most that long, then takes it over."""

    heartbeat_seconds: float = Field(30.0, gt=0, description="seconds between renewals of the output's lease")
    expires_after_heartbeats: float = Field(3.0, gt=1, description="heartbeats a lease may miss before it is dead")

    @property
    def expiry_seconds(self) -> float:
        return self.heartbeat_seconds * self.expires_after_heartbeats


class BatchJobConfig(StrictModel):
    """What every batch verb takes; a verb adds its own fields and the default of `output`."""

    model: str = Field(description="registered model: NAME@VERSION, NAME@PROMOTED or NAME@latest")
    storage: Optional[str] = Field(None, description="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    output: str = Field(description="output root: a folder under the storage root or a full URI")
    overwrite: bool = Field(False, description="replace an output that is already complete")
    engine: Engine = Field("auto", description=ENGINE_HELP)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


class RowJobConfig(BatchJobConfig):
    """A batch verb over the rows of a prepared input (score, embed)."""

    input: str = Field(description="prepared dataset: a name under <storage>/datasets/ or a full URI")
    split: Optional[Literal["train", "val", "test"]] = Field(None, description="only this split (default: every row)")
    passthrough: list[str] = Field(default_factory=list,
                                   description="input columns copied to the output (the label always is)")
