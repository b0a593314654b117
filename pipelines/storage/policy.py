"""The least-privilege S3 policy for vaepipe's jobs, rendered for one storage root.

The template, ``infra/iam/vaepipe-bucket-policy.json``, names the bucket as ``{bucket}`` and
the storage prefix as ``{root}`` (the prefix with its trailing slash, empty for a storage
root at the bucket root). What it grants, and why each grant is there:

- ``s3:ListBucket`` with no ``s3:prefix``: ``HeadBucket`` (the access check every job makes
  first, and pyarrow's ``create_dir``), and on AWS a ``HeadObject`` of a missing key answers
  404 rather than 403 only with ``s3:ListBucket``.
- ``s3:ListBucket`` under ``{root}datasets/ runs/ models/ scores/ samples/ embeddings/ reports/``.
- ``s3:GetObject`` on ``datasets/``: the jobs read datasets and never write them; a dataset is
  prepared by a person or CI with their own identity (``--prepare`` renders that identity's
  policy, which may also write ``datasets/``).
- read, write and delete (and multipart uploads) under the six output prefixes: the commit
  protocol deletes leases and other attempts' parts, Ray Train / Tune write checkpoints there.
- ``s3:PutObject`` on the one key ``{root}``: pyarrow's recursive ``create_dir`` (Ray Train,
  Ray Tune and Ray Data call it) writes an empty directory marker for every level of a path,
  the storage root included. Dropped when the storage root is the bucket itself.

Every object a job writes lies under the output prefixes (the conditional-write probe too:
``pipelines.storage.objects.check_conditional_writes`` puts it beside the output it protects).

Run it from a checkout without installing vaepipe (standard library only)::

    python3 pipelines/storage/policy.py s3://my-bucket/vaepipe > vaepipe-bucket-policy.json
    python3 pipelines/storage/policy.py s3://my-bucket/vaepipe --prepare > vaepipe-prepare-policy.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "iam" / "vaepipe-bucket-policy.json"
OUTPUT_PREFIXES = ("runs", "models", "scores", "samples", "embeddings", "reports")
DATASETS = "datasets"
# The statement that --prepare widens with datasets/.
WRITE_STATEMENT = "ReadAndWriteJobOutputs"

# S3's bucket naming rules (lowercase, digits, dots, hyphens; 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A prefix of plain characters: `*`, `?` and `$` would become IAM wildcards or policy variables.
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class PolicyError(ValueError):
    """The storage URI cannot be turned into a policy; the message says why."""


def split_storage_uri(storage_uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b/")``; ``s3://bucket`` -> ``("bucket", "")``."""
    parsed = urlparse(storage_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise PolicyError(f"{storage_uri!r} is not an S3 storage root; write it as s3://bucket/prefix")
    if parsed.params or parsed.query or parsed.fragment:
        raise PolicyError(f"{storage_uri!r} has ';', '?' or '#' in it; a storage root is s3://bucket/prefix")
    bucket = parsed.netloc
    if not _BUCKET.match(bucket):
        raise PolicyError(f"bucket name {bucket!r} in {storage_uri!r} is not a valid S3 bucket name "
                          "(3-63 characters: lowercase letters, digits, '.' and '-')")
    segments = [s for s in parsed.path.strip("/").split("/") if s]
    for segment in segments:
        if not _PREFIX_SEGMENT.match(segment) or segment in (".", ".."):
            raise PolicyError(f"storage prefix segment {segment!r} in {storage_uri!r}: use only letters, digits, "
                              "'.', '_' and '-' ('*', '?' and '$' would widen the policy)")
    return bucket, "".join(f"{s}/" for s in segments)


def _substitute(value: Any, bucket: str, root: str) -> Any:
    if isinstance(value, str):
        return value.replace("{bucket}", bucket).replace("{root}", root)
    if isinstance(value, list):
        return [_substitute(v, bucket, root) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, bucket, root) for k, v in value.items()}
    return value


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def render_bucket_policy(storage_uri: str, prepare: bool = False, template: Path = TEMPLATE) -> dict[str, Any]:
    """The IAM policy document that lets vaepipe's jobs use `storage_uri` and nothing else in its bucket.

    With `prepare`, the identity may also write ``datasets/`` (the one that runs ``vaepipe prepare``).
    Raises PolicyError for a URI that is not a plain ``s3://bucket[/prefix]``.
    """
    bucket, root = split_storage_uri(storage_uri)
    policy = _substitute(json.loads(Path(template).read_text()), bucket, root)
    # Bucket-root storage: the marker of the empty key `{root}` does not exist and is not granted.
    empty_key = f"arn:aws:s3:::{bucket}/"
    statements = []
    for statement in policy["Statement"]:
        if "Resource" in statement:
            resources = [r for r in _as_list(statement["Resource"]) if r != empty_key]
            if not resources:
                continue
            statement["Resource"] = resources if isinstance(statement["Resource"], list) else resources[0]
        statements.append(statement)
    policy["Statement"] = statements
    if prepare:
        writer = next((s for s in statements if s.get("Sid") == WRITE_STATEMENT), None)
        if writer is None:
            raise PolicyError(f"{template} has no statement with Sid {WRITE_STATEMENT!r} to add {DATASETS}/ to")
        writer["Resource"] = _as_list(writer["Resource"]) + [f"arn:aws:s3:::{bucket}/{root}{DATASETS}/*"]
    return policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pipelines/storage/policy.py",
        description="Print the least-privilege S3 policy of vaepipe's jobs for one storage root.")
    parser.add_argument("storage_uri", help="the jobs' storage root, e.g. s3://my-bucket/vaepipe")
    parser.add_argument("--prepare", action="store_true",
                        help="the policy of the identity that runs `vaepipe prepare` (may also write datasets/)")
    args = parser.parse_args(argv)
    try:
        policy = render_bucket_policy(args.storage_uri, prepare=args.prepare)
    except PolicyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(policy, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
