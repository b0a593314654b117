"""The jobs run under the shipped least-privilege policy, enforced by a real policy evaluator
(SeaweedFS evaluating the rendered IAM policy document, tests/restricted_identity.py): what the
policy grants is enough, what it does not grant is refused, and a refusal names the action and key."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines import storage
from pipelines.storage import StorageError

REPO = Path(__file__).resolve().parents[2]
OUTPUT_PREFIXES = ("runs", "models", "scores", "samples", "embeddings", "reports")


def test_the_jobs_identity_writes_reads_and_deletes_under_an_output_prefix(restricted_store, act_as):
    act_as(restricted_store.jobs)
    uri = f"{restricted_store.storage_root}/runs/lp-{uuid.uuid4().hex[:8]}/state.json"
    storage.write_json(uri, {"epoch": 1})
    assert storage.read_json(uri) == {"epoch": 1}
    assert [f.uri for f in storage.list_files(uri.rsplit("/", 1)[0])] == [uri]
    storage.delete_file(uri)
    assert not storage.exists(uri)


def test_a_multipart_upload_under_an_output_prefix_is_granted_by_put_object(restricted_store, act_as):
    act_as(restricted_store.jobs)
    uri = f"{restricted_store.storage_root}/runs/lp-{uuid.uuid4().hex[:8]}/optimizer.pt"
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts of pyarrow's multipart upload
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data


def test_conditional_writes_work_under_the_policy(restricted_store, act_as):
    act_as(restricted_store.jobs)
    prefix = f"{restricted_store.storage_root}/scores/lp-{uuid.uuid4().hex[:8]}"
    storage.check_conditional_writes(prefix)  # the probe lies under the prefix it protects
    assert storage.conditional_put(f"{prefix}/_LEASE", b"1") is True
    assert storage.conditional_put(f"{prefix}/_LEASE", b"2") is False
    assert storage.read_bytes(f"{prefix}/_LEASE") == b"1"
    assert storage.list_files(prefix, include_hidden=True)[0].uri == f"{prefix}/_LEASE"


@pytest.mark.parametrize("where", ["bucket root", "beside the storage root", "datasets"])
def test_a_write_outside_the_output_prefixes_is_not_authorized_and_says_so(restricted_store, act_as, where):
    act_as(restricted_store.jobs)
    bucket = restricted_store.info.bucket
    uri = {"bucket root": f"s3://{bucket}/_vaepipe_conditional_probe-0000",
           "beside the storage root": f"s3://{bucket}/elsewhere/part-0.parquet",
           "datasets": f"{restricted_store.storage_root}/datasets/digits/part-0.parquet"}[where]
    with pytest.raises(StorageError) as through_pyarrow:
        storage.write_bytes(uri, b"x")
    with pytest.raises(StorageError) as through_boto3:
        storage.conditional_put(uri, b"x")
    for caught in (through_pyarrow, through_boto3):
        message = str(caught.value)
        assert message.startswith(f"not authorized to s3:PutObject on {uri} at {restricted_store.info.endpoint}")
        assert "storage_policy.py" in message and "credentials were rejected" not in message
    act_as(restricted_store.admin)
    assert not storage.exists(uri)


def test_a_listing_outside_the_granted_prefixes_is_not_authorized(restricted_store, act_as):
    act_as(restricted_store.jobs)
    prefix = f"s3://{restricted_store.info.bucket}/elsewhere"
    with pytest.raises(StorageError, match=f"^not authorized to s3:ListBucket on {prefix}"):
        storage.list_files(prefix)


def test_datasets_are_readable_but_not_deletable(restricted_store, act_as):
    uri = f"{restricted_store.storage_root}/datasets/lp-{uuid.uuid4().hex[:8]}/_manifest.json"
    act_as(restricted_store.admin)
    storage.write_json(uri, {"rows": 1})
    act_as(restricted_store.jobs)
    assert storage.read_json(uri) == {"rows": 1}
    with pytest.raises(StorageError, match=f"^not authorized to s3:DeleteObject on {uri}"):
        storage.delete_file(uri)


def test_rejected_credentials_are_still_named_as_credentials(restricted_store, act_as, monkeypatch):
    act_as(restricted_store.jobs)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + "5" * 30)
    storage.clear_caches()
    with pytest.raises(StorageError, match="^credentials were rejected") as through_boto3:
        storage.check_access(restricted_store.storage_root)
    with pytest.raises(StorageError, match="^credentials were rejected") as through_pyarrow:
        storage.write_bytes(f"{restricted_store.storage_root}/runs/lp/x", b"x")
    assert "5" * 30 not in str(through_boto3.value) + str(through_pyarrow.value)


def test_an_identity_without_the_bucket_grant_is_told_it_is_not_authorized(restricted_store, act_as):
    """HeadBucket's 403 has no body; the access check asks again to tell it from bad credentials."""
    act_as(restricted_store.admin)
    storage.ensure_bucket("s3://vaepipe-other")
    act_as(restricted_store.jobs)
    with pytest.raises(StorageError, match="^not authorized to s3:ListBucket on s3://vaepipe-other at "):
        storage.check_access("s3://vaepipe-other/data")


# --- the jobs end to end -----------------------------------------------------------------------


def vaepipe(store, identity, *args: str) -> subprocess.CompletedProcess:
    """`vaepipe ARGS --storage ROOT` in a subprocess acting as `identity`, with a local Ray of its own."""
    command = [sys.executable, "-m", "pipelines.cli", *args, "--storage", store.storage_root]
    return subprocess.run(command, cwd=REPO, env=store.process_env(identity, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=420)


def all_keys(store) -> list[str]:
    from pipelines.storage import s3_client

    client = s3_client(storage.S3Settings(endpoint_url=store.info.endpoint, access_key=store.admin.access_key,
                                          secret_key=store.admin.secret_key, region=store.info.region))
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.info.bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_and_score_pass_as_the_jobs_identity_and_write_only_granted_keys(restricted_store, act_as):
    store = restricted_store
    prepared = vaepipe(store, store.admin, "prepare", "digits")
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    before = set(all_keys(store))

    trained = vaepipe(store, store.jobs, "train", "configs/digits.yaml", "--set", "train.epochs=2",
                      "--set", "scaling.num_workers=1", "--set", "scaling.cpus_per_worker=0.5",
                      "--set", "ray.num_cpus=4")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "registered model digits@1" in trained.stdout
    scored = vaepipe(store, store.jobs, "score", "--model", "digits@1", "--input", "digits", "--date", "2026-12-01",
                     "--actors", "1", "--cpus-per-actor", "0.5")
    assert scored.returncode == 0, scored.stderr[-3000:]

    act_as(store.admin)
    from pipelines.outputs import is_complete

    root = store.storage_root
    assert is_complete(f"{root}/models/digits/1")
    assert is_complete(f"{root}/scores/digits-v1/digits/2026-12-01")
    key_root = root.split("/", 3)[3]
    written = set(all_keys(store)) - before
    granted = tuple(f"{key_root}/{prefix}/" for prefix in OUTPUT_PREFIXES)
    # the storage root's own directory marker (pyarrow's create_dir) is the one key above them
    assert sorted(k for k in written if not k.startswith(granted) and k != f"{key_root}/") == []
    assert any(k.startswith(f"{key_root}/runs/") and k.endswith("/model.safetensors") for k in written)

    elsewhere = f"s3://{store.info.bucket}/elsewhere"
    refused = vaepipe(store, store.jobs, "score", "--model", "digits@1", "--input", "digits", "--date", "2026-12-01",
                      "--actors", "1", "--cpus-per-actor", "0.5", "--output", elsewhere)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: not authorized to s3:PutObject on {elsewhere}/"), refused.stderr[-2000:]
    assert not [k for k in all_keys(store) if k.startswith("elsewhere/")]
