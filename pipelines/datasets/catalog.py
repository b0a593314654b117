"""Open a prepared dataset: its manifest, its shard URIs, and a check that the shards are intact."""
from __future__ import annotations

import hashlib

from pydantic import ValidationError

from pipelines.datasets.manifest import DatasetManifest, fingerprint_of
from pipelines.storage.layout import MANIFEST_FILE
from pipelines.errors import UserError


class DatasetError(UserError, ValueError):
    """A prepared dataset that is missing, incomplete or damaged; the message names it."""


def load_manifest(dataset: str) -> DatasetManifest:
    """The manifest of the dataset at URI `dataset`, only if its `_SUCCESS` says it is complete."""
    from pipelines.storage.commit import is_complete
    from pipelines.storage.objects import exists, read_json

    if not exists(f"{dataset}/{MANIFEST_FILE}"):
        raise DatasetError(f"no dataset at {dataset} (no {MANIFEST_FILE}); run `vaepipe prepare` first")
    if not is_complete(dataset):
        raise DatasetError(f"dataset at {dataset} is incomplete (no _SUCCESS): a prepare was interrupted; "
                           "run `vaepipe prepare ... --overwrite` again")
    uri = f"{dataset}/{MANIFEST_FILE}"
    raw = read_json(uri)
    try:
        manifest = DatasetManifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise DatasetError(f"{uri} is not a valid manifest: {field}: {first['msg']}; it was changed after "
                           "prepare — re-run `vaepipe prepare ... --overwrite`") from None
    if manifest.rows and not manifest.shards:
        raise DatasetError(f"{uri} is not a valid manifest: shards: it lists none for {manifest.rows} rows; "
                           "re-run `vaepipe prepare ... --overwrite`")
    if not isinstance(raw, dict) or fingerprint_of(raw) != manifest.fingerprint:
        raise DatasetError(f"{uri} does not match its own fingerprint: it was edited after prepare (a changed "
                           "split, row count or shard list would mislead every job that reads it); re-run "
                           "`vaepipe prepare ... --overwrite`")
    return manifest


def shard_uris(dataset: str, manifest: DatasetManifest) -> list[str]:
    return [f"{dataset}/{shard.key}" for shard in manifest.shards]


def verify_shards(dataset: str, manifest: DatasetManifest, checksums: bool = True) -> None:
    """Every shard exists with its recorded size and row count (from its own Parquet footer); with
    `checksums`, also its SHA-256, and the rows of each split add up to the manifest's counts."""
    import io

    import pyarrow.parquet as pq

    from pipelines.storage.objects import list_files, read_bytes, resolve

    sizes = {entry.uri.rsplit("/", 1)[1]: entry.size for entry in list_files(dataset, recursive=False)}
    location = resolve(dataset)
    split_rows = dict.fromkeys(manifest.split_rows, 0)
    for shard in manifest.shards:
        uri = f"{dataset}/{shard.key}"
        if shard.key not in sizes:
            raise DatasetError(f"shard {uri} listed in the manifest is missing")
        if sizes[shard.key] != shard.size:
            raise DatasetError(f"shard {uri} has {sizes[shard.key]} bytes but the manifest says {shard.size}: "
                               "it was changed or truncated after prepare; re-run `vaepipe prepare --overwrite`")
        if not checksums:
            footer = _footer_rows(f"{location.path}/{shard.key}", location.filesystem, uri)
            if footer != shard.rows:
                raise DatasetError(f"shard {uri} holds {footer} rows but the manifest (shards) says {shard.rows}; "
                                   "re-run `vaepipe prepare --overwrite`")
            continue
        data = read_bytes(uri)
        if hashlib.sha256(data).hexdigest() != shard.sha256:
            raise DatasetError(f"shard {uri} does not match its checksum in the manifest: it was changed after "
                               "prepare; re-run `vaepipe prepare --overwrite`")
        splits = pq.read_table(io.BytesIO(data), columns=["split"])["split"].to_pylist()
        if len(splits) != shard.rows:
            raise DatasetError(f"shard {uri} holds {len(splits)} rows but the manifest (shards) says {shard.rows}; "
                               "re-run `vaepipe prepare --overwrite`")
        for split in splits:
            if split not in split_rows:
                raise DatasetError(f"shard {uri} has rows of split {split!r}, which the manifest does not know")
            split_rows[split] += 1
    if checksums and split_rows != manifest.split_rows:
        raise DatasetError(f"the shards of {dataset} hold {split_rows} rows per split but the manifest (split_rows) "
                           f"says {manifest.split_rows}; re-run `vaepipe prepare --overwrite`")


def _footer_rows(path: str, filesystem, uri: str) -> int:
    import pyarrow.parquet as pq

    from pipelines.storage.objects import StorageError
    from pipelines.redaction import redact

    try:
        return pq.read_metadata(path, filesystem=filesystem).num_rows
    except ValueError as err:  # pyarrow's ArrowInvalid: the bytes are there but are not Parquet
        raise DatasetError(f"shard {uri} is not a readable Parquet file ({err}); it was changed after prepare — "
                           "re-run `vaepipe prepare --overwrite`") from None
    except OSError as err:  # the storage did not answer: not the dataset's fault
        raise StorageError(f"cannot read {uri}: {redact(str(err))}") from None
