"""The output commit protocol: _LEASE while writing, _SUCCESS when complete."""

from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.storage import objects as storage
from pipelines.storage.commit import (
    LEASE,
    SUCCESS,
    AlreadyComplete,
    OutputCommit,
    is_complete,
    list_committed_parts,
    read_success,
)
from pipelines.storage.objects import StorageError


@pytest.fixture(params=["local", "s3"])
def out_prefix(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3_prefix")


def write_part(commit: OutputCommit, index: int, rows: int, record: bool = True) -> str:
    """A Parquet part of `rows` rows written as another writer would (a Ray Data task), then recorded."""
    uri = commit.part_uri(index)
    loc = storage.resolve(uri)
    if not loc.is_s3:
        loc.filesystem.create_dir(loc.path.rsplit("/", 1)[0])
    pq.write_table(pa.table({"x": list(range(rows))}), loc.path, filesystem=loc.filesystem)
    if record:
        commit.record([uri.rsplit("/", 1)[1]])
    return uri


def test_commit_writes_success_listing_parts_with_rows(out_prefix):
    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 3)
        write_part(out, 1, 4)
        out.commit(expected_rows=7, metadata={"model_version": "v1"})

    manifest = read_success(out_prefix)
    assert is_complete(out_prefix)
    assert manifest["job"] == "score" and manifest["model_version"] == "v1"
    assert manifest["rows"] == 7
    assert [(p["key"], p["rows"]) for p in manifest["parts"]] == [
        (f"part-{out.attempt_id}-00000.parquet", 3),
        (f"part-{out.attempt_id}-00001.parquet", 4),
    ]
    assert all(p["size"] > 0 for p in manifest["parts"])
    assert list_committed_parts(out_prefix) == [out.part_uri(0), out.part_uri(1)]
    assert not storage.exists(storage.join_uri(out_prefix, LEASE))


def test_exception_in_block_leaves_no_success_and_frees_the_lease(out_prefix):
    with pytest.raises(RuntimeError):
        with OutputCommit(out_prefix, job="score") as out:
            write_part(out, 0, 2)
            raise RuntimeError("worker died")
    assert not is_complete(out_prefix)
    assert not storage.exists(storage.join_uri(out_prefix, LEASE))
    with pytest.raises(StorageError, match="incomplete \\(no _SUCCESS\\).*re-run the job"):
        read_success(out_prefix)


@pytest.mark.reliability("concurrency")
def test_second_writer_fails_fast_with_the_holder(out_prefix):
    with OutputCommit(out_prefix, job="score"):
        with pytest.raises(StorageError, match="another job \\(holder score@.*\\) is writing") as caught:
            with OutputCommit(out_prefix, job="score"):
                pass
        assert f"delete the lease {storage.join_uri(out_prefix, LEASE)} if that job is dead" in str(caught.value)
    assert not storage.exists(storage.join_uri(out_prefix, LEASE))


def test_an_expired_lease_is_taken_over(out_prefix):
    dead = OutputCommit(out_prefix, job="score", lease_seconds=-1)
    dead.__enter__()  # a job that died without releasing its lease
    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 1)
        out.commit(expected_rows=1)
    assert is_complete(out_prefix)


def test_commit_deletes_parts_of_other_attempts(out_prefix):
    killed = OutputCommit(out_prefix, job="score")
    killed.__enter__()
    write_part(killed, 0, 5)
    killed.__exit__(None, None, None)  # released, never committed

    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 2)
        out.commit(expected_rows=2)

    assert [e.uri for e in storage.list_files(out_prefix)] == [out.part_uri(0)]
    assert read_success(out_prefix)["rows"] == 2


@pytest.mark.reliability("bad input")
def test_row_count_mismatch_refuses_to_commit(out_prefix):
    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 3)
        with pytest.raises(StorageError, match="hold 3 rows but the job produced 4"):
            out.commit(expected_rows=4)
    assert not is_complete(out_prefix)


def test_commit_without_parts_is_refused(out_prefix):
    with OutputCommit(out_prefix, job="score") as out:
        with pytest.raises(StorageError, match="recorded no parts"):
            out.commit(expected_rows=5)
    assert not is_complete(out_prefix)


def test_rerun_of_a_complete_output_says_so(out_prefix):
    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 1)
        out.commit(expected_rows=1)
    with pytest.raises(AlreadyComplete, match="already complete.*--overwrite"):
        with OutputCommit(out_prefix, job="score"):
            pass
    assert not storage.exists(storage.join_uri(out_prefix, LEASE))


def test_overwrite_replaces_the_output(out_prefix):
    with OutputCommit(out_prefix, job="score") as first:
        write_part(first, 0, 1)
        first.commit(expected_rows=1)
    with OutputCommit(out_prefix, job="score", overwrite=True) as second:
        assert not is_complete(out_prefix)  # the old output is withdrawn at once
        write_part(second, 0, 6)
        second.commit(expected_rows=6)
    manifest = read_success(out_prefix)
    assert manifest["attempt_id"] == second.attempt_id and manifest["rows"] == 6
    assert [e.uri for e in storage.list_files(out_prefix)] == [second.part_uri(0)]


def test_manifest_keys_cannot_be_overridden_by_metadata(out_prefix):
    with OutputCommit(out_prefix, job="score") as out:
        write_part(out, 0, 1)
        with pytest.raises(StorageError, match="reserved"):
            out.commit(expected_rows=1, metadata={"rows": 99})


def test_manifest_holds_no_credentials(s3_prefix, s3_store):
    with OutputCommit(s3_prefix, job="score") as out:
        write_part(out, 0, 1)
        out.commit(expected_rows=1)
    text = storage.read_bytes(storage.join_uri(s3_prefix, SUCCESS)).decode()
    assert s3_store.secret_key not in text and s3_store.access_key not in text


@pytest.mark.reliability("process fault")
def test_lease_of_a_killed_process_on_this_host_is_taken_over(s3_prefix):
    import subprocess
    import sys

    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.objects import write_json

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json(f"{s3_prefix}/_LEASE", {"holder": f"score@{socket.gethostname()}:{dead.pid}", "attempt_id": "x",
                                       "acquired_at": "2026-01-01T00:00:00+00:00",
                                       "expires_at": "2999-01-01T00:00:00+00:00"})
    with OutputCommit(s3_prefix, job="score") as commit:
        commit.commit(expected_rows=0)
