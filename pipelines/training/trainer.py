"""The Ray Train trainer of one training run, built from the job config: workers and their resources, the
datasets they read, checkpoints and failure policy. The per-worker loop is `training.loop`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import read_split
from pipelines.errors import TrainingError
from pipelines.runtime.cluster_capacity import READ_CPUS
from pipelines.runtime.processes import TRAINING_WORKER_VARIABLE
from pipelines.training.config import ScalingConfig, TrainJobConfig
from pipelines.training.loop import HANDED_SPLITS, WorkerConfig, should_cache, train_loop_per_worker
from vae_core import ModelSpec

if TYPE_CHECKING:
    from pipelines.storage.objects import Location


def job_cpus(scaling: ScalingConfig) -> float:
    """Logical CPUs one training job needs to never hang: its workers' CPUs plus one for Ray Data reads."""
    return scaling.num_workers * scaling.cpus_per_worker + READ_CPUS


def check_resources(config: TrainJobConfig) -> None:
    """Fail at once, naming the fields, when the Ray cluster could never schedule the workers: a Ray that
    vaepipe started as it is, an autoscaling cluster at its largest; on the latter, ask its autoscaler for
    the workers and wait for them (ray.scale_up_timeout_s)."""
    from pipelines.runtime.cluster_capacity import check_placeable, cluster_capacity, scale_up_for, worker_bundles

    scaling = config.scaling
    capacity = cluster_capacity()
    cpus, gpus = capacity.total("CPU"), capacity.total("GPU")
    if job_cpus(scaling) > cpus:
        raise TrainingError(
            f"scaling.num_workers ({scaling.num_workers}) × scaling.cpus_per_worker ({scaling.cpus_per_worker}) = "
            f"{scaling.num_workers * scaling.cpus_per_worker:g} CPUs, but {capacity.phrase} {cpus:g} and Ray Data "
            f"needs {READ_CPUS:g} of them; lower scaling.cpus_per_worker (e.g. "
            f"{max(0.1, (cpus - READ_CPUS) / scaling.num_workers):.2g}) or raise ray.num_cpus")
    if scaling.use_gpu and scaling.num_workers * scaling.gpus_per_worker > gpus:
        raise TrainingError(f"scaling.use_gpu is true but {capacity.phrase} {gpus:g} GPUs for "
                            f"{scaling.num_workers} workers; set scaling.use_gpu=false or run on a GPU cluster")
    bundles = worker_bundles(scaling.num_workers, scaling.cpus_per_worker, scaling.gpus_per_worker, scaling.use_gpu)
    gpus = " and scaling.gpus_per_worker GPUs" if scaling.use_gpu else ""
    check_placeable(capacity, bundles + [{"CPU": READ_CPUS}],
                    f"scaling.num_workers ({scaling.num_workers}) train workers of scaling.cpus_per_worker "
                    f"({scaling.cpus_per_worker:g}) CPUs{gpus} each, and {READ_CPUS:g} CPU for Ray Data",
                    "lower scaling.cpus_per_worker to what one node has", TrainingError)
    scale_up_for(capacity, bundles + [{"CPU": READ_CPUS}], config.ray.scale_up_timeout_s, print,
                 f"{scaling.num_workers} train worker(s) and {READ_CPUS:g} CPU for Ray Data reads")


def failure_message(err: Exception) -> str:
    failures = getattr(err, "worker_failures", None)
    if failures:
        rank, cause = sorted(failures.items())[0]
        return f"worker {rank} failed: {type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def worker_splits(dataset: str, manifest: DatasetManifest, config: TrainJobConfig) -> tuple[dict, dict]:
    """(the datasets Ray Train hands out, the splits handed to the workers with their config).

    Every worker iterates all of val, so in cache mode it is read once here and kept in the object store (a
    separate read and decode per worker otherwise — measured 15-18 s of a 60 s digits run on 2 cores). When all
    of train fits one worker's cache budget it is read here too, in Ray's idle workers before the train workers
    start (digits' first epoch: 4.5 s of split read on 2 cores otherwise), and split into equal shares as Ray
    Train's `streaming_split(equal=True)` would: both go to the workers with their config, so Train starts no
    split coordinator for them and a worker's first epoch no longer waits for that actor's process (see
    docs/design.md, "Ray on small machines"). Larger data streams through Ray Train's datasets as before."""
    cached = should_cache(config.train, manifest, config.scaling.num_workers)
    train, val = read_split(dataset, manifest, "train"), read_split(dataset, manifest, "val")
    # all of train within one worker's budget implies the cache mode (each worker's share is smaller)
    if should_cache(config.train, manifest, 1):
        return {}, {"train": train.materialize().split(config.scaling.num_workers, equal=True),
                    "val": val.materialize()}
    return {"train": train, "val": val.materialize() if cached else val}, {}


def build_trainer(config: TrainJobConfig, dataset: str, manifest: DatasetManifest, spec: ModelSpec, run_name: str,
                  storage: Location, callbacks: Sequence = ()):
    """The TorchTrainer of one training run: `train_loop_per_worker` on `config.scaling` workers, checkpoints
    (best kept by validation negative ELBO) under `storage`/`run_name`/; an existing run there is resumed."""
    from ray.train import (
        CheckpointConfig,
        DataConfig,
        FailureConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer

    datasets, handed = worker_splits(dataset, manifest, config)
    resources = {"CPU": config.scaling.cpus_per_worker}
    if config.scaling.use_gpu:
        resources["GPU"] = config.scaling.gpus_per_worker
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**WorkerConfig(loop=config.train, spec=spec.to_dict(), manifest=manifest,
                                          checkpoint_every=config.checkpoint.every_epochs,
                                          threads=config.scaling.threads,
                                          run_uri=f"{storage.uri}/{run_name}").model_dump(mode="json"),
                           # Ray serializes the config with the datasets' block references in it
                           HANDED_SPLITS: handed},
        scaling_config=ScalingConfig(num_workers=config.scaling.num_workers, use_gpu=config.scaling.use_gpu,
                                     resources_per_worker=resources,
                                     placement_strategy=config.scaling.placement_strategy),
        run_config=RunConfig(
            name=run_name, storage_path=storage.path, storage_filesystem=storage.filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoint.keep,
                                               checkpoint_score_attribute="val_neg_elbo",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=config.max_failures),
            callbacks=list(callbacks),
            # Ray's own setting, read by a worker process when it starts (Ray Jobs un-nice drivers the same way);
            # the marker keeps these workers out of SCHED_IDLE (runtime.processes.idle_unless_training)
            worker_runtime_env={"env_vars": {"RAY_worker_niceness": str(config.scaling.worker_niceness),
                                             TRAINING_WORKER_VARIABLE: "1"}}),
        datasets=datasets,
        # val is not split: each worker evaluates every world_size-th row of the whole split
        dataset_config=DataConfig(datasets_to_split=["train"] if datasets else []),
    )
