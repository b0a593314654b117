"""Model actors: a class that loads one registered model version once and is called on numpy batches.

A batch verb subclasses `ModelActor` (one `__call__(batch) -> batch`) and describes its work as a
`ModelWork`; either engine runs it — `ray`: a pool of Ray actors over a Ray Dataset (`map_with_model`),
`local`: one instance in this process over batches read with pyarrow (`run_in_process`). `batch.parts`
writes the result, `batch.run` commits it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

from pipelines.batch.config import ComputeConfig
from pipelines.datasets.manifest import DatasetManifest
from pipelines.storage.layout import model_slug


@dataclass(frozen=True)
class RegisteredModel:
    """A model version resolved once on the driver, so every actor loads exactly that version."""

    name: str
    version: int
    card: dict

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def slug(self) -> str:
        """The model's folder name in output paths."""
        return model_slug(self.name, self.version)

    @property
    def training_manifest(self) -> DatasetManifest:
        """The dataset the model was trained on: its schema and preprocessing statistics."""
        return DatasetManifest.model_validate(self.card["dataset"]["manifest"])


def resolve_model(root: str, reference: str) -> RegisteredModel:
    """The registered version a reference names (`digits@PROMOTED`, `digits@3`, ...) and its card."""
    from pipelines.storage.layout import CARD_FILE, model_version_uri
    from pipelines.storage.registry import ModelRef, read_card, resolve_version

    ref = ModelRef.parse(reference)
    version = resolve_version(root, ref)
    return RegisteredModel(ref.name, version, read_card(f"{model_version_uri(root, ref.name, version)}/{CARD_FILE}"))


class ModelActor:
    """Base of the callable classes given to `map_batches`: the model is loaded once per actor,
    from the registry's safetensors (never unpickled), onto the GPU when the job has one."""

    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, loaded: Optional[tuple] = None):
        """Loads `reference` from the registry at `root`, or takes `loaded` = (model, card) already in memory
        (a notebook's model, `vaepipe.VAEDetector`)."""
        import torch

        from pipelines.storage.registry import load_registered

        model, card = loaded if loaded is not None else load_registered(root, reference)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.card = card
        self.manifest = DatasetManifest.model_validate(card["dataset"]["manifest"])


@dataclass
class ModelWork:
    """What a batch verb computes, in a form either engine runs: `actor` (a `ModelActor` subclass, built once per
    Ray actor or once in this process, with `actor_kwargs`) called on every batch of the input."""

    actor: type[ModelActor]
    ray_input: Callable[[int], Any]              # at least N blocks → the input as a Ray Dataset (in the session)
    local_input: Callable[[int], Iterable[dict]]  # rows per batch → the input as numpy batches, read in this process
    actor_kwargs: dict = field(default_factory=dict)
    batch_size: Optional[int] = None              # rows per call (default: the job's compute.batch_size)


def check_pool_fits(compute: ComputeConfig) -> None:
    """Fail at once, naming the fields, when the connected Ray could never schedule the actor pool (a Ray
    vaepipe started as it is, an autoscaling cluster at its largest): Ray Data would otherwise wait forever,
    saying only that "the job may hang forever unless the cluster scales up"."""
    from pipelines.errors import BatchJobError
    from pipelines.runtime.cluster_capacity import READ_CPUS, check_placeable, cluster_capacity, worker_bundles

    capacity = cluster_capacity()
    resources = compute.actor_resources()
    gpus_needed = compute.actors * resources.get("num_gpus", 0.0)
    if gpus_needed > capacity.total("GPU"):
        raise BatchJobError(
            f"compute.use_gpu is true, and compute.actors ({compute.actors}) × compute.gpus_per_actor "
            f"({compute.gpus_per_actor:g}) = {gpus_needed:g} GPUs, but {capacity.phrase} "
            f"{capacity.total('GPU'):g}; drop --use-gpu, lower compute.actors or compute.gpus_per_actor, or run "
            "on a GPU cluster")
    cpus_per_actor = resources.get("num_cpus", 1.0)  # Ray Data's 1 beside a GPU actor that names none
    if compute.actors * cpus_per_actor + READ_CPUS > capacity.total("CPU"):
        raise BatchJobError(
            f"compute.actors ({compute.actors}) × {cpus_per_actor:g} CPUs per actor (compute.cpus_per_actor) "
            f"= {compute.actors * cpus_per_actor:g} CPUs, but {capacity.phrase} {capacity.total('CPU'):g} and "
            f"Ray Data's reads need {READ_CPUS:g} of them; lower --actors or --cpus-per-actor, or raise "
            "ray.num_cpus")
    actors = worker_bundles(compute.actors, cpus_per_actor, compute.gpus_per_actor, compute.use_gpu)
    gpus = " and compute.gpus_per_actor GPUs" if compute.use_gpu else ""
    check_placeable(capacity, actors + [{"CPU": READ_CPUS}],
                    f"compute.actors ({compute.actors}) model actors of {cpus_per_actor:g} CPUs "
                    f"(compute.cpus_per_actor){gpus} each, and {READ_CPUS:g} CPU for Ray Data", "lower --cpus-per-actor to what one node has",
                    BatchJobError)


def check_local_device(compute: ComputeConfig) -> None:
    """In this process, `use_gpu` needs a CUDA GPU here: an error rather than a silent run on the CPU."""
    import torch

    from pipelines.errors import BatchJobError

    if compute.use_gpu and not torch.cuda.is_available():
        raise BatchJobError("compute.use_gpu is true but this machine has no CUDA GPU for the job's own process "
                            "(engine local; torch.cuda.is_available() is False): drop --use-gpu, or run with "
                            "--engine ray on a Ray cluster with GPU nodes")


def run_on_ray(work: ModelWork, model: RegisteredModel, root: str, compute: ComputeConfig):
    """The work's output as a Ray Dataset: its input mapped by a pool of `compute.actors` model actors."""
    return map_with_model(work.ray_input(compute.actors), work.actor, model, root, compute, work.batch_size,
                          **work.actor_kwargs)


def run_in_process(work: ModelWork, model: RegisteredModel, root: str, compute: ComputeConfig) -> Iterator[dict]:
    """The work's output batches computed in this process by one instance of the same actor class."""
    actor = work.actor(root, model.reference, compute.use_gpu, **work.actor_kwargs)
    for batch in work.local_input(work.batch_size or compute.batch_size):
        yield actor(batch)


def arrow_output(actor_class: type) -> type:
    """`actor_class` returning its numpy batches as Arrow tables (`datasets.reader.ray_block`), so Ray Data does
    not convert them itself (slowly, for text columns)."""
    from pipelines.datasets.reader import ray_block

    class ArrowOutput(actor_class):
        def __call__(self, batch):
            return ray_block(super().__call__(batch))

    # Ray Data names the operator (and its log lines) after the class
    ArrowOutput.__name__ = ArrowOutput.__qualname__ = actor_class.__name__
    return ArrowOutput


def map_with_model(dataset, actor_class: type[ModelActor], model: RegisteredModel, root: str,
                   compute: ComputeConfig, batch_size: Optional[int] = None, **actor_kwargs: Any):
    """`dataset.map_batches(actor_class)` on a fixed pool of `compute.actors` model actors; inside a job's
    `job_progress.row_progress`, every actor counts the rows it returns."""
    import ray.data

    from pipelines.runtime.job_progress import counting, current_board

    board = current_board()
    return dataset.map_batches(
        arrow_output(counting(actor_class, board) if board is not None else actor_class),
        fn_constructor_kwargs={"root": root, "reference": model.reference, "use_gpu": compute.use_gpu,
                               **actor_kwargs},
        compute=ray.data.ActorPoolStrategy(size=compute.actors),
        **compute.actor_resources(),
        batch_size=batch_size or compute.batch_size,
        batch_format="numpy",
        # a killed actor is restarted and its batches re-run: Ray Data's defaults for actor pools
        # (max_restarts/max_task_retries -1; passing them is deprecated), asserted by the fault tests;
        # the attempt's commit makes these at-least-once retries exactly-once
    )
