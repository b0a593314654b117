"""The model registry: models/<name>/<version>/ with weights (safetensors) and model.json.

A version is complete only with its `_SUCCESS`; `PROMOTED` names the version
that nightly scoring uses. References: `digits`, `digits@latest`, `digits@3`,
`digits@PROMOTED`, optionally prefixed with `models/`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import UserError
from pipelines.naming import validate_name
from pipelines.storage.layout import (CARD_FILE, INTERPRETATIONS, PROMOTED_FILE, SUMMARY_FILE, WEIGHTS_FILE, model_uri,
                                      model_version_uri)

# the version a reference means by NAME@PROMOTED (what nightly scoring uses)
PROMOTED = "PROMOTED"


class Calibration(BaseModel):
    """The anomaly threshold a card carries; every number finite (a diverged model is never registered,
    and a card edited to NaN must not flag every row)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    threshold: float
    contamination: float = Field(gt=0, lt=1)
    val_quantile_levels: list[float] = Field(min_length=2)
    val_quantiles: list[float] = Field(min_length=2)

    @model_validator(mode="after")
    def _curve(self):
        if len(self.val_quantile_levels) != len(self.val_quantiles):
            raise ValueError("val_quantile_levels and val_quantiles differ in length")
        if any(b < a for a, b in zip(self.val_quantiles, self.val_quantiles[1:])):
            raise ValueError("val_quantiles must not decrease")
        return self


class CardDataset(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    fingerprint: str
    manifest: dict


class ModelCard(BaseModel):
    """What every job reads from `model.json` (the rest of the card rides along unvalidated)."""

    model_config = ConfigDict(extra="allow")

    spec: dict
    dataset: CardDataset
    calibration: Calibration


def read_card(uri: str) -> dict:
    """The model card at `uri`, validated (see `ModelCard`), as a dict."""
    from pipelines.storage.objects import read_record

    return read_record(ModelCard, uri, "model card").model_dump()


class ModelNotFound(UserError, LookupError):
    """A model reference that names no registered version; the message lists what exists."""


class ModelLoadError(UserError, ValueError):
    """Registered weights that are not safetensors (a pickle, a damaged file) or do not fit the card's spec."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str  # a number, "latest" or "PROMOTED"

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        body = text.strip().removeprefix("models/").rstrip("/")
        name, _, version = body.partition("@")
        if "/" in name and not version:
            name, _, version = name.partition("/")
        version = version or "latest"
        if version not in ("latest", PROMOTED) and not version.isdigit():
            raise ModelNotFound(f"model reference {text!r}: version must be a number, 'latest' or 'PROMOTED'")
        return cls(validate_name(name, "model name"), version)


def list_versions(root: str, name: str) -> list[int]:
    """Registered (committed) versions of `name`, ascending."""
    from pipelines.storage.objects import list_files

    prefix = model_uri(root, name)
    versions = set()
    for entry in list_files(prefix, include_hidden=True):
        parts = entry.uri[len(prefix) + 1:].split("/")
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == "_SUCCESS":
            versions.add(int(parts[0]))
    return sorted(versions)


def resolve_version(root: str, ref: ModelRef) -> int:
    from pipelines.storage.objects import exists, read_bytes

    versions = list_versions(root, ref.name)
    if not versions:
        raise ModelNotFound(f"no registered versions of model {ref.name!r} under {model_uri(root, ref.name)}; "
                            "train one with `vaepipe train`")
    if ref.version == "latest":
        return versions[-1]
    if ref.version == PROMOTED:
        pointer = f"{model_uri(root, ref.name)}/{PROMOTED_FILE}"
        if not exists(pointer):
            raise ModelNotFound(f"model {ref.name!r} has no promoted version; promote one with "
                                f"`vaepipe promote {ref.name}@<version>` (versions: {versions})")
        text = read_bytes(pointer).decode(errors="replace").strip()
        if not text.isdigit():
            raise ModelNotFound(f"{pointer} holds {text[:40]!r}, not a version number; promote a version again "
                                f"with `vaepipe promote {ref.name}@<version>` (versions: {versions})")
        version = int(text)
    else:
        version = int(ref.version)
    if version not in versions:
        raise ModelNotFound(f"model {ref.name!r} has no version {version} (registered: {versions})")
    return version


def register_model(root: str, name: str, weights: bytes, card: dict) -> int:
    """Write a new version (weights, then model.json, then _SUCCESS) and return its number."""
    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.objects import StorageError, json_bytes

    for _ in range(20):
        existing = list_versions(root, name)
        version = (existing[-1] if existing else 0) + 1
        prefix = model_version_uri(root, name, version)
        try:
            with OutputCommit(prefix, job="register") as commit:
                commit.write(WEIGHTS_FILE, weights)
                stamped = {**card, "name": name, "version": version,
                           "registered_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                commit.write(CARD_FILE, json_bytes(stamped))
                commit.commit(expected_rows=None, metadata={"model": f"{name}@{version}"})
            return version
        except StorageError:
            # another registration took this version number first: take the next one
            if version in list_versions(root, name) or _leased(prefix):
                continue
            raise
    raise RuntimeError(f"could not allocate a version for model {name!r}")


def _leased(prefix: str) -> bool:
    from pipelines.storage.commit import LEASE
    from pipelines.storage.objects import exists

    return exists(f"{prefix}/{LEASE}")


def promote(root: str, ref: ModelRef) -> int:
    from pipelines.storage.objects import write_bytes

    version = resolve_version(root, ref)
    write_bytes(f"{model_uri(root, ref.name)}/{PROMOTED_FILE}", f"{version}\n".encode())
    return version


def load_registered(root: str, reference: str):
    """(VAE, model card) for a reference; the weights are loaded from safetensors, never unpickled."""
    from pipelines.storage.objects import read_bytes
    from vae_core import model_from_bytes

    ref = ModelRef.parse(reference)
    version = resolve_version(root, ref)
    prefix = model_version_uri(root, ref.name, version)
    card = read_card(f"{prefix}/{CARD_FILE}")
    weights = f"{prefix}/{WEIGHTS_FILE}"
    try:
        model = model_from_bytes(read_bytes(weights), json.dumps(card["spec"]))
    except ValueError as err:
        raise ModelLoadError(f"cannot load {weights}: {err}") from None
    return model, card


def read_interpretations(root: str, name: str, version: int) -> dict[str, dict]:
    """The committed `vaepipe interpret` outputs of a model version — the measures its card is read with, since
    a registered card is never rewritten — as {"<dataset>/<split>": summary}, in name order. One still being
    written (no `_SUCCESS`) is left out."""
    from pipelines.storage.commit import SUCCESS
    from pipelines.storage.objects import list_files, read_json

    folder = f"{model_version_uri(root, name, version)}/{INTERPRETATIONS}"
    found = {}
    for entry in list_files(folder, include_hidden=True):
        parts = entry.uri[len(folder) + 1:].split("/")
        if len(parts) == 3 and parts[2] == SUCCESS:
            prefix = entry.uri[:-len(SUCCESS) - 1]
            found["/".join(parts[:2])] = {"uri": prefix, **read_json(f"{prefix}/{SUMMARY_FILE}")}
    return dict(sorted(found.items()))
