"""Open a prepared dataset: its manifest, its shard URIs, and a check that the shards are intact."""
from __future__ import annotations

import hashlib

from pydantic import ValidationError

from pipelines.datasets.manifest import MANIFEST_NAME, DatasetManifest
from pipelines.errors import UserError


class DatasetError(UserError, ValueError):
    """A prepared dataset that is missing, incomplete or damaged; the message names it."""


def load_manifest(dataset: str) -> DatasetManifest:
    """The manifest of the dataset at URI `dataset`, only if its `_SUCCESS` says it is complete."""
    from pipelines.outputs import is_complete
    from pipelines.storage import exists, read_json

    if not exists(f"{dataset}/{MANIFEST_NAME}"):
        raise DatasetError(f"no dataset at {dataset} (no {MANIFEST_NAME}); run `vaepipe prepare` first")
    if not is_complete(dataset):
        raise DatasetError(f"dataset at {dataset} is incomplete (no _SUCCESS): a prepare was interrupted; "
                           "run `vaepipe prepare ... --overwrite` again")
    try:
        return DatasetManifest.model_validate(read_json(f"{dataset}/{MANIFEST_NAME}"))
    except ValidationError as err:
        raise DatasetError(f"{dataset}/{MANIFEST_NAME} is not a valid manifest: {err}") from None


def shard_uris(dataset: str, manifest: DatasetManifest) -> list[str]:
    return [f"{dataset}/{shard.key}" for shard in manifest.shards]


def verify_shards(dataset: str, manifest: DatasetManifest, checksums: bool = True) -> None:
    """Every shard exists with its recorded size (and, with `checksums`, its SHA-256)."""
    from pipelines.storage import list_files, read_bytes

    sizes = {entry.uri.rsplit("/", 1)[1]: entry.size for entry in list_files(dataset)}
    for shard in manifest.shards:
        uri = f"{dataset}/{shard.key}"
        if shard.key not in sizes:
            raise DatasetError(f"shard {uri} listed in the manifest is missing")
        if sizes[shard.key] != shard.size:
            raise DatasetError(f"shard {uri} has {sizes[shard.key]} bytes but the manifest says {shard.size}: "
                               "it was changed or truncated after prepare; re-run `vaepipe prepare --overwrite`")
        if checksums and hashlib.sha256(read_bytes(uri)).hexdigest() != shard.sha256:
            raise DatasetError(f"shard {uri} does not match its checksum in the manifest: it was changed after "
                               "prepare; re-run `vaepipe prepare --overwrite`")
