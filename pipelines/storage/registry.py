"""The model registry: models/<name>/<version>/ with weights (safetensors) and model.json.

A version is complete only with its `_SUCCESS`. Aliases name versions: any number per model
(`champion`, `challenger`, ...); `PROMOTED` is the one nightly scoring uses. Each alias is a log of
create-only records, one per attempt to move it (who, when, from → to, why, won or refused), so two
promoters cannot both win and the history is the log itself. References: `digits`, `digits@latest`,
`digits@3`, `digits@<alias>` (`digits@PROMOTED`, `digits@champion`), optionally prefixed with `models/`.
"""
from __future__ import annotations

import getpass
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import UserError
from pipelines.naming import InvalidName, validate_name
from pipelines.storage.layout import (ALIASES_FOLDER, CARD_FILE, INTERPRETATIONS, PROMOTED_FILE, SUMMARY_FILE,
                                      WEIGHTS_FILE, alias_record_name, alias_uri, model_uri, model_version_uri,
                                      models_uri)

# the alias nightly scoring uses (NAME@PROMOTED), and the one `vaepipe promote` moves unless told otherwise
PROMOTED = "PROMOTED"
# who moved an alias, when the login name is not the right one to record (a CI job, a shared account)
ENV_PROMOTER = "VAEPIPE_PROMOTER"
# An alias is one path segment and also a valid MLflow alias, so the two registries can keep the same names:
# MLflow refuses `latest` and `v<number>` (they would read as versions), and so do we.
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


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


class AliasConflict(UserError, RuntimeError):
    """Another promotion moved the alias after this one read it; the message names the winner."""


def validate_alias(alias: str) -> str:
    """`alias` unchanged when it can name versions here and in MLflow; raise otherwise."""
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias.lower() == "latest" \
            or re.fullmatch(r"[vV]\d+", alias):
        raise InvalidName(f"alias {alias!r} is not allowed: it must start with a letter, use only letters, digits, "
                          "'_' or '-' (at most 64 characters), and not be 'latest' or 'v<number>' (those read as "
                          "versions)")
    return alias


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str  # a number, "latest" or an alias ("PROMOTED", "champion", ...)

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        body = text.strip().removeprefix("models/").rstrip("/")
        name, _, version = body.partition("@")
        if "/" in name and not version:
            name, _, version = name.partition("/")
        version = version or "latest"
        if version != "latest" and not version.isdigit():
            try:
                validate_alias(version)
            except InvalidName:
                raise ModelNotFound(f"model reference {text!r}: after '@' comes a version number, 'latest' or an "
                                    "alias (PROMOTED, champion, ...)") from None
        return cls(validate_name(name, "model name"), version)

    @property
    def alias(self) -> Optional[str]:
        """The alias this reference names, or None for a number or `latest`."""
        return None if self.version == "latest" or self.version.isdigit() else self.version


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

    versions = list_versions(root, ref.name)
    if not versions:
        raise ModelNotFound(f"no registered versions of model {ref.name!r} under {model_uri(root, ref.name)}; "
                            "train one with `vaepipe train`")
    if ref.version == "latest":
        return versions[-1]
    if ref.alias is not None:
        version = read_alias(root, ref.name, ref.alias).version
        if version is None:
            how = "" if ref.alias == PROMOTED else f" --alias {ref.alias}"
            raise ModelNotFound(f"model {ref.name!r} has no version with alias {ref.alias!r}; set it with "
                                f"`vaepipe promote {ref.name}@<version>{how}` (versions: {versions})")
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


# --- aliases ----------------------------------------------------------------------------------------


class AliasRecord(BaseModel):
    """One attempt to move an alias, as stored: `moved` changed it, `refused` lost to a concurrent move."""

    model_config = ConfigDict(extra="forbid")

    alias: str
    sequence: int = Field(ge=1)
    outcome: Literal["moved", "refused"]
    version: int = Field(ge=1, description="the version the attempt moved (or meant to move) the alias to")
    from_version: Optional[int] = Field(None, description="where the alias pointed when the attempt read it")
    by: str
    at: str
    why: str = ""
    lost_to: Optional[int] = Field(None, description="refused: the sequence of the move that won")


@dataclass(frozen=True)
class AliasState:
    """Where an alias points (None: nowhere yet) and the last record read, which the next move must follow."""

    alias: str
    version: Optional[int]
    sequence: int  # 0: no record yet
    last_move: Optional[AliasRecord] = None


def promoter() -> str:
    """Who is moving an alias: $VAEPIPE_PROMOTER, else login@host."""
    if os.environ.get(ENV_PROMOTER):
        return os.environ[ENV_PROMOTER]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def alias_history(root: str, name: str, alias: str) -> list[AliasRecord]:
    """Every attempt to move `alias` of model `name`, oldest first (each record validated when read)."""
    from pipelines.storage.objects import StorageError, list_files, read_record

    prefix = alias_uri(root, name, validate_alias(alias))
    records = []
    for entry in list_files(prefix, recursive=False, include_hidden=True):
        file_name = entry.uri.rsplit("/", 1)[-1]
        if not re.fullmatch(r"\d{8}\.json", file_name):
            continue
        record = read_record(AliasRecord, entry.uri, "alias record")
        if record.sequence != int(file_name[:8]) or record.alias != alias:
            raise StorageError(f"{entry.uri} is not a valid alias record: it says {record.alias}#{record.sequence} — "
                               "it was changed or moved after it was written; restore it")
        records.append(record)
    return sorted(records, key=lambda record: record.sequence)


def read_alias(root: str, name: str, alias: str) -> AliasState:
    """Where `alias` points now: its last `moved` record; for PROMOTED without records, the PROMOTED
    pointer file older vaepipe versions wrote."""
    from pipelines.storage.objects import StorageError, exists, read_bytes

    history = alias_history(root, name, alias)
    moves = [record for record in history if record.outcome == "moved"]
    sequence = history[-1].sequence if history else 0
    if moves:
        return AliasState(alias, moves[-1].version, sequence, moves[-1])
    pointer = f"{model_uri(root, name)}/{PROMOTED_FILE}"
    if alias == PROMOTED and exists(pointer):
        text = read_bytes(pointer).decode(errors="replace").strip()
        if not text.isdigit():
            raise StorageError(f"{pointer} holds {text[:40]!r}, not a version number; promote a version again with "
                               f"`vaepipe promote {name}@<version>`")
        return AliasState(alias, int(text), sequence)
    return AliasState(alias, None, sequence)


def list_aliases(root: str, name: str) -> dict[str, int]:
    """alias → version, for every alias of `name` that points somewhere, by name."""
    from pipelines.storage.objects import list_files

    prefix = f"{model_uri(root, name)}/{ALIASES_FOLDER}"
    names = {entry.uri[len(prefix) + 1:].split("/")[0] for entry in list_files(prefix, include_hidden=True)}
    names |= {PROMOTED}  # it may live in the old pointer file only
    states = [read_alias(root, name, alias) for alias in sorted(names) if _ALIAS.match(alias)]
    return {state.alias: state.version for state in states if state.version is not None}


def list_models(root: str) -> list[str]:
    """Names of the models with at least one folder under models/, sorted."""
    from pipelines.storage.objects import list_files

    prefix = models_uri(root)
    return sorted({entry.uri[len(prefix) + 1:].split("/")[0] for entry in list_files(prefix, include_hidden=True)
                   if "/" in entry.uri[len(prefix) + 1:]})


def move_alias(root: str, name: str, alias: str, version: int, why: str, expected: AliasState,
               by: Optional[str] = None) -> AliasRecord:
    """Point `alias` at `version` if it still is as `expected` (what the caller read); returns the record.

    The move is the create-only write of the record after `expected.sequence`: of two promoters who read the
    same state, exactly one creates it. The other gets `AliasConflict` naming the winner, after recording its
    own refused attempt. A record that is itself a refusal does not move the alias, so a move that finds
    one in its place tries the next number."""
    from pipelines.storage.objects import check_conditional_writes, conditional_put, json_bytes, read_record

    validate_alias(alias)
    folder = alias_uri(root, name, alias)
    check_conditional_writes(folder)
    stamp = dict(alias=alias, version=version, from_version=expected.version, by=by or promoter(), why=why)
    sequence = expected.sequence + 1
    while True:
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        record = AliasRecord(sequence=sequence, outcome="moved", at=at, **stamp)
        uri = f"{folder}/{alias_record_name(sequence)}"
        if conditional_put(uri, json_bytes(record.model_dump(mode="json"))):
            break
        found = read_record(AliasRecord, uri, "alias record")
        if found.outcome == "moved":
            _record_refusal(folder, stamp, found)
            raise AliasConflict(
                f"alias {alias!r} of model {name!r} was moved to version {found.version} by {found.by} at "
                f"{found.at} ({found.why or 'no reason given'}) after this promotion read it at "
                f"{expected.version if expected.version is not None else 'no version'}; this promotion to "
                f"version {version} was refused and recorded — look at `vaepipe models show {name}` and "
                "promote again if it should still win")
        sequence += 1
    if alias == PROMOTED:
        # vaepipe before aliases read this file: a cluster image not yet upgraded still finds the promoted version
        from pipelines.storage.objects import write_bytes

        write_bytes(f"{model_uri(root, name)}/{PROMOTED_FILE}", f"{version}\n".encode())
    return record


def _record_refusal(folder: str, stamp: dict, winner: AliasRecord) -> None:
    from pipelines.storage.objects import conditional_put, json_bytes

    sequence = winner.sequence + 1
    while True:
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        record = AliasRecord(sequence=sequence, outcome="refused", at=at, lost_to=winner.sequence, **stamp)
        if conditional_put(f"{folder}/{alias_record_name(sequence)}", json_bytes(record.model_dump(mode="json"))):
            return
        sequence += 1


def promote(root: str, ref: ModelRef, alias: str = PROMOTED, why: str = "") -> int:
    """Point `alias` of the model at the version `ref` names (read, then a conditional move); returns it."""
    version = resolve_version(root, ref)
    move_alias(root, ref.name, alias, version, why, read_alias(root, ref.name, validate_alias(alias)))
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
