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


def run_on_ray(work: ModelWork, model: RegisteredModel, root: str, compute: ComputeConfig):
    """The work's output as a Ray Dataset: its input mapped by a pool of `compute.actors` model actors."""
    return map_with_model(work.ray_input(compute.actors), work.actor, model, root, compute, work.batch_size,
                          **work.actor_kwargs)


def run_in_process(work: ModelWork, model: RegisteredModel, root: str, compute: ComputeConfig) -> Iterator[dict]:
    """The work's output batches computed in this process by one instance of the same actor class."""
    actor = work.actor(root, model.reference, compute.use_gpu, **work.actor_kwargs)
    for batch in work.local_input(work.batch_size or compute.batch_size):
        yield actor(batch)


def map_with_model(dataset, actor_class: type[ModelActor], model: RegisteredModel, root: str,
                   compute: ComputeConfig, batch_size: Optional[int] = None, **actor_kwargs: Any):
    """`dataset.map_batches(actor_class)` on a fixed pool of `compute.actors` model actors; inside a job's
    `job_progress.row_progress`, every actor counts the rows it returns."""
    import ray.data

    from pipelines.runtime.job_progress import counting, current_board

    board = current_board()
    return dataset.map_batches(
        counting(actor_class, board) if board is not None else actor_class,
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
