"""Atomic job outputs on storage without rename (docs/design.md, "Commit protocol").

A job writes under an output prefix like this::

    with OutputCommit("s3://vaepipe/scores/m/d/2026-11-25", job="score") as out:
        out.write("index.html", data)          # a file it writes itself, recorded as it goes
        out.record(names)                      # files a distributed writer reports it wrote
        out.commit(expected_rows=n, metadata={"model_version": "3"})

``__enter__`` takes a lease (a create-only ``_LEASE`` object), so a second job
for the same prefix fails fast. A heartbeat thread renews the lease while the
job runs (a write conditional on the version it last wrote, ``If-Match``); a
lease not renewed for its expiry (3 heartbeats by default, measured by the
store's clock) is dead whatever host held it, and taking it over is itself a
write conditional on the dead lease's version, so of two retries exactly one
takes it. ``commit`` checks the files this attempt
*recorded* — never whatever happens to lie under the prefix or share a name —
deletes other top-level files (parts of killed or retried attempts), and writes
the ``_SUCCESS`` manifest create-only. Readers trust the manifest
(``list_committed_parts``), never a glob, and a manifest's keys are checked to
be plain file names before anything is read or written by them. Both names
start with ``_``, so pyarrow's dataset discovery never reads them as data.
This module must not import ray.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.naming import validate_name
from pipelines.storage.layout import check_output_location
from pipelines.redaction import redact
from pipelines.storage.objects import (
    ObjectNotFound,
    StorageError,
    check_conditional_writes,
    conditional_put,
    delete_file,
    exists,
    join_uri,
    list_files,
    parse_record,
    put_if,
    read_record,
    read_versioned,
    resolve,
    write_bytes,
)

SUCCESS = "_SUCCESS"
LEASE = "_LEASE"
MANIFEST_KEYS = ("job", "attempt_id", "holder", "committed_at", "rows", "parts")
# The name a process gives its host in lease holders (default: the hostname). A pod's hostname is its
# own, but a test (or a host that is cloned) may need another identity.
ENV_LEASE_HOST = "VAEPIPE_LEASE_HOST"
DEFAULT_HEARTBEAT_SECONDS = 30.0
# a lease not renewed for this many heartbeats is dead: one missed renewal (a slow request) is not death
MISSED_HEARTBEATS = 3


class AlreadyComplete(StorageError):
    """The output prefix already has a ``_SUCCESS`` manifest."""


class CommittedPart(BaseModel):
    """One file of a committed output, as `_SUCCESS` lists it."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="the file's name directly under the output prefix")
    size: int = Field(ge=0)
    rows: Optional[int] = Field(None, ge=0)

    @field_validator("key")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # a key like "../x", "/etc/x" or "a/b" would make readers and copy-out act outside the prefix
        return validate_name(value, "part key")


class CommitManifest(BaseModel):
    """The `_SUCCESS` manifest: the protocol's fields; a job's own metadata rides along."""

    model_config = ConfigDict(extra="allow")

    job: str
    attempt_id: str
    rows: Optional[int] = None
    parts: list[CommittedPart]

    @field_validator("parts")
    @classmethod
    def _unique_keys(cls, parts: list[CommittedPart]) -> list[CommittedPart]:
        keys = [part.key for part in parts]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a part is listed twice: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
        return parts


class Lease(BaseModel):
    """The `_LEASE` record. `expires_after_seconds`: the holder is dead when the object has not been rewritten
    for this long by the store's clock; a lease without it (written before heartbeats) expires at `expires_at`."""

    model_config = ConfigDict(extra="allow")

    holder: str
    attempt_id: str
    acquired_at: datetime
    expires_at: datetime
    renewed_at: Optional[datetime] = None
    expires_after_seconds: Optional[float] = None


def lease_host() -> str:
    """The host part of this process's lease holder name: $VAEPIPE_LEASE_HOST, else the hostname."""
    return os.environ.get(ENV_LEASE_HOST) or socket.gethostname()


def is_complete(prefix_uri: str) -> bool:
    return exists(join_uri(prefix_uri, SUCCESS))


def already_complete(prefix_uri: str) -> AlreadyComplete:
    return AlreadyComplete(f"output at {prefix_uri} is already complete ({SUCCESS} exists); nothing to do -- pass "
                           "--overwrite to write it again")


def refuse_if_complete(prefix_uri: str, overwrite: bool) -> None:
    """`AlreadyComplete` before a job's slow preparation when its output is committed (and not `overwrite`);
    `OutputCommit` checks again when it takes the lease."""
    if not overwrite and is_complete(prefix_uri):
        raise already_complete(prefix_uri)


def read_success(prefix_uri: str) -> dict[str, Any]:
    """The validated ``_SUCCESS`` manifest of a committed output, as a dict."""
    uri = join_uri(prefix_uri, SUCCESS)
    try:
        manifest = read_record(CommitManifest, uri, f"{SUCCESS} manifest")
    except ObjectNotFound:
        raise StorageError(
            f"output at {prefix_uri} is incomplete (no {SUCCESS}): it is being written "
            "or a job failed; re-run the job"
        ) from None
    return manifest.model_dump()


def list_committed_parts(prefix_uri: str, suffix: str | None = ".parquet") -> list[str]:
    """URIs of the parts a committed output consists of, from its manifest: its data files
    (names ending in `suffix`), or every committed file with `suffix=None` (a PNG grid, a model card)."""
    return [join_uri(prefix_uri, part["key"]) for part in read_success(prefix_uri)["parts"]
            if suffix is None or part["key"].endswith(suffix)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class OutputCommit:
    """Context manager that makes a job's output appear all at once or not at all."""

    def __init__(self, prefix_uri: str, job: str, overwrite: bool = False,
                 heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS, lease_seconds: Optional[float] = None,
                 wait_for_expiry: bool = False, progress: Callable[[str], None] = lambda _: None):
        """`heartbeat_seconds`: how often the lease is renewed while the block runs. `lease_seconds`: how long
        a lease lives without renewal (default `MISSED_HEARTBEATS` heartbeats; 0 or less: dead at once, never
        renewed). `wait_for_expiry`: when another holder's lease is there, watch it up to its expiry -- renewed
        meanwhile: its holder lives, refused; not renewed: taken over -- instead of refusing at once."""
        check_output_location(prefix_uri)
        self.prefix_uri = resolve(prefix_uri).uri
        self.job = job
        self.overwrite = overwrite
        self.lease_seconds = MISSED_HEARTBEATS * heartbeat_seconds if lease_seconds is None else lease_seconds
        if self.lease_seconds > 0 and not 0 < heartbeat_seconds < self.lease_seconds:
            raise StorageError(f"a lease's heartbeat ({heartbeat_seconds} s) must be shorter than its expiry "
                               f"({self.lease_seconds} s), or one late renewal would let another job take it")
        self.heartbeat_seconds = heartbeat_seconds
        self.wait_for_expiry = wait_for_expiry
        self.progress = progress
        self._attempt_id = uuid.uuid4().hex[:12]
        self.holder = f"{job}@{lease_host()}:{os.getpid()}"
        self.took_over_from: Optional[str] = None  # the holder of the dead lease this attempt took over
        self._holds_lease = False
        self._lease_version: Optional[str] = None  # what the last write of our lease returned
        self._lease_lost = False
        self._lease_acquired_at: Optional[datetime] = None
        self._lease_guard = threading.Lock()  # one write of our lease at a time: heartbeat, commit, release
        self._heartbeat_stop = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self._recorded: dict[str, Optional[int]] = {}  # file name → size in bytes, when the writer said
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

    def part_name(self, index: int, ext: str = "parquet") -> str:
        return f"part-{self.attempt_id}-{index:05d}.{ext}"

    def part_uri(self, index: int, ext: str = "parquet") -> str:
        return join_uri(self.prefix_uri, self.part_name(index, ext))

    def write(self, name: str, data: bytes) -> str:
        """Write `data` as the file `name` directly under the prefix and record it as a part; its URI."""
        self._require_lease("write")
        uri = join_uri(self.prefix_uri, validate_name(name, "output file name"))
        write_bytes(uri, data)
        self._recorded[name] = len(data)
        return uri

    def record(self, names: Iterable[str], sizes: Optional[Iterable[Optional[int]]] = None) -> None:
        """Record files another writer put directly under the prefix (a Ray Data sink's own list)."""
        names = list(names)
        for name, size in zip(names, sizes if sizes is not None else [None] * len(names)):
            self._recorded[validate_name(name, "output file name")] = size

    @property
    def recorded_uris(self) -> list[str]:
        """URIs of the files recorded so far (what `commit` will list), sorted by name."""
        return [join_uri(self.prefix_uri, name) for name in sorted(self._recorded)]

    def __enter__(self) -> OutputCommit:
        check_conditional_writes(self.prefix_uri)
        if is_complete(self.prefix_uri) and not self.overwrite:
            raise already_complete(self.prefix_uri)
        self._take_lease()
        # A holder we waited on may have committed and released its lease: its output is the one to keep.
        if not self.overwrite and is_complete(self.prefix_uri):
            self._stop_heartbeat()
            self._release_lease()
            raise already_complete(self.prefix_uri)
        if self.overwrite:
            delete_file(self.success_uri)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop_heartbeat()
        if exc_type is None:
            self._release_lease()
            return
        # The job's own error is what a person needs to see; a lease we could not release (the
        # store is the thing that failed, often) only expires later, so it must not replace it.
        try:
            self._release_lease()
        except Exception as release_error:  # noqa: BLE001
            warnings.warn(f"could not release the lease {self.lease_uri} ({release_error}); it expires on its own",
                          stacklevel=2)

    # --- lease -------------------------------------------------------------

    def _lease_body(self) -> bytes:
        now = _now()
        self._lease_acquired_at = self._lease_acquired_at or now
        lease = {
            "holder": self.holder,
            "job": self.job,
            "attempt_id": self.attempt_id,
            "acquired_at": self._lease_acquired_at.isoformat(),
            "renewed_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=self.lease_seconds)).isoformat(),
            "expires_after_seconds": self.lease_seconds,
            "heartbeat_seconds": self.heartbeat_seconds,
        }
        return json.dumps(lease, indent=2).encode()

    def _take_lease(self) -> None:
        watched = None  # the version of another holder's lease we are waiting on
        while True:
            version = put_if(self.lease_uri, self._lease_body())
            if version is not None:
                return self._hold(version)
            try:
                current = read_versioned(self.lease_uri)
            except ObjectNotFound:
                continue  # released between our two requests: create it again
            lease = parse_record(Lease, current.data, self.lease_uri, "lease")
            if _lease_is_dead(lease, current.age_seconds):
                # Conditional on the dead lease's version: of two retries that both judged it dead, one wins.
                version = put_if(self.lease_uri, self._lease_body(), version=current.version)
                if version is None:
                    raise self._lease_busy(self._read_lease() or lease)
                self.took_over_from = lease.holder
                self.progress(f"took over the lease of {lease.holder} on {self.prefix_uri}: not renewed for "
                              f"{current.age_seconds:.0f} s")
                return self._hold(version)
            if not self.wait_for_expiry or (watched is not None and current.version != watched):
                raise self._lease_busy(lease)  # renewed while we watched (or not watched): its holder lives
            remaining = _lease_expiry(lease) - current.age_seconds
            if watched is None:
                self.progress(f"{self.prefix_uri} is leased by {lease.holder}, renewed {current.age_seconds:.0f} s "
                              f"ago: waiting up to {remaining:.0f} s -- renewed meanwhile, it is alive and this job "
                              "stops; not renewed, it is taken over")
            watched = current.version
            # poll a few times per expiry, so a live holder's renewal is seen soon after it happens
            time.sleep(max(0.2, min(remaining + 0.1, _lease_expiry(lease) / 6)))

    def _hold(self, version: str) -> None:
        self._holds_lease = True
        self._lease_version = version
        if self.lease_seconds > 0:
            self._heartbeat_stop.clear()
            self._heartbeat = threading.Thread(target=self._beat, name=f"lease heartbeat {self.lease_uri}",
                                               daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._heartbeat_stop.wait(self.heartbeat_seconds):
            try:
                self.renew_lease()
            except StorageError:
                pass  # the store is unreachable for now: the next beat tries again before the lease expires
            if self._lease_lost:
                return

    def _stop_heartbeat(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat is not None:
            # a renewal in flight when the lease is released finds it gone (or not ours) and changes nothing
            self._heartbeat.join(timeout=self.heartbeat_seconds)
        self._heartbeat = None

    def renew_lease(self) -> bool:
        """Rewrite our lease, conditional on the version we last wrote; False when it is no longer ours
        (another attempt took it over after it went unrenewed for its expiry). Storage errors raise."""
        with self._lease_guard:
            if not self._holds_lease or self._lease_lost:
                return False
            version = put_if(self.lease_uri, self._lease_body(), version=self._lease_version)
            if version is None:
                self._lease_lost = True
                return False
            self._lease_version = version
            return True

    def _read_lease(self) -> Lease | None:
        try:
            return read_record(Lease, self.lease_uri, "lease")
        except ObjectNotFound:
            return None

    def _lease_busy(self, lease: Lease | None) -> StorageError:
        holder = lease.holder if lease else "?"
        since = lease.acquired_at.isoformat() if lease else "?"
        until = (f"it expires {lease.expires_after_seconds:g} s after its last renewal"
                 if lease and lease.expires_after_seconds is not None
                 else f"it expires at {lease.expires_at.isoformat()}" if lease else "?")
        return StorageError(
            f"another job (holder {holder}) is writing {self.prefix_uri} "
            f"since {since}; wait for it, or delete the lease "
            f"{self.lease_uri} if that job is dead ({until})"
        )

    def _release_lease(self) -> None:
        if not self._holds_lease:
            return
        self._holds_lease = False
        current = self._read_lease()
        # Never delete a lease someone else took over after ours expired.
        if current is not None and current.attempt_id == self.attempt_id:
            delete_file(self.lease_uri)

    def _require_lease(self, what: str) -> None:
        if not self._holds_lease:
            raise StorageError(
                f"{what} of {self.prefix_uri} outside its `with OutputCommit(...)` block; "
                f"{what} inside the block"
            )

    def _confirm_lease(self) -> None:
        """Renew the lease once more before committing: an attempt whose lease was taken over (it went
        unrenewed for its expiry: the store unreachable, the process stalled) must not delete the new
        holder's parts or commit."""
        if self.lease_seconds > 0 and not self.renew_lease():
            raise StorageError(
                f"refusing to commit {self.prefix_uri}: attempt {self.attempt_id} lost its lease (not renewed "
                f"for {self.lease_seconds:g} s, then taken over by another attempt); no {SUCCESS} written -- "
                "that attempt commits the output"
            )

    # --- commit ------------------------------------------------------------

    def commit(self, expected_rows: int | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Verify the recorded files and write ``_SUCCESS``; returns the manifest.

        Only recorded files become parts. Other files directly under the prefix (parts of a killed
        or retried attempt, an older output's files) are deleted; anything in sub-folders is neither
        committed nor touched: it is not this job's to judge.
        """
        self._require_lease("commit")
        self._confirm_lease()
        metadata = dict(metadata or {})
        clashes = sorted(set(metadata) & set(MANIFEST_KEYS))
        if clashes:
            raise StorageError(f"metadata keys {clashes} are reserved for the {SUCCESS} manifest; rename them")
        if not self._recorded and expected_rows != 0:
            raise StorageError(
                f"refusing to commit {self.prefix_uri}: attempt {self.attempt_id} recorded no parts "
                f"(write them with OutputCommit.write or record them); no {SUCCESS} written"
            )

        present = {entry.path.rsplit("/", 1)[-1]: entry for entry in list_files(self.prefix_uri, recursive=False)}
        missing = sorted(name for name in self._recorded if name not in present)
        if missing:
            raise StorageError(f"refusing to commit {self.prefix_uri}: recorded part(s) {missing} are not there; "
                               f"no {SUCCESS} written -- re-run the job")
        for name, entry in present.items():
            if name not in self._recorded:
                delete_file(entry.uri)

        base = resolve(self.prefix_uri)
        parts = []
        for name in sorted(self._recorded):
            entry, size = present[name], self._recorded[name]
            if size is not None and entry.size != size:
                raise StorageError(f"refusing to commit {self.prefix_uri}: part {name} has {entry.size} bytes but "
                                   f"its writer wrote {size}; no {SUCCESS} written -- re-run the job")
            parts.append({"key": name, "size": entry.size,
                          "rows": _parquet_rows(entry, base.filesystem) if name.endswith(".parquet") else None})
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


def _lease_expiry(lease: Lease) -> float:
    if lease.expires_after_seconds is not None:
        return lease.expires_after_seconds
    return (lease.expires_at - (lease.renewed_at or lease.acquired_at)).total_seconds()


def _lease_is_dead(lease: Lease, age_seconds: float) -> bool:
    """Dead: its holder ran on this host and is gone, or the lease has not been rewritten for its expiry (by
    the store's clock, so no two machines' clocks are compared). A lease written before heartbeats carries
    only its holder's `expires_at`."""
    if _holder_is_dead(lease.holder):
        return True
    if lease.expires_after_seconds is None:
        return lease.expires_at <= _now()
    return age_seconds > lease.expires_after_seconds


def _holder_is_dead(holder: str) -> bool:
    """True when the lease holder ran on this host and its process no longer exists, so a job
    killed here (SIGKILL, OOM) can be re-run at once instead of after the lease expires."""
    host, _, pid = holder.partition("@")[2].rpartition(":")
    if host != lease_host() or not pid.isdigit():
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
    except ValueError as err:  # pyarrow's ArrowInvalid: the bytes are there but are not Parquet
        raise StorageError(f"part {entry.uri} is not a readable Parquet file ({err}); re-run the job") from None
    except OSError as err:
        raise StorageError(f"cannot read {entry.uri}: {redact(str(err))}") from None

