"""pipelines.storage.objects against the local disk and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import socket

import pytest

from pipelines.storage import objects as storage
from pipelines.storage.objects import StorageError


@pytest.fixture(params=["local", "s3"])
def any_prefix(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_prefix")


def test_bytes_round_trip(any_prefix):
    uri = storage.join_uri(any_prefix, "a", "blob.bin")
    storage.write_bytes(uri, b"\x00hello")
    assert storage.read_bytes(uri) == b"\x00hello"
    assert storage.exists(uri)


def test_json_round_trip(any_prefix):
    uri = storage.join_uri(any_prefix, "doc.json")
    storage.write_json(uri, {"b": [1, 2], "a": "x"})
    assert storage.read_json(uri) == {"a": "x", "b": [1, 2]}


def test_overwrite_replaces_whole_object(any_prefix):
    uri = storage.join_uri(any_prefix, "x.bin")
    storage.write_bytes(uri, b"first, longer content")
    storage.write_bytes(uri, b"second")
    assert storage.read_bytes(uri) == b"second"


def test_reading_a_missing_object_names_it(any_prefix):
    uri = storage.join_uri(any_prefix, "missing.json")
    with pytest.raises(storage.ObjectNotFound, match="missing.json"):
        storage.read_bytes(uri)
    assert not storage.exists(uri)


def test_list_files_skips_hidden_names_and_directory_markers(any_prefix):
    for name in ["part-0.parquet", "sub/part-1.parquet", "_SUCCESS", ".tmp", "_meta/x.json"]:
        storage.write_bytes(storage.join_uri(any_prefix, name), b"x")
    loc = storage.resolve(any_prefix)
    loc.filesystem.create_dir(loc.child("empty").path)  # an S3 "empty/" marker object
    names = [e.path[len(loc.path) + 1:] for e in storage.list_files(any_prefix)]
    assert names == ["part-0.parquet", "sub/part-1.parquet"]
    hidden = [e.path[len(loc.path) + 1:] for e in storage.list_files(any_prefix, include_hidden=True)]
    assert "_SUCCESS" in hidden and "_meta/x.json" in hidden


def test_list_files_gives_uris_and_sizes(any_prefix):
    storage.write_bytes(storage.join_uri(any_prefix, "p.bin"), b"12345")
    [entry] = storage.list_files(any_prefix)
    assert entry.uri == storage.join_uri(any_prefix, "p.bin")
    assert entry.size == 5
    assert storage.read_bytes(entry.uri) == b"12345"


def test_list_files_of_missing_prefix_is_empty(any_prefix):
    assert storage.list_files(storage.join_uri(any_prefix, "nothing")) == []


def test_delete_prefix_removes_everything_below(any_prefix):
    storage.write_bytes(storage.join_uri(any_prefix, "d", "a"), b"1")
    storage.write_bytes(storage.join_uri(any_prefix, "d", "e", "b"), b"2")
    storage.write_bytes(storage.join_uri(any_prefix, "keep"), b"3")
    storage.delete_prefix(storage.join_uri(any_prefix, "d"))
    assert [e.uri for e in storage.list_files(any_prefix)] == [storage.join_uri(any_prefix, "keep")]
    storage.delete_prefix(storage.join_uri(any_prefix, "d"))  # missing is fine


def test_delete_prefix_refuses_a_whole_bucket(s3_store):
    with pytest.raises(StorageError, match="whole bucket"):
        storage.delete_prefix(f"s3://{s3_store.bucket}")


def test_conditional_put_creates_once(any_prefix):
    uri = storage.join_uri(any_prefix, "_LOCK")
    assert storage.conditional_put(uri, b"first") is True
    assert storage.conditional_put(uri, b"second") is False
    assert storage.read_bytes(uri) == b"first"


def test_server_honours_conditional_writes(s3_prefix):
    storage.check_conditional_writes(s3_prefix)


# --- URIs ----------------------------------------------------------------


def test_resolve_s3_uri(s3_store):
    loc = storage.resolve("s3://bucket/some/prefix/")
    assert loc.is_s3
    assert (loc.uri, loc.path, loc.bucket, loc.key) == (
        "s3://bucket/some/prefix", "bucket/some/prefix", "bucket", "some/prefix",
    )
    assert loc.child("a", "b.json").uri == "s3://bucket/some/prefix/a/b.json"
    assert loc.child("a").path == "bucket/some/prefix/a"


def test_resolve_local_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("rel/dir").path == str(tmp_path / "rel" / "dir")
    assert storage.resolve(f"file://{tmp_path}/x").path == str(tmp_path / "x")
    assert not storage.resolve("rel").is_s3


@pytest.mark.parametrize("uri", ["ftp://host/x", "gs://bucket/x", "s3:///no-bucket"])
def test_resolve_rejects_unsupported_uris(uri):
    with pytest.raises(StorageError, match="s3://bucket"):
        storage.resolve(uri)


def test_join_uri():
    assert storage.join_uri("s3://b/p/", "a/", "/c") == "s3://b/p/a/c"
    assert storage.join_uri("/data", "x") == "/data/x"


def test_resolve_reuses_the_filesystem(s3_store):
    assert storage.resolve("s3://a/x").filesystem is storage.resolve("s3://b/y").filesystem


def test_endpoint_comes_from_aws_endpoint_url(s3_store):
    assert storage.S3Settings.from_env().endpoint_url == s3_store.endpoint
    assert storage.s3_client().meta.endpoint_url == s3_store.endpoint


# --- access checks: messages for people ------------------------------------


def test_check_access_passes_for_the_bucket(s3_prefix):
    storage.check_access(s3_prefix, write=True)


@pytest.mark.reliability("bad input")
def test_check_access_names_a_missing_bucket(s3_store):
    with pytest.raises(StorageError) as caught:
        storage.check_access("s3://no-such-bucket/x")
    message = str(caught.value)
    assert "bucket 'no-such-bucket' does not exist" in message
    assert s3_store.endpoint in message and "create it or fix the URI" in message


@pytest.mark.reliability("bad input")
def test_check_access_wrong_secret_says_credentials_without_the_secret(s3_prefix, monkeypatch):
    wrong = "wrong-secret-" + "9" * 20
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(StorageError) as caught:
        storage.check_access(s3_prefix)
    message = str(caught.value)
    assert "credentials were rejected" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert wrong not in message
    assert wrong not in repr(storage.S3Settings.from_env())


@pytest.mark.reliability("bad input")
def test_check_access_wrong_key_id_says_credentials(s3_prefix, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
    with pytest.raises(StorageError, match="credentials were rejected"):
        storage.check_access(s3_prefix)


@pytest.mark.reliability("bad input")
def test_check_access_unreachable_endpoint(s3_store, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv(storage.ENV_MAX_ATTEMPTS, "1")
    with pytest.raises(StorageError, match="cannot reach S3 endpoint") as caught:
        storage.check_access("s3://vaepipe/x")
    assert dead in str(caught.value) and "vaepipe storage up" in str(caught.value)


def test_check_access_local(tmp_path):
    storage.check_access(str(tmp_path))
    storage.check_access(str(tmp_path / "new" / "dir"), write=True)
    with pytest.raises(StorageError, match="does not exist"):
        storage.check_access(str(tmp_path / "missing"))


@pytest.mark.reliability("bad input")
def test_bad_max_attempts_is_named(monkeypatch):
    monkeypatch.setenv(storage.ENV_MAX_ATTEMPTS, "many")
    with pytest.raises(StorageError, match=storage.ENV_MAX_ATTEMPTS):
        storage.S3Settings.from_env()


def test_ensure_bucket_creates_a_missing_bucket(s3_store):
    storage.ensure_bucket("s3://made-by-test/x")
    storage.check_access("s3://made-by-test/x", write=True)
    storage.ensure_bucket("s3://made-by-test")  # idempotent
