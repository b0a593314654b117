"""The jobs run under the shipped least-privilege policy, enforced by a real policy evaluator
(SeaweedFS evaluating the rendered IAM policy document, tests/restricted_identity.py): what the
policy grants is enough, what it does not grant is refused, and a refusal names the action and key."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.storage import objects as storage
from pipelines.storage.objects import StorageError

REPO = Path(__file__).resolve().parents[3]
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
        assert "storage/policy.py" in message and "credentials were rejected" not in message
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


# the verbs that run on Ray: pinned to it (engine auto would run these small jobs in one process), since what is
# checked is that Ray's workers, not only the driver, get by with the jobs identity's grants
RAY_VERBS = ("train", "score", "nightly", "generate", "embed")


def vaepipe(store, identity, *args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    """`vaepipe ARGS --storage ROOT` in a subprocess acting as `identity` (engine ray for the verbs that run on
    it): on the warm Ray of `home` (`vaepipe ray up` there) when given, else on a local Ray of its own."""
    engine = ["--engine", "ray"] if args[0] in RAY_VERBS else []
    storage = [] if args[0] == "ray" else ["--storage", store.storage_root]
    command = [sys.executable, "-m", "pipelines.cli", *args, *engine, *storage]
    extra = {"PYTHONPATH": str(REPO), **({"VAEPIPE_HOME": str(home)} if home else {})}
    return subprocess.run(command, cwd=REPO, env=store.process_env(identity, **extra),
                          capture_output=True, text=True, timeout=420)


def succeeds(run: subprocess.CompletedProcess) -> bool:
    return run.returncode == 0 and "not authorized" not in run.stdout + run.stderr


def all_keys(store) -> set[str]:
    client = storage.s3_client(storage.S3Settings(
        endpoint_url=store.info.endpoint, access_key=store.admin.access_key, secret_key=store.admin.secret_key,
        region=store.info.region))
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.info.bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def outside_the_granted_prefixes(store, keys: set[str]) -> list[str]:
    key_root = store.storage_root.split("/", 3)[3]
    granted = tuple(f"{key_root}/{prefix}/" for prefix in OUTPUT_PREFIXES)
    # the storage root's directory marker (pyarrow's recursive create_dir) is the one key above them
    return sorted(k for k in keys if not k.startswith(granted) and k != f"{key_root}/")


@pytest.fixture(scope="module")
def jobs_ray(restricted_store, tmp_path_factory) -> Path:
    """A warm local Ray (`vaepipe ray up`) started as the jobs identity, as a cluster running under that identity
    would be: its workers hold only the jobs identity's credentials. The jobs below attach to it (one Ray start
    for the module, not one per job); yields its VAEPIPE_HOME."""
    store, home = restricted_store, tmp_path_factory.mktemp("jobs-ray-home")
    up = vaepipe(store, store.jobs, "ray", "up", "--num-cpus", "4", home=home)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    try:
        yield home
    finally:
        vaepipe(store, store.jobs, "ray", "down", home=home)


def warm_ray_log(home: Path) -> str:
    """The end of the warm Ray's `ray start` log, for a failure's message (CI keeps nothing else)."""
    from pipelines.runtime.warm_ray import WarmRay

    log = WarmRay(home / "ray").log_file
    return f"\n--- {log}:\n" + (log.read_text(errors="replace")[-3000:] if log.exists() else "(none)")


@pytest.fixture(scope="module")
def trained_as_jobs(restricted_store, jobs_ray) -> dict:
    """digits prepared by the admin, then trained (2 epochs, 1 worker) by the jobs identity."""
    store = restricted_store
    prepared = vaepipe(store, store.admin, "prepare", "digits")
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    before = all_keys(store)
    trained = vaepipe(store, store.jobs, "train", "configs/digits.yaml", "--set", "train.epochs=2",
                      "--set", "scaling.num_workers=1", "--set", "scaling.cpus_per_worker=0.5", home=jobs_ray)
    return {"run": trained, "written": all_keys(store) - before}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_as_the_jobs_identity_registers_a_model_writing_only_granted_keys(
        trained_as_jobs, restricted_store, act_as, jobs_ray):
    from pipelines.storage.commit import is_complete

    run = trained_as_jobs["run"]
    assert succeeds(run) and "registered model digits@1" in run.stdout, run.stderr[-3000:] + warm_ray_log(jobs_ray)
    act_as(restricted_store.admin)
    assert is_complete(f"{restricted_store.storage_root}/models/digits/1")
    written = trained_as_jobs["written"]
    assert any("/runs/" in k and k.endswith("/model.safetensors") for k in written)  # Ray Train's checkpoints
    assert outside_the_granted_prefixes(restricted_store, written) == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_score_generate_embed_nightly_and_report_pass_as_the_jobs_identity(
        trained_as_jobs, restricted_store, act_as, jobs_ray):
    from pipelines.storage.commit import is_complete

    store, root = restricted_store, restricted_store.storage_root
    before = all_keys(store)
    small = ("--actors", "1", "--cpus-per-actor", "0.5")
    runs = {
        "score": vaepipe(store, store.jobs, "score", "--model", "digits@1", "--input", "digits",
                         "--date", "2026-12-01", *small, home=jobs_ray),
        "promote": vaepipe(store, store.jobs, "promote", "digits@1"),
        "nightly": vaepipe(store, store.jobs, "nightly", "configs/nightly.yaml", "--date", "2026-12-02",
                           "--set", "compute.actors=1", home=jobs_ray),
        "generate": vaepipe(store, store.jobs, "generate", "--model", "digits@1", "--num-samples", "64", *small,
                            home=jobs_ray),
        "embed": vaepipe(store, store.jobs, "embed", "--model", "digits@1", "--input", "digits", *small,
                         home=jobs_ray),
        "report": vaepipe(store, store.jobs, "report", "model", "digits@1"),
    }
    assert {job: run.returncode for job, run in runs.items() if not succeeds(run)} == {}, \
        str({job: run.stderr[-2000:] for job, run in runs.items() if not succeeds(run)}) + warm_ray_log(jobs_ray)
    act_as(store.admin)
    for output in ("scores/digits-v1/digits/2026-12-01", "scores/digits-v1/digits/2026-12-02",
                   "embeddings/digits-v1/digits", "reports/digits-v1"):
        assert is_complete(f"{root}/{output}"), output
    written = all_keys(store) - before
    assert any(k.startswith(root.split("/", 3)[3] + "/samples/digits-v1/") and k.endswith("/_SUCCESS")
               for k in written)
    assert outside_the_granted_prefixes(store, written) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_job_writing_outside_the_granted_prefixes_fails_naming_the_action_and_key(
        trained_as_jobs, restricted_store):
    store = restricted_store
    elsewhere = f"s3://{store.info.bucket}/elsewhere"
    refused = vaepipe(store, store.jobs, "score", "--model", "digits@1", "--input", "digits", "--date", "2026-12-01",
                      "--actors", "1", "--cpus-per-actor", "0.5", "--output", elsewhere)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: not authorized to s3:PutObject on {elsewhere}/digits-v1/digits/"
                                     "2026-12-01/_vaepipe_conditional_probe-"), refused.stderr[-2000:]
    assert "storage/policy.py" in refused.stderr and "credentials were rejected" not in refused.stderr
    assert [k for k in all_keys(store) if k.startswith("elsewhere/")] == []
