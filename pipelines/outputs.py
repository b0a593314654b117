"""Atomic job outputs on storage without rename (DESIGN.md, "Commit protocol").

A job writes under an output prefix like this::

    with OutputCommit("s3://vaepipe/scores/m/d/2026-11-25", job="score") as out:
        write parts named out.part_uri(i) (or containing out.attempt_id)
        out.commit(expected_rows=n, metadata={"model_version": "3"})

``__enter__`` takes a lease (a create-only ``_LEASE`` object), so a second job
for the same prefix fails fast. ``commit`` checks this attempt's parts, deletes
leftovers of other attempts, and writes the ``_SUCCESS`` manifest create-only.
Readers trust the manifest (``list_committed_parts``), never a glob. Both
names start with ``_``, so pyarrow's dataset discovery never reads them as data.
This module must not import ray.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import pyarrow.parquet as pq

from pipelines.storage import (
    ObjectNotFound,
    StorageError,
    check_conditional_writes,
    conditional_put,
    delete_file,
    exists,
    join_uri,
    list_files,
    read_json,
    resolve,
)

SUCCESS = "_SUCCESS"
LEASE = "_LEASE"
MANIFEST_KEYS = ("job", "attempt_id", "holder", "committed_at", "rows", "parts")


class AlreadyComplete(StorageError):
    """The output prefix already has a ``_SUCCESS`` manifest."""


def is_complete(prefix_uri: str) -> bool:
    return exists(join_uri(prefix_uri, SUCCESS))


def read_success(prefix_uri: str) -> dict[str, Any]:
    """The ``_SUCCESS`` manifest of a committed output."""
    try:
        return read_json(join_uri(prefix_uri, SUCCESS))
    except ObjectNotFound:
        raise StorageError(
            f"output at {prefix_uri} is incomplete (no {SUCCESS}): it is being written "
            "or a job failed; re-run the job"
        ) from None


def list_committed_parts(prefix_uri: str, suffix: str | None = ".parquet") -> list[str]:
    """URIs of the parts a committed output consists of, from its manifest: its data files
    (names ending in `suffix`), or every committed file with `suffix=None` (a PNG grid, a model card)."""
    return [join_uri(prefix_uri, part["key"]) for part in read_success(prefix_uri)["parts"]
            if suffix is None or part["key"].endswith(suffix)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class OutputCommit:
    """Context manager that makes a job's output appear all at once or not at all."""

    def __init__(self, prefix_uri: str, job: str, overwrite: bool = False, lease_seconds: float = 3600):
        self.prefix_uri = resolve(prefix_uri).uri
        self.job = job
        self.overwrite = overwrite
        self.lease_seconds = lease_seconds
        self._attempt_id = uuid.uuid4().hex[:12]
        self.holder = f"{job}@{socket.gethostname()}:{os.getpid()}"
        self._holds_lease = False
        self.manifest: dict[str, Any] | None = None

    @property
    def attempt_id(self) -> str:
        """Short id of this attempt; every part it writes carries it in its name."""
        return self._attempt_id

    @property
    def success_uri(self) -> str:
        return join_uri(self.prefix_uri, SUCCESS)

    @property
    def lease_uri(self) -> str:
        return join_uri(self.prefix_uri, LEASE)

    def part_uri(self, index: int, ext: str = "parquet") -> str:
        return join_uri(self.prefix_uri, f"part-{self.attempt_id}-{index:05d}.{ext}")

    def __enter__(self) -> OutputCommit:
        check_conditional_writes(self.prefix_uri)
        if is_complete(self.prefix_uri) and not self.overwrite:
            raise AlreadyComplete(
                f"output at {self.prefix_uri} is already complete ({SUCCESS} exists); "
                "nothing to do -- pass --overwrite to write it again"
            )
        self._take_lease()
        if self.overwrite:
            delete_file(self.success_uri)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._release_lease()

    # --- lease -------------------------------------------------------------

    def _take_lease(self) -> None:
        now = _now()
        lease = {
            "holder": self.holder,
            "job": self.job,
            "attempt_id": self.attempt_id,
            "acquired_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=self.lease_seconds)).isoformat(),
        }
        body = json.dumps(lease, indent=2).encode()
        if conditional_put(self.lease_uri, body):
            self._holds_lease = True
            return
        current = self._read_lease()
        if current is not None and datetime.fromisoformat(current["expires_at"]) > now \
                and not _holder_is_dead(current.get("holder", "")):
            raise self._lease_busy(current)
        # The holder is dead (lease expired, or a killed process on this host) or just released it: take over.
        delete_file(self.lease_uri)
        if not conditional_put(self.lease_uri, body):
            raise self._lease_busy(self._read_lease() or current or {})
        self._holds_lease = True

    def _read_lease(self) -> dict[str, Any] | None:
        try:
            return read_json(self.lease_uri)
        except ObjectNotFound:
            return None

    def _lease_busy(self, lease: dict[str, Any]) -> StorageError:
        return StorageError(
            f"another job (holder {lease.get('holder', '?')}) is writing {self.prefix_uri} "
            f"since {lease.get('acquired_at', '?')}; wait for it, or delete the lease "
            f"{self.lease_uri} if that job is dead (it expires at {lease.get('expires_at', '?')})"
        )

    def _release_lease(self) -> None:
        if not self._holds_lease:
            return
        self._holds_lease = False
        current = self._read_lease()
        # Never delete a lease someone else took over after ours expired.
        if current is not None and current.get("attempt_id") == self.attempt_id:
            delete_file(self.lease_uri)

    # --- commit ------------------------------------------------------------

    def commit(self, expected_rows: int | None = None, metadata: dict[str, Any] | None = None,
               files: Sequence[str] = ()) -> dict[str, Any]:
        """Verify this attempt's parts and write ``_SUCCESS``; returns the manifest.

        `files` names outputs with fixed names (a registry's ``model.json``): the
        lease makes this attempt their only writer, so they count as its parts.
        """
        if not self._holds_lease:
            raise StorageError(
                f"commit of {self.prefix_uri} outside its `with OutputCommit(...)` block; "
                "commit inside the block, once"
            )
        metadata = dict(metadata or {})
        clashes = sorted(set(metadata) & set(MANIFEST_KEYS))
        if clashes:
            raise StorageError(f"metadata keys {clashes} are reserved for the {SUCCESS} manifest; rename them")

        ours, theirs = [], []
        for entry in list_files(self.prefix_uri):
            name = entry.path.rsplit("/", 1)[-1]
            (ours if self.attempt_id in name or name in files else theirs).append(entry)
        # Parts of killed or retried attempts are not part of this output.
        for entry in theirs:
            delete_file(entry.uri)
        if not ours and expected_rows != 0:
            raise StorageError(
                f"refusing to commit {self.prefix_uri}: no parts of attempt {self.attempt_id} "
                "found (name them with OutputCommit.part_uri or include attempt_id); "
                f"no {SUCCESS} written"
            )

        base = resolve(self.prefix_uri)
        parts = []
        for entry in ours:
            parts.append({
                "key": entry.path[len(base.path) + 1:],
                "size": entry.size,
                "rows": _parquet_rows(entry, base.filesystem) if entry.path.endswith(".parquet") else None,
            })
        counted = [p["rows"] for p in parts if p["rows"] is not None]
        rows = sum(counted) if counted or not parts else None
        if expected_rows is not None and rows != expected_rows:
            raise StorageError(
                f"refusing to commit {self.prefix_uri}: its parts hold {rows} rows but the "
                f"job produced {expected_rows}; no {SUCCESS} written -- re-run the job"
            )

        manifest = {
            **metadata,
            "job": self.job,
            "attempt_id": self.attempt_id,
            "holder": self.holder,
            "committed_at": _now().isoformat(),
            "rows": rows,
            "parts": parts,
        }
        body = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()
        if not conditional_put(self.success_uri, body):
            raise StorageError(
                f"{self.success_uri} appeared while this job held the lease; another writer "
                "ignored the lease -- inspect the output and re-run with --overwrite"
            )
        self.manifest = manifest
        return manifest


def _holder_is_dead(holder: str) -> bool:
    """True when the lease holder ran on this host and its process no longer exists, so a job
    killed here (SIGKILL, OOM) can be re-run at once instead of after the lease expires."""
    host, _, pid = holder.partition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _parquet_rows(entry, filesystem) -> int:
    try:
        return pq.read_metadata(entry.path, filesystem=filesystem).num_rows
    except (OSError, ValueError) as err:
        raise StorageError(
            f"part {entry.uri} is not a readable Parquet file ({err}); re-run the job"
        ) from None
