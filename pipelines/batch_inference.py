"""What `score`, `generate` and `embed` share: a pool of Ray actors that each load the
registered model once, and Parquet parts written under an `OutputCommit`.

A job subclasses `ModelActor` (one `__call__(batch) -> batch`), maps it over a Ray
Dataset with `map_with_model`, and writes the result with `write_parts`; the
commit (and `_SUCCESS`) stays in the job, after its own checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import pyarrow as pa
from pydantic import Field

from pipelines.config_loading import StrictModel
from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import UserError
from pipelines.model_input import ModelInput
from pipelines.naming import validate_name


class BatchJobError(UserError, RuntimeError):
    """A batch job that could not run or finish; the message says why and what to do."""


class ComputeConfig(StrictModel):
    """The actor pool every batch job runs its model in."""

    actors: int = Field(2, ge=1, description="model actors (ActorPoolStrategy size); each loads the model once")
    cpus_per_actor: float = Field(
        0.5, gt=0, description="logical CPUs per actor; fractional on small machines so reads and writes "
                               "still get scheduled beside the actors")
    batch_size: int = Field(4096, ge=1, description="rows per model call")
    use_gpu: bool = False
    gpus_per_actor: float = Field(1.0, gt=0, description="GPUs per actor when use_gpu (e.g. 0.25 shares one GPU)")


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
        """The model's folder name in output paths (`@` is avoided: URI parsers read it as user@host)."""
        return f"{self.name}-v{self.version}"

    @property
    def training_manifest(self) -> DatasetManifest:
        """The dataset the model was trained on: its schema and preprocessing statistics."""
        return DatasetManifest.model_validate(self.card["dataset"]["manifest"])


def resolve_model(root: str, reference: str) -> RegisteredModel:
    """The registered version a reference names (`digits@PROMOTED`, `digits@3`, ...) and its card."""
    from pipelines.layout import model_uri
    from pipelines.registry import CARD, ModelRef, read_card, resolve_version

    ref = ModelRef.parse(reference)
    version = resolve_version(root, ref)
    return RegisteredModel(ref.name, version, read_card(f"{model_uri(root, ref.name)}/{version}/{CARD}"))


@dataclass(frozen=True)
class RowJob:
    """A batch job over the rows of a prepared input: the registered model, the input checked
    against the model's training schema, and the columns copied to the output (the label first)."""

    root: str
    model: RegisteredModel
    source: ModelInput
    passthrough: tuple[str, ...]

    @property
    def label(self) -> Optional[str]:
        return self.source.manifest.label_column

    def rows(self, min_blocks: int):
        """The input's rows as a Ray Dataset with tensor column `x`, in at least `min_blocks` blocks."""
        from pipelines.model_input import read_model_input

        return read_model_input(self.source, self.model.training_manifest, self.passthrough, min_blocks)


# the column the featurized input travels in through the Ray pipeline (datasets.reader)
MODEL_INPUT_COLUMN = "x"


def open_row_job(storage: Optional[str], reference: str, dataset: str, split: Optional[str],
                 passthrough: Sequence[str], output_columns: Callable[[RegisteredModel], Sequence[str]]) -> RowJob:
    """Resolve the model and check the input before any Ray work (score and embed start here).

    `output_columns(model)` names the columns the job writes itself; a passthrough column (or the
    label, always copied) of the same name would overwrite them or be overwritten, so it is refused."""
    from pipelines.layout import storage_root
    from pipelines.model_input import InputSchemaError, open_model_input
    from pipelines.storage import check_access

    root = storage_root(storage)
    check_access(root)
    model = resolve_model(root, reference)
    source = open_model_input(root, dataset, model.training_manifest, split, passthrough)
    label = source.manifest.label_column
    copied = tuple(dict.fromkeys([*([label] if label else []), *passthrough]))
    taken = {*output_columns(model), MODEL_INPUT_COLUMN}
    for column in copied:
        if column in taken:
            role = "the label column" if column == label else "passthrough column"
            raise InputSchemaError(f"{role} {column!r} of input {source.uri} has the name of a column this job "
                                   f"writes ({', '.join(sorted(taken))}); "
                                   + ("rename the label in the source and prepare it again" if column == label
                                      else "leave it out of --passthrough"))
    return RowJob(root, model, source, copied)


class ModelActor:
    """Base of the callable classes given to `map_batches`: the model is loaded once per actor,
    from the registry's safetensors (never unpickled), onto the GPU when the job has one."""

    def __init__(self, root: str, reference: str, use_gpu: bool):
        import torch

        from pipelines.registry import load_registered

        model, card = load_registered(root, reference)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.card = card
        self.manifest = DatasetManifest.model_validate(card["dataset"]["manifest"])


def map_with_model(dataset, actor_class: type[ModelActor], model: RegisteredModel, root: str,
                   compute: ComputeConfig, batch_size: Optional[int] = None, **actor_kwargs: Any):
    """`dataset.map_batches(actor_class)` on a fixed pool of `compute.actors` model actors."""
    import ray.data

    return dataset.map_batches(
        actor_class,
        fn_constructor_kwargs={"root": root, "reference": model.reference, "use_gpu": compute.use_gpu,
                               **actor_kwargs},
        compute=ray.data.ActorPoolStrategy(size=compute.actors),
        num_cpus=compute.cpus_per_actor,
        num_gpus=compute.gpus_per_actor if compute.use_gpu else None,
        batch_size=batch_size or compute.batch_size,
        batch_format="numpy",
        # a killed actor is restarted and its batches re-run: Ray Data's defaults for actor pools
        # (max_restarts/max_task_retries -1; passing them is deprecated), asserted by the fault tests;
        # the attempt's commit makes these at-least-once retries exactly-once
    )


def _attempt_parquet_sink(path: str, filesystem, attempt_id: str):
    from ray.data import Datasink

    class AttemptParquetSink(Datasink):
        """One Parquet file per write task, `part-<attempt>-<task>.parquet` directly under `path`.

        A retried task rewrites its own file (never a second copy). Each task returns the name and
        size of what it wrote, and the driver keeps that list (`written`): the commit lists exactly
        these files, whatever else appears under the prefix."""

        def __init__(self):
            self.written: list[tuple[str, int]] = []

        def write(self, blocks, ctx) -> list[tuple[str, int]]:
            import pyarrow as pa
            import pyarrow.parquet as pq
            from ray.data.block import BlockAccessor

            tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
            tables = [table for table in tables if table.num_rows]
            if not tables:
                return []
            table = pa.concat_tables(tables, promote_options="default")
            name = f"part-{attempt_id}-{ctx.task_idx:06d}.parquet"
            # pyarrow reports an upload error only at close(): the `with` makes it raise here
            with filesystem.open_output_stream(f"{path}/{name}") as stream:
                pq.write_table(table, stream, compression="zstd")
                size = stream.tell()
            return [(name, size)]

        def on_write_complete(self, write_result) -> None:
            self.written = [item for task in write_result.write_returns for item in (task or [])]

    return AttemptParquetSink()


def write_parts(dataset, commit) -> None:
    """Run the dataset and write it as Parquet parts of `commit`'s attempt under its prefix, recording
    each part the writers report (`OutputCommit.record`).

    An error meant for a person raised inside a Ray task (bad rows, a schema mismatch, storage that
    went away) is re-raised here as itself, not as Ray's wrapped task error.
    """
    from pipelines.storage import resolve

    location = resolve(commit.prefix_uri)
    sink = _attempt_parquet_sink(location.path, location.filesystem, commit.attempt_id)
    try:
        dataset.write_datasink(sink)
    except Exception as err:  # Ray wraps task errors in its own exception types
        cause = user_error_in(err)
        if cause is None:
            storage = storage_error_in(err, commit.prefix_uri)
            if storage is None:
                raise
            raise storage from None
        raise type(cause)(str(cause).strip().splitlines()[-1]) from None
    commit.record([name for name, _ in sink.written], [size for _, size in sink.written])


def storage_error_in(err: BaseException, prefix: str) -> Optional[UserError]:
    """A StorageError for an I/O failure of pyarrow or the network somewhere in a Ray task error's
    cause chain (the store went away, a bucket was removed), naming the output; None otherwise."""
    from pipelines.redaction import redact
    from pipelines.storage import S3Settings, StorageError

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError):
            detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            where = f" at {S3Settings.from_env().endpoint_label}" if prefix.startswith("s3://") else ""
            return StorageError(f"cannot write {prefix}{where}: {redact(detail)}; nothing was committed -- "
                                "re-run the job when storage is reachable")
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def user_error_in(err: BaseException) -> Optional[UserError]:
    """The first UserError in an exception's cause chain (Ray nests task errors two or three deep)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, UserError):
            return err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def read_attempt_parts(commit, columns: Optional[list[str]] = None) -> pa.Table:
    """This attempt's recorded Parquet parts as one table, before the commit: what a summary is computed from."""
    import pyarrow.parquet as pq

    from pipelines.storage import resolve

    location = resolve(commit.prefix_uri)
    paths = [resolve(uri).path for uri in commit.recorded_uris if uri.endswith(".parquet")]
    if not paths:
        return pa.table({name: pa.array([], type=pa.float64()) for name in columns or ()})
    return pa.concat_tables([pq.read_table(path, columns=columns, filesystem=location.filesystem)
                             for path in paths])


def output_root(root: str, output: str) -> str:
    """Where a job's outputs go: `output` as a URI, or a folder under the storage root (whose every
    segment must be a plain name: `..` would leave the root)."""
    if "://" in output or output.startswith("/"):
        return output.rstrip("/")
    segments = output.strip("/").split("/")
    for segment in segments:
        validate_name(segment, f"output folder {output!r}: segment")
    return f"{root}/{'/'.join(segments)}"
