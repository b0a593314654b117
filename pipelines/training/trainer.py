"""The Ray Train trainer of one training run, built from the job config: workers and their resources, the
datasets they read, checkpoints and failure policy. The per-worker loop is `training.loop`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from pipelines.datasets.manifest import DatasetManifest
from pipelines.datasets.reader import iter_split_batches, read_split
from pipelines.errors import TrainingError
from pipelines.runtime.cluster_capacity import READ_CPUS
from pipelines.runtime.processes import TRAINING_WORKER_VARIABLE
from pipelines.training.config import ScalingConfig, TrainJobConfig
from pipelines.training.worker_config import (
    HANDED_SPLITS,
    WorkerConfig,
    cached_bytes,
    should_cache,
)
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


# Up to this many bytes of featurized rows the driver reads the splits itself, in one process; above, Ray Data's
# read tasks read them in parallel, over every node of a cluster
HANDED_SPLITS_MAX_MB = 256


def worker_splits(dataset: str, manifest: DatasetManifest, config: TrainJobConfig) -> tuple[dict, dict]:
    """(the datasets Ray Train hands out, the splits handed to the workers with their config).

    When all of train fits one worker's cache budget and HANDED_SPLITS_MAX_MB, this process reads both splits
    with pyarrow, as the local engine does, and puts them in the object store batch by batch: train cut into
    equal shares, as Ray Train's `streaming_split(equal=True)` cuts it, val whole (every worker evaluates every
    world_size-th row of it). Neither Ray Data nor Train's split coordinator then runs for the job, and a
    worker's first epoch waits for no actor's process to start (docs/design.md, "Splits handed to the
    workers"). Larger data goes through Ray Train's datasets; val, which every worker iterates whole, is then
    read once here when it is cached."""
    whole = should_cache(config.train, manifest, 1)  # all of train within one worker's cache budget
    if whole and cached_bytes(manifest, 1) <= HANDED_SPLITS_MAX_MB * 2**20:
        train, val = _batches(dataset, manifest, "train"), _batches(dataset, manifest, "val")
        return {}, {"train": _equal_shares(train, config.scaling.num_workers),
                    "val": [(ref, 0, rows) for ref, rows in val]}
    cached = should_cache(config.train, manifest, config.scaling.num_workers)
    train, val = read_split(dataset, manifest, "train"), read_split(dataset, manifest, "val")
    # train that fits one worker is read before the workers start, in Ray's idle workers, instead of by read
    # tasks that wait for new worker processes beside them (digits' first epoch: 4.5 s of split read on 2 cores)
    return {"train": train.materialize() if whole else train, "val": val.materialize() if cached else val}, {}


def _batches(dataset: str, manifest: DatasetManifest, split: str) -> list[tuple]:
    """(object reference, rows) of each batch of a split's featurized rows (`x`), read in this process."""
    import ray

    return [(ray.put(batch["x"]), len(batch["x"])) for batch in iter_split_batches(dataset, manifest, split)]


def _equal_shares(batches: list[tuple], workers: int) -> list[list[tuple]]:
    """The rows of `batches` in `workers` equal shares of consecutive rows, each a list of (reference, first row,
    end row) pieces; the last `rows % workers` rows are left out, as `streaming_split(equal=True)` leaves them
    (equal shares are equal numbers of steps: DDP's collectives would wait forever for a worker short of one)."""
    share = sum(rows for _, rows in batches) // workers
    shares: list[list[tuple]] = [[] for _ in range(workers)]
    done = 0  # rows given out
    for ref, rows in batches:
        start = 0
        while share and start < rows and done < share * workers:
            rank = done // share
            take = min(rows - start, (rank + 1) * share - done)
            shares[rank].append((ref, start, start + take))
            start, done = start + take, done + take
    return shares


def train_loop_per_worker(config_dict: dict) -> None:
    """What each Ray Train worker runs: `training.loop.run_loop` in a `RayTrainSession`. Ray pickles this function
    by reference to this module, which imports no torch; the loop's module (torch) is imported by the workers
    that run it, not by the process that builds the trainer (a Tune trial's actor)."""
    from pipelines.training.loop import run_on_ray_train

    run_on_ray_train(config_dict)


def build_trainer(config: TrainJobConfig, dataset: str, manifest: DatasetManifest, spec: ModelSpec, run_name: str,
                  storage: Location, callbacks: Sequence = ()):
    """The Ray Train trainer of one training run (what TorchTrainer builds, without importing torch here):
    `train_loop_per_worker` on `config.scaling` workers in one torch process group, checkpoints (best kept by
    validation negative ELBO) under `storage`/`run_name`/; an existing run there is resumed."""
    from ray.train import (
        CheckpointConfig,
        DataConfig,
        FailureConfig,
        RunConfig,
        ScalingConfig,
    )
    # TorchTrainer is this trainer with Ray's TorchConfig, whose module imports torch in every process that builds
    # or unpickles it (a Tune trial's actor, Train's controller): the same trainer with our torch-free backend
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from pipelines.training.process_group import TorchProcessGroup

    datasets, handed = worker_splits(dataset, manifest, config)
    resources = {"CPU": config.scaling.cpus_per_worker}
    if config.scaling.use_gpu:
        resources["GPU"] = config.scaling.gpus_per_worker
    return DataParallelTrainer(
        train_loop_per_worker,
        backend_config=TorchProcessGroup(backend="nccl" if config.scaling.use_gpu else "gloo"),
        train_loop_config={**WorkerConfig(loop=config.train, spec=spec.to_dict(), manifest=manifest,
                                          checkpoint_every=config.checkpoint.every_epochs,
                                          threads=config.scaling.threads,
                                          run_uri=f"{storage.uri}/{run_name}").model_dump(mode="json"),
                           # Ray serializes the config with the handed batches' object references in it
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
