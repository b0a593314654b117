"""A prepared dataset read as input to a registered model: checked against the schema the model
was trained on, then featurized with the model's own preprocessing statistics.

The input may be any prepared dataset (tonight's partition, a hold-out set), so
its manifest is compared with the training manifest in the model card before
any Ray work starts: a mismatch is an error naming the columns or the shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from pipelines.batch.model_actors import RegisteredModel
from pipelines.datasets.manifest import DatasetManifest
from pipelines.errors import UserError


class InputSchemaError(UserError, ValueError):
    """Input whose schema does not match the model's training data; the message names the difference."""


@dataclass(frozen=True)
class ModelInput:
    uri: str
    manifest: DatasetManifest  # the input dataset's own manifest
    split: Optional[str]
    rows: int

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint


def schema_differences(data: DatasetManifest, trained: DatasetManifest) -> list[str]:
    """Human-readable differences that keep a model trained on `trained` from reading `data`."""
    if data.kind != trained.kind:
        return [f"it is a {data.kind} dataset but the model was trained on {trained.kind} data"]
    if data.kind == "image":
        problems = []
        if tuple(data.image.shape) != tuple(trained.image.shape):
            problems.append(f"images are {tuple(data.image.shape)} (C,H,W) but the model expects "
                            f"{tuple(trained.image.shape)}; prepare the input with --image-shape "
                            f"{','.join(map(str, trained.image.shape))}")
        if data.image.max_value != trained.image.max_value:
            problems.append(f"pixel range 0..{data.image.max_value} differs from the model's 0..{trained.image.max_value}")
        return problems
    problems = []
    have, want = set(data.feature_columns), set(trained.feature_columns)
    missing, extra = sorted(want - have), sorted(have - want)
    if missing and extra:
        problems.append(f"columns {missing} the model was trained on are missing and columns {extra} are new "
                        "(renamed?); rename them back or train a model on the new schema")
    elif missing:
        problems.append(f"columns {missing} the model was trained on are missing")
    elif extra:
        problems.append(f"columns {extra} were not in the model's training data; prepare the input with "
                        f"--columns {','.join(trained.feature_columns)}")
    trained_numeric = {c.name for c in trained.numeric}
    trained_levels = {c.name: set(c.levels) for c in trained.categorical}
    for column in data.numeric:
        if column.name in trained_levels:
            problems.append(f"column {column.name!r} is numeric but the model treats it as categorical; prepare the "
                            f"input with --categorical {column.name}, as the model's dataset was")
    for column in data.categorical:
        if column.name in trained_numeric:
            problems.append(f"column {column.name!r} is categorical but the model treats it as numeric; prepare the "
                            f"input with --numeric {column.name}, as the model's dataset was (a boolean column is "
                            "categorical unless declared numeric)")
        elif column.name in trained_levels:
            unseen = sorted(set(column.levels) - trained_levels[column.name])
            if unseen:
                problems.append(f"column {column.name!r} has levels {unseen} that were not in the training data "
                                f"(levels: {sorted(trained_levels[column.name])})")
    return problems


def open_model_input(root: str, dataset: str, trained: DatasetManifest, split: Optional[str],
                     passthrough: Sequence[str] = ()) -> ModelInput:
    """The input dataset at `dataset` (a name under datasets/ or a URI), checked for this model."""
    from pipelines.datasets.catalog import load_manifest, verify_shards
    from pipelines.storage.layout import resolve_dataset

    uri = resolve_dataset(root, dataset)
    manifest = load_manifest(uri)
    verify_shards(uri, manifest, checksums=False)
    problems = schema_differences(manifest, trained)
    if problems:
        raise InputSchemaError(f"input {uri} does not fit the model (trained on dataset {trained.name!r}): "
                               + "; ".join(problems))
    unknown = [c for c in passthrough if c not in manifest.arrow_schema]
    if unknown:
        raise InputSchemaError(f"passthrough column(s) {unknown} are not in input {uri} "
                               f"(columns: {sorted(manifest.arrow_schema)})")
    if split is not None and split not in manifest.split_rows:
        raise InputSchemaError(f"input {uri} has no split {split!r} (splits: {sorted(manifest.split_rows)})")
    rows = manifest.rows if split is None else manifest.split_rows[split]
    if rows == 0:
        where = f"split {split!r} of input {uri}" if split else f"input {uri}"
        raise InputSchemaError(f"{where} is empty (0 rows): nothing to score; check the dataset and --split")
    return ModelInput(uri, manifest, split, rows)


def read_model_input(source: ModelInput, trained: DatasetManifest, keep: Sequence[str], min_blocks: int):
    """Ray Dataset of the input's rows with tensor column `x`, preprocessed with the training statistics,
    in at least `min_blocks` blocks (one or more per model actor)."""
    from pipelines.datasets.reader import read_split

    # the input's shards, the model's statistics (standardization, level order)
    reading = trained.model_copy(update={"shards": source.manifest.shards})
    return read_split(source.uri, reading, source.split, keep=tuple(keep),
                      min_blocks=max(min_blocks, len(source.manifest.shards)))


def iter_model_input(source: ModelInput, trained: DatasetManifest, keep: Sequence[str], batch_size: int):
    """The input's rows as numpy batches read in this process (no Ray), featurized as `read_model_input`'s."""
    from pipelines.datasets.reader import iter_split_batches

    reading = trained.model_copy(update={"shards": source.manifest.shards})
    return iter_split_batches(source.uri, reading, source.split, keep=tuple(keep), batch_size=batch_size)


# the column the featurized input travels in through the Ray pipeline (datasets.reader)
MODEL_INPUT_COLUMN = "x"


@dataclass(frozen=True)
class RowInput:
    """The rows a row-wise batch verb (score, embed) reads: the input checked against the model's training
    schema, and the columns copied to the output (the label first)."""

    root: str
    model: RegisteredModel
    source: ModelInput
    passthrough: tuple[str, ...]

    @property
    def label(self) -> Optional[str]:
        return self.source.manifest.label_column

    @property
    def metadata(self) -> dict:
        """What the output's `_SUCCESS` records about its input."""
        return {"input": self.source.uri, "input_fingerprint": self.source.fingerprint, "split": self.source.split,
                "label": self.label, "rows_in": self.source.rows}

    def dataset(self, min_blocks: int):
        """The input's rows as a Ray Dataset with tensor column `x`, in at least `min_blocks` blocks."""
        return read_model_input(self.source, self.model.training_manifest, ("row_id", *self.passthrough),
                                min_blocks)

    def batches(self, batch_size: int):
        """The same rows as numpy batches of at most `batch_size` rows, read in this process (engine local)."""
        return iter_model_input(self.source, self.model.training_manifest, ("row_id", *self.passthrough),
                                batch_size)


def open_row_input(root: str, model: RegisteredModel, dataset: str, split: Optional[str], passthrough: Sequence[str],
                   output_columns: Sequence[str]) -> RowInput:
    """The input of a row-wise verb, checked before any Ray work.

    `output_columns` names the columns the verb writes itself; a passthrough column (or the label, always
    copied) of the same name would overwrite them or be overwritten, so it is refused."""
    source = open_model_input(root, dataset, model.training_manifest, split, passthrough)
    label = source.manifest.label_column
    copied = tuple(dict.fromkeys([*([label] if label else []), *passthrough]))
    taken = {*output_columns, MODEL_INPUT_COLUMN}
    for column in copied:
        if column in taken:
            role = "the label column" if column == label else "passthrough column"
            raise InputSchemaError(f"{role} {column!r} of input {source.uri} has the name of a column this job "
                                   f"writes ({', '.join(sorted(taken))}); "
                                   + ("rename the label in the source and prepare it again" if column == label
                                      else "leave it out of --passthrough"))
    return RowInput(root, model, source, copied)
