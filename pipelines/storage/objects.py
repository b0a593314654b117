"""Storage addressed by URI: ``s3://bucket/prefix`` or a local path.

Endpoint, region and credentials come only from the standard AWS environment
variables / profile (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` ...). They are never logged, never
written anywhere, and never appear in an error message.

pyarrow does the data path (Parquet, datasets, listing); boto3 does what pyarrow
cannot: conditional writes (``If-None-Match: *`` to create, ``If-Match: <ETag>`` to
replace what was read), reads that return an object's version and age, and cheap
access checks.
This module must not import ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipelines.errors import UserError
from pipelines.redaction import redact

ENV_MAX_ATTEMPTS = "VAEPIPE_S3_MAX_ATTEMPTS"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_REGION = "us-east-1"
# Connect fails fast on a dead endpoint; requests get room for a 100+ MB part upload.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 120.0

M = TypeVar("M")

STORE_HINT = "is the store running? for the embedded store run `vaepipe storage up`"
POLICY_HINT = ("check the policy of the identity in use: the one vaepipe's jobs need is rendered by "
               "`python3 pipelines/storage/policy.py <storage root>` from infra/iam/vaepipe-bucket-policy.json")
CREDENTIAL_HINT = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE"
# Error codes that mean the request's credentials were not accepted, as boto3 and as pyarrow spell them.
# AccessDenied is not among them: it answers an authenticated request the identity may not make.
CREDENTIAL_ERROR_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                                    "TokenRefreshRequired", "InvalidClientTokenId"})
PYARROW_CREDENTIAL_ERRORS = frozenset({"INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "INVALID_CLIENT_TOKEN_ID",
                                       "INVALID_SIGNATURE", "INCOMPLETE_SIGNATURE", "MISSING_AUTHENTICATION_TOKEN",
                                       "UNRECOGNIZED_CLIENT"})
# The IAM action that authorizes each S3 operation as pyarrow names it in its errors.
IAM_ACTION_OF_OPERATION = {
    "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject", "CopyObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "HeadBucket": "s3:ListBucket", "ListObjects": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads", "ListParts": "s3:ListMultipartUploadParts",
    "CreateBucket": "s3:CreateBucket",
}
_PYARROW_AWS_ERROR = re.compile(r"AWS Error (\S+) during (\w+) operation")
_PYARROW_KEY = re.compile(r"key '([^']*)' in bucket '([^']*)'")


class StorageError(UserError):
    """Something about storage is wrong; the message says what and what to do."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object or file at a URI does not exist."""


@dataclass(frozen=True)
class S3Settings:
    """S3 connection settings read from the environment.

    Also the cache key for filesystems and clients, so a changed credential
    (or endpoint) in the environment gets a fresh client, never a stale one.
    """

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_env(cls) -> S3Settings:
        env = os.environ
        raw_attempts = env.get(ENV_MAX_ATTEMPTS, str(DEFAULT_MAX_ATTEMPTS))
        try:
            max_attempts = int(raw_attempts)
            if max_attempts < 1:
                raise ValueError
        except ValueError:
            raise StorageError(
                f"{ENV_MAX_ATTEMPTS}={raw_attempts!r} is not a positive integer; "
                f"set it to e.g. {DEFAULT_MAX_ATTEMPTS} or unset it"
            ) from None
        name = "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
        endpoint = env.get(name) or None
        if endpoint:
            parsed = urlparse(endpoint)
            if parsed.username is not None or parsed.password is not None:
                # never echoed: the part before '@' is a secret the user put in the wrong place
                raise StorageError(
                    f"{name} holds credentials (user:password@ before the host); remove them from the URL "
                    "and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead"
                )
            if parsed.scheme not in ("http", "https"):
                raise StorageError(f"{name}={redact(endpoint)!r} must start with http:// or https://")
        return cls(
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            profile=env.get("AWS_PROFILE") or None,
            max_attempts=max_attempts,
        )

    @property
    def endpoint_label(self) -> str:
        """Where requests go, for messages (never includes credentials)."""
        return redact(self.endpoint_url) if self.endpoint_url else f"AWS S3 (region {self.region})"


@dataclass(frozen=True)
class Location:
    """A resolved URI: the filesystem that holds it and the path on it."""

    uri: str
    filesystem: pafs.FileSystem
    path: str  # S3: "bucket/key" without scheme; local: absolute path

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def bucket(self) -> str:
        self._require_s3("bucket")
        return self.path.split("/", 1)[0]

    @property
    def key(self) -> str:
        self._require_s3("key")
        return self.path.split("/", 1)[1] if "/" in self.path else ""

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def child(self, *parts: str) -> Location:
        return Location(join_uri(self.uri, *parts), self.filesystem, _join_path(self.path, *parts))

    def _require_s3(self, what: str) -> None:
        if not self.is_s3:
            raise StorageError(f"{self.uri} is a local path; it has no S3 {what}")


@dataclass(frozen=True)
class FileEntry:
    uri: str
    path: str
    size: int


def _join_path(base: str, *parts: str) -> str:
    pieces = [base.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
    return "/".join(pieces)


def join_uri(base: str, *parts: str) -> str:
    """``join_uri("s3://b/runs", "a", "x.json") == "s3://b/runs/a/x.json"``."""
    return _join_path(base, *parts)


def resolve(uri: str) -> Location:
    """Parse a URI into a Location; S3 filesystems are built from the environment.

    S3 keys are literal on AWS (`..` and `//` are kept as characters, SeaweedFS and MinIO
    normalise them), so an S3 or file:// URI with such a segment would mean different
    objects on different servers: it is refused, as are credentials in the URI."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "file"):
        check_uri_is_plain(uri, parsed)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not bucket:
            raise StorageError(f"{uri!r} has no bucket; write it as s3://bucket/prefix")
        key = parsed.path.strip("/")
        path = f"{bucket}/{key}" if key else bucket
        return Location(f"s3://{path}", s3_filesystem(), path)
    if parsed.scheme == "file":
        local = parsed.path
    elif parsed.scheme == "":
        local = uri
    else:
        raise StorageError(
            f"unsupported storage URI {redact(uri)!r}: use s3://bucket/prefix or a local path"
        )
    absolute = os.path.abspath(os.path.expanduser(local))
    return Location(absolute, _local_filesystem(), absolute)


def check_uri_is_plain(uri: str, parsed) -> None:
    """Refuse credentials, `..`, `.` and empty segments in an s3:// or file:// URI (see `resolve`)."""
    if "@" in parsed.netloc:
        raise StorageError(f"storage URI {redact(uri)!r} holds credentials before its host; remove them: "
                           "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    body = parsed.path.removeprefix("/").removesuffix("/")
    problems = {"": "an empty segment (//)", ".": "a '.' segment", "..": "a '..' segment"}
    found = [problems[segment] for segment in body.split("/") if body and segment in problems]
    found += ["a backslash"] if "\\" in body else []
    if found:
        raise StorageError(f"storage URI {uri!r} has {found[0]} in its path; write the prefix plainly "
                           "(s3://bucket/a/b): S3 keeps such segments literally, so it would name other objects "
                           "on AWS than on MinIO or SeaweedFS")


def resolve_without_secrets(uri: str) -> Location:
    """Like `resolve`, but an S3 filesystem that holds no credentials: the AWS SDK reads them from the
    environment (or profile, or instance role) of whichever process uses it. For filesystems that Ray
    pickles into state it writes to storage (Tune's tuner.pkl and experiment state), which must never
    contain a secret."""
    location = resolve(uri)
    if not location.is_s3:
        return location
    settings = replace(S3Settings.from_env(), access_key=None, secret_key=None, session_token=None)
    return Location(location.uri, s3_filesystem(settings), location.path)


@lru_cache(maxsize=1)
def _local_filesystem() -> pafs.LocalFileSystem:
    return pafs.LocalFileSystem()


def s3_filesystem(settings: S3Settings | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3FileSystem for the environment's settings (cached)."""
    return _s3_filesystem(settings or S3Settings.from_env())


@lru_cache(maxsize=16)
def _s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = dict(
        region=settings.region,
        connect_timeout=CONNECT_TIMEOUT_S,
        request_timeout=REQUEST_TIMEOUT_S,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=settings.max_attempts),
    )
    if settings.endpoint_url:
        # pyarrow's S3FileSystem ignores AWS_ENDPOINT_URL (apache/arrow#49643).
        parsed = urlparse(settings.endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    if settings.access_key and settings.secret_key:
        kwargs["access_key"] = settings.access_key
        kwargs["secret_key"] = settings.secret_key
        if settings.session_token:
            kwargs["session_token"] = settings.session_token
    return pafs.S3FileSystem(**kwargs)


def s3_client(settings: S3Settings | None = None):
    """A boto3 S3 client for the environment's settings (cached)."""
    return _s3_client(settings or S3Settings.from_env())


@lru_cache(maxsize=16)
def _s3_client(settings: S3Settings):
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=REQUEST_TIMEOUT_S,
        # Virtual-host addressing needs DNS per bucket; S3-compatible servers want paths.
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    if settings.access_key and settings.secret_key:
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            aws_session_token=settings.session_token,
            region_name=settings.region,
        )
    else:
        session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


def clear_caches() -> None:
    """Forget cached filesystems, clients and probes (tests that swap endpoints)."""
    _s3_filesystem.cache_clear()
    _s3_client.cache_clear()
    _probe_conditional_writes.cache_clear()


# --- reading and writing ---------------------------------------------------


def read_bytes(uri: str) -> bytes:
    loc = resolve(uri)
    try:
        with loc.filesystem.open_input_stream(loc.path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise ObjectNotFound(f"no object at {loc.uri}") from None
    except OSError as err:
        raise _io_error("read", loc, err) from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write an object whole: readers see the old content or the new, never a part."""
    loc = resolve(uri)
    if not loc.is_s3:
        try:
            write_local_atomically(Path(loc.path), data)
        except OSError as err:
            raise _io_error("write", loc, err) from None
        return
    try:
        # pyarrow reports upload errors only at close(): the `with` makes them raise.
        with loc.filesystem.open_output_stream(loc.path) as stream:
            stream.write(data)
    except OSError as err:
        raise _io_error("write", loc, err) from None


def _temp_file_beside(path: Path, data: bytes) -> str:
    """`data` in a hidden temp file in `path`'s folder, so a rename or link to `path` is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            tmp_file.write(data)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_local_atomically(path: Path, data: bytes) -> None:
    tmp = _temp_file_beside(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(uri: str) -> Any:
    return parse_json(read_bytes(uri), uri)


def parse_json(data: bytes, uri: str) -> Any:
    """The JSON document `data` read from `uri` (named in the error when it is not JSON)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise StorageError(f"{uri} is not valid JSON ({err}); rewrite or delete it") from None


def read_record(model: type[M], uri: str, what: str) -> M:
    """`model` (a pydantic model) validated from the JSON at `uri`. A hand-edited or damaged file is a
    StorageError naming the file and its first bad field, not a KeyError or a traceback later."""
    return parse_record(model, read_bytes(uri), uri, what)


def parse_record(model: type[M], data: bytes, uri: str, what: str) -> M:
    """`read_record` of bytes already read from `uri`."""
    from pydantic import ValidationError

    try:
        return model.model_validate(parse_json(data, uri))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise StorageError(f"{uri} is not a valid {what}: {field}: {first['msg']} — it was changed or damaged "
                           "after it was written; re-run the job that writes it") from None


def json_bytes(obj: Any) -> bytes:
    """`obj` as the JSON text every stored record uses (indented, sorted keys)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, json_bytes(obj))


def exists(uri: str) -> bool:
    loc = resolve(uri)
    try:
        return loc.filesystem.get_file_info(loc.path).type != pafs.FileType.NotFound
    except OSError as err:
        raise _io_error("check", loc, err) from None


def list_files(uri_prefix: str, recursive: bool = True, include_hidden: bool = False) -> list[FileEntry]:
    """Files under a prefix, sorted by path.

    Skips directory markers and, unless include_hidden, any name (at any level
    below the prefix) starting with ``_`` or ``.`` -- the same rule as pyarrow's
    dataset discovery, so manifests and leases never look like data.
    """
    loc = resolve(uri_prefix)
    selector = pafs.FileSelector(loc.path, recursive=recursive, allow_not_found=True)
    try:
        infos = loc.filesystem.get_file_info(selector)
    except OSError as err:
        raise _io_error("list", loc, err) from None
    base = loc.path.rstrip("/") + "/"
    entries = []
    for info in infos:
        if info.type != pafs.FileType.File or info.path.endswith("/"):
            continue
        relative = info.path[len(base):] if info.path.startswith(base) else info.base_name
        if not include_hidden and any(part[:1] in ("_", ".") for part in relative.split("/")):
            continue
        uri = f"s3://{info.path}" if loc.is_s3 else info.path
        entries.append(FileEntry(uri=uri, path=info.path, size=info.size))
    return sorted(entries, key=lambda e: e.path)


def delete_file(uri: str, missing_ok: bool = True) -> None:
    loc = resolve(uri)
    try:
        loc.filesystem.delete_file(loc.path)
    except FileNotFoundError:
        if not missing_ok:
            raise ObjectNotFound(f"no object at {loc.uri}") from None
    except OSError as err:
        raise _io_error("delete", loc, err) from None


def delete_prefix(uri: str) -> None:
    """Delete everything under a prefix (a missing prefix is fine)."""
    loc = resolve(uri)
    if loc.is_s3 and not loc.key:
        raise StorageError(
            f"refusing to delete the whole bucket {loc.uri}; name a prefix inside it"
        )
    fs = loc.filesystem
    try:
        info = fs.get_file_info(loc.path)
        if info.type == pafs.FileType.File:
            fs.delete_file(loc.path)
        elif info.type == pafs.FileType.Directory:
            if loc.is_s3:
                fs.delete_dir(loc.path)
            else:
                shutil.rmtree(loc.path)
    except OSError as err:
        raise _io_error("delete", loc, err) from None


def _io_error(verb: str, loc: Location, err: OSError) -> StorageError:
    """A pyarrow error as a message for people; S3 authorization and credential errors say which."""
    if not loc.is_s3:
        # strerror alone for local errors: str(err) repeats the path, and we name it already
        return StorageError(f"cannot {verb} {loc.uri}: {redact(err.strerror or str(err))}")
    endpoint = S3Settings.from_env().endpoint_label
    failed = _PYARROW_AWS_ERROR.search(str(err))
    if failed:
        code, operation = failed.groups()
        # pyarrow names the key it was working on, which may differ from `loc` (a multipart part, a parent marker).
        named = _PYARROW_KEY.search(str(err))
        target = f"s3://{named.group(2)}/{named.group(1)}".rstrip("/") if named else loc.uri
        if code in PYARROW_CREDENTIAL_ERRORS:
            return _credentials_rejected(endpoint, loc.bucket)
        if code == "ACCESS_DENIED":
            action = IAM_ACTION_OF_OPERATION.get(operation, f"s3:{operation}")
            return _not_authorized(action, target, endpoint, head=operation.startswith("Head"))
    return StorageError(f"cannot {verb} {loc.uri} at {endpoint}: {redact(str(err))}")


# --- S3 control plane (boto3) ----------------------------------------------


def check_access(uri: str, write: bool = False) -> None:
    """One cheap request that fails with a clear message if ``uri`` is unusable.

    Call it before any Ray Data work: Ray can hang silently on bad S3
    credentials. With ``write=True`` also proves the credentials may write
    under ``uri`` (a tiny hidden probe object is put there and deleted): pass the
    prefix the job will write, which is the one its identity may write.
    """
    loc = resolve(uri)
    if not loc.is_s3:
        _check_local_access(Path(loc.path), write)
        return
    settings = S3Settings.from_env()
    client = s3_client(settings)
    try:
        client.head_bucket(Bucket=loc.bucket)
    except Exception as err:  # noqa: BLE001 -- translated into a message for people
        reason = _reason_for_forbidden_head(client, loc.bucket, err)
        raise _s3_error(reason, settings, loc.bucket, "s3:ListBucket", f"s3://{loc.bucket}") from None
    if write:
        # Under `uri` itself: the prefix about to be written is the one the identity may write.
        probe = loc.child(f"_vaepipe_write_probe-{uuid.uuid4().hex[:8]}")
        try:
            client.put_object(Bucket=loc.bucket, Key=probe.key, Body=b"")
        except Exception as err:  # noqa: BLE001
            raise _s3_error(err, settings, loc.bucket, "s3:PutObject", probe.uri) from None
        try:
            client.delete_object(Bucket=loc.bucket, Key=probe.key)
        except Exception as err:  # noqa: BLE001
            raise _s3_error(err, settings, loc.bucket, "s3:DeleteObject", probe.uri) from None


def _reason_for_forbidden_head(client, bucket: str, err: Exception) -> Exception:
    """A HEAD answer has no body, so its 403 does not say whether the credentials were rejected or
    the identity is not authorized; an empty listing of the same bucket (a GET) answers with the code."""
    if _error_code(err) not in ("403", "Forbidden"):
        return err
    try:
        client.list_objects_v2(Bucket=bucket, MaxKeys=0)
    except Exception as reason:  # noqa: BLE001
        return reason
    return err


def _check_local_access(path: Path, write: bool) -> None:
    if not write:
        if not path.exists():
            raise StorageError(f"{path} does not exist; check the path or write there first")
        return
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise StorageError(f"cannot write under {path}: {existing} is a file, not a directory")
    try:
        # a real write says why it cannot be done (read-only file system, permission, full disk)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise StorageError(f"cannot write under {path}: {existing}: {err.strerror or err}") from None


def ensure_bucket(uri: str, settings: S3Settings | None = None) -> None:
    """Create the URI's bucket if missing (used by `vaepipe storage up` and the demo)."""
    loc = resolve(uri)
    if not loc.is_s3:
        try:
            Path(loc.path).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _io_error("create", loc, err) from None
        return
    settings = settings or S3Settings.from_env()
    client = s3_client(settings)
    try:
        client.head_bucket(Bucket=loc.bucket)
        return
    except Exception as err:  # noqa: BLE001
        if _error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
            reason = _reason_for_forbidden_head(client, loc.bucket, err)
            raise _s3_error(reason, settings, loc.bucket, "s3:ListBucket", f"s3://{loc.bucket}") from None
    try:
        kwargs: dict[str, Any] = {"Bucket": loc.bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        client.create_bucket(**kwargs)
    except Exception as err:  # noqa: BLE001
        if _error_code(err) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise _s3_error(err, settings, loc.bucket, "s3:CreateBucket", f"s3://{loc.bucket}") from None


def conditional_put(uri: str, data: bytes) -> bool:
    """Create-only write. True if this call created the object, False if it existed.

    S3: ``PutObject`` with ``If-None-Match: *``. Local: a hard link of a complete
    temp file, which fails if the name exists -- atomic either way.
    """
    return put_if(uri, data) is not None


@dataclass(frozen=True)
class VersionedObject:
    """An object's bytes, the version a conditional write names to replace exactly these bytes, and how long
    ago it was last written by the store's own clock (never compared with this machine's clock)."""

    data: bytes
    version: str
    age_seconds: float


def read_versioned(uri: str) -> VersionedObject:
    """The object at `uri` with its version and age; `ObjectNotFound` when there is none.

    S3: the ETag, and the response's ``Date`` minus the object's ``Last-Modified`` (both the server's clock,
    1 s resolution). Local: a hash of the bytes, and now minus the file's modification time.
    """
    loc = resolve(uri)
    if not loc.is_s3:
        path = Path(loc.path)
        try:
            data = path.read_bytes()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {loc.uri}") from None
        except OSError as err:
            raise _io_error("read", loc, err) from None
        return VersionedObject(data, _local_version(data), max(age, 0.0))
    settings = S3Settings.from_env()
    try:
        response = s3_client(settings).get_object(Bucket=loc.bucket, Key=loc.key)
        data = response["Body"].read()
    except Exception as err:  # noqa: BLE001
        if _error_code(err) in ("NoSuchKey", "404"):
            raise ObjectNotFound(f"no object at {loc.uri}") from None
        raise _s3_error(err, settings, loc.bucket, "s3:GetObject", loc.uri) from None
    served_at = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])
    age = (served_at - response["LastModified"]).total_seconds()
    return VersionedObject(data, response["ETag"], max(age, 0.0))


def put_if(uri: str, data: bytes, version: str | None = None) -> str | None:
    """A conditional write; the new object's version, or None when the condition did not hold.

    `version` None: create-only (``If-None-Match: *``), None when the object exists. `version` given
    (from `read_versioned` or an earlier `put_if`): replace the object only if it is still exactly that
    version (``If-Match``), None when it changed or is gone -- so of two writers replacing the same
    version, exactly one succeeds. Local: a hard link of a complete temp file to create; an exclusive
    lock on a hidden lock file beside the object to compare and replace.
    """
    loc = resolve(uri)
    if not loc.is_s3:
        try:
            if version is None:
                return _local_version(data) if _conditional_put_local(Path(loc.path), data) else None
            return _replace_local_if(Path(loc.path), data, version)
        except OSError as err:
            raise _io_error("write", loc, err) from None
    settings = S3Settings.from_env()
    condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
    try:
        return s3_client(settings).put_object(Bucket=loc.bucket, Key=loc.key, Body=data, **condition)["ETag"]
    except Exception as err:  # noqa: BLE001
        code = _error_code(err)
        # 409 ConditionalRequestConflict: a concurrent conditional write to the key won. If-Match on a
        # key that is gone: 412 (SeaweedFS) or 404 NoSuchKey (AWS S3).
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409") or (
                version is not None and code in ("NoSuchKey", "404")):
            return None
        raise _s3_error(err, settings, loc.bucket, "s3:PutObject", loc.uri) from None


def _local_version(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# How long a compare-and-replace of a local object waits for another process's lock on it. The lock is held
# for one read and one rename, but a process frozen inside that (SIGSTOP, a paused VM, a stalled disk) holds it
# until it runs again, and every job waiting on it — a lease's taker included — waited that long, or forever.
LOCAL_LOCK_SECONDS = 60.0


def _replace_local_if(path: Path, data: bytes, version: str) -> str | None:
    from filelock import FileLock, Timeout

    # Every compare-and-replace of this object holds the lock (flock), so two cannot both see `version`.
    lock = path.with_name(f".{path.name}.lock")
    try:
        with FileLock(lock, timeout=LOCAL_LOCK_SECONDS):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                return None
            if _local_version(current) != version:
                return None
            write_local_atomically(path, data)
            return _local_version(data)
    except Timeout:
        raise StorageError(f"cannot replace {path}: another process has held its lock {lock.name} for "
                           f"{LOCAL_LOCK_SECONDS:g} s, in a step that takes milliseconds — a job frozen or stopped "
                           "while writing it (a paused VM, SIGSTOP, a stalled disk); resume or stop that process, "
                           "then run this again") from None


def _conditional_put_local(path: Path, data: bytes) -> bool:
    tmp = _temp_file_beside(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_conditional_writes(uri: str) -> None:
    """Prove once per process and output prefix that the server honours ``If-None-Match`` and ``If-Match``.

    Older servers (SeaweedFS 3.96) silently ignore them, which would break the
    exactly-once commit and lease take-over; we probe rather than trust. The probe object lies under
    `uri` (the prefix the job is about to write, so a least-privilege identity may
    write it there) with a hidden name that listings of outputs skip.
    """
    loc = resolve(uri)
    if loc.is_s3:
        _probe_conditional_writes(S3Settings.from_env(), loc.uri)


@lru_cache(maxsize=16)
def _probe_conditional_writes(settings: S3Settings, prefix_uri: str) -> None:
    bucket = urlparse(prefix_uri).netloc
    probe = join_uri(prefix_uri, f"_vaepipe_conditional_probe-{uuid.uuid4().hex[:8]}")
    # A refused first write created nothing: its error, not a cleanup's, is the one to report.
    created = put_if(probe, b"1")
    try:
        honoured = (created is not None and put_if(probe, b"2") is None       # If-None-Match: *
                    and put_if(probe, b"3", version='"0"') is None           # If-Match, a stale version
                    and put_if(probe, b"4", version=created) is not None)    # If-Match, the current one
    finally:
        delete_file(probe)
    if not honoured:
        raise StorageError(
            f"the S3 server at {settings.endpoint_label} ignores conditional writes "
            f"(If-None-Match / If-Match) for bucket '{bucket}', so job outputs cannot be committed "
            "safely; use AWS S3, MinIO, or SeaweedFS >= 4.48"
        )


def _error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code if code and not code.isdigit() else str(status or code)


def _credentials_rejected(endpoint: str, bucket: str) -> StorageError:
    return StorageError(f"credentials were rejected by {endpoint} for bucket '{bucket}' ({CREDENTIAL_HINT})")


def _not_authorized(action: str, target: str, endpoint: str, head: bool = False) -> StorageError:
    # A 403 answer to HEAD has no body to tell a refused identity from refused credentials.
    also = f"; a HEAD request is refused the same way for rejected credentials ({CREDENTIAL_HINT})" if head else ""
    return StorageError(f"not authorized to {action} on {target} at {endpoint} ({POLICY_HINT}){also}")


def _s3_error(err: Exception, settings: S3Settings, bucket: str, action: str, target: str) -> StorageError:
    """Turn a boto3/botocore exception of request `action` (an IAM action such as ``s3:PutObject``)
    on `target` (``s3://bucket/key``) into a message a person can act on."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    endpoint = settings.endpoint_label
    if isinstance(err, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return StorageError(f"cannot reach S3 endpoint {endpoint} ({STORE_HINT})")
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(
            f"no usable AWS credentials for {endpoint} (bucket '{bucket}'): set "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
            "(for the embedded store: `vaepipe storage up`)"
        )
    code = _error_code(err)
    if code in ("404", "NoSuchBucket", "NotFound"):
        return StorageError(
            f"bucket '{bucket}' does not exist at {endpoint}; create it or fix the URI"
        )
    if code in CREDENTIAL_ERROR_CODES:
        return _credentials_rejected(endpoint, bucket)
    if code in ("AccessDenied", "403", "Forbidden"):
        return _not_authorized(action, target, endpoint, head=code != "AccessDenied")
    detail = getattr(err, "response", {}).get("Error", {}).get("Message") or type(err).__name__
    return StorageError(f"S3 request to {endpoint} for bucket '{bucket}' failed: {code} {detail}")
