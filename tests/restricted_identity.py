"""An embedded S3 store (SeaweedFS) with two identities: an admin, and the jobs' identity whose only
rights are the shipped policy template rendered for one storage root (`pipelines.storage.policy`).

SeaweedFS evaluates an identity's attached IAM policy documents itself (Resource ARNs with
wildcards, `s3:prefix` conditions on ListBucket, multipart actions implied by s3:PutObject),
so a request the policy does not grant is answered 403 AccessDenied, as AWS S3 would.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipelines.storage.embedded_server import DEFAULT_BUCKET, StoreInfo, running_store
from pipelines.storage.policy import render_bucket_policy

JOBS_POLICY = "vaepipe-jobs"
STORAGE_PREFIX = "vaepipe"
# Variables a test's environment may carry that would point a client elsewhere or at other keys.
AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class RestrictedStore:
    """The running store, its storage root and the two identities that may use it."""

    info: StoreInfo
    storage_root: str
    admin: Identity
    jobs: Identity
    policy: dict

    def aws_env(self, identity: Identity) -> dict[str, str]:
        """The AWS_* variables that make a client act as `identity` on this store."""
        return {"AWS_ENDPOINT_URL": self.info.endpoint, "AWS_ACCESS_KEY_ID": identity.access_key,
                "AWS_SECRET_ACCESS_KEY": identity.secret_key, "AWS_REGION": self.info.region,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def process_env(self, identity: Identity, **extra: str) -> dict[str, str]:
        """This process's environment without AWS_* and RAY_* (a `vaepipe` subprocess starts a
        local Ray of its own, whose workers inherit these credentials), acting as `identity`."""
        env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES and not k.startswith("RAY_")}
        return {**env, **self.aws_env(identity), "RAY_AUTH_MODE": "disabled", **extra}


def identities_config(admin: Identity, jobs: Identity, policy: dict) -> dict:
    """SeaweedFS's `-s3.config`: the admin first (`EmbeddedStore` takes the first identity's keys as its
    own), then the jobs' identity with no legacy actions, only the attached policy document."""
    return {
        "identities": [
            {"name": admin.name, "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": jobs.name, "credentials": [{"accessKey": jobs.access_key, "secretKey": jobs.secret_key}],
             "policyNames": [JOBS_POLICY]},
        ],
        "policies": [{"name": JOBS_POLICY, "content": json.dumps(policy)}],
    }


def _new_identity(name: str) -> Identity:
    return Identity(name, f"{name.upper()}{secrets.token_hex(6).upper()}", secrets.token_hex(20))


@contextmanager
def running_restricted_store(root: Path, prefix: str = STORAGE_PREFIX) -> Iterator[RestrictedStore]:
    """A store under `root` whose jobs identity may do exactly what the shipped policy allows
    for the storage root ``s3://<bucket>/<prefix>``."""

    root.mkdir(parents=True, exist_ok=True)
    storage_root = f"s3://{DEFAULT_BUCKET}/{prefix}"
    admin, jobs = _new_identity("admin"), _new_identity("jobs")
    policy = render_bucket_policy(storage_root)
    identities = root / "identities.json"
    identities.write_text(json.dumps(identities_config(admin, jobs, policy), indent=2) + "\n")
    identities.chmod(0o600)
    with running_store(root, stop_timeout=1) as info:
        assert info.access_key == admin.access_key, "the store did not take the admin identity as its own"
        yield RestrictedStore(info, storage_root, admin, jobs, policy)
