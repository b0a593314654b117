"""Leases that expire anywhere: renewed by a heartbeat while the job runs, dead when not renewed for their
expiry whatever host held them, taken over by a write conditional on the dead lease's version.

Holders on "another host" are real processes started with another VAEPIPE_LEASE_HOST, then killed
(SIGKILL) or frozen (SIGSTOP) for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines.storage import objects as storage
from pipelines.storage.commit import ENV_LEASE_HOST, LEASE, Lease, OutputCommit, is_complete, read_success
from pipelines.storage.objects import StorageError
from tests.pipelines.storage.test_commit import write_part

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["local", "s3"])
def out_prefix(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3_prefix")


def read_lease(prefix: str) -> Lease:
    return storage.read_record(Lease, storage.join_uri(prefix, LEASE), "lease")


# --- the conditional writes leases are made of ---------------------------------------------------------------


def test_put_if_replaces_only_the_version_it_names(out_prefix):
    uri = storage.join_uri(out_prefix, "_OBJECT")
    first = storage.put_if(uri, b"1")
    assert first is not None and storage.put_if(uri, b"again") is None  # create-only
    assert storage.put_if(uri, b"2", version='"not-its-version"') is None
    second = storage.put_if(uri, b"2", version=first)
    assert second not in (None, first)
    assert storage.put_if(uri, b"3", version=first) is None  # the version it replaced is gone
    current = storage.read_versioned(uri)
    assert (current.data, current.version) == (b"2", second)
    assert storage.put_if(storage.join_uri(out_prefix, "_MISSING"), b"x", version=second) is None


FROZEN_LOCKER = """
import fcntl, os, signal, sys
lock = open(sys.argv[1], "a")
fcntl.flock(lock, fcntl.LOCK_EX)
print("locked", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.mark.reliability("process fault")
def test_a_process_frozen_inside_a_local_replace_makes_it_fail_by_name_not_wait_forever(tmp_path, monkeypatch):
    """A job stopped (SIGSTOP) while it held the lock of a local compare-and-replace — its lease's heartbeat,
    say — made every other writer of that object wait until it ran again; the lease's taker waited forever."""
    uri = str(tmp_path / "out" / "_OBJECT")
    version = storage.put_if(uri, b"0")
    frozen = subprocess.Popen([sys.executable, "-c", FROZEN_LOCKER, str(tmp_path / "out" / "._OBJECT.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert frozen.stdout.readline().strip() == "locked"
        monkeypatch.setattr(storage, "LOCAL_LOCK_SECONDS", 1.0)
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"\._OBJECT\.lock for 1 s.*frozen or stopped"):
            storage.put_if(uri, b"1", version=version)
        assert 1.0 <= time.monotonic() - started < 5
    finally:
        frozen.kill()
        frozen.wait()
    assert storage.put_if(uri, b"1", version=version) is not None  # its lock went with it


def test_of_concurrent_replacements_of_one_version_exactly_one_wins(out_prefix):
    uri = storage.join_uri(out_prefix, "_OBJECT")
    version = storage.put_if(uri, b"0")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: storage.put_if(uri, f"taker {i}".encode(), version=version), range(8)))
    winners = [i for i, result in enumerate(results) if result is not None]
    assert len(winners) == 1
    assert storage.read_bytes(uri) == f"taker {winners[0]}".encode()


def test_an_objects_age_is_the_time_since_its_last_write(out_prefix):
    uri = storage.join_uri(out_prefix, "_OBJECT")
    storage.put_if(uri, b"0")
    time.sleep(2.2)
    # S3: the server's Date minus Last-Modified, both whole seconds
    assert 1.0 <= storage.read_versioned(uri).age_seconds <= 4.0


# --- heartbeat -------------------------------------------------------------------------------------------------


def test_the_heartbeat_renews_the_lease_while_the_block_runs(out_prefix):
    with OutputCommit(out_prefix, job="score", heartbeat_seconds=0.3, lease_seconds=1.2) as holder:
        first = read_lease(out_prefix)
        time.sleep(2.0)  # longer than the expiry: only renewals keep it alive
        later = read_lease(out_prefix)
        assert later.attempt_id == first.attempt_id == holder.attempt_id
        assert later.renewed_at > first.renewed_at and later.expires_after_seconds == 1.2
        with pytest.raises(StorageError, match="another job"):
            with OutputCommit(out_prefix, job="score"):
                pass
        write_part(holder, 0, 2)
        holder.commit(expected_rows=2)
    assert is_complete(out_prefix) and not storage.exists(storage.join_uri(out_prefix, LEASE))


def test_a_waiter_is_refused_once_it_sees_a_live_holder_renew(out_prefix):
    with OutputCommit(out_prefix, job="score", heartbeat_seconds=0.5, lease_seconds=3):
        started = time.monotonic()
        with pytest.raises(StorageError, match="another job \\(holder score@"):
            with OutputCommit(out_prefix, job="score", wait_for_expiry=True):
                pass
        # refused at the first renewal it sees, long before the lease's expiry
        assert time.monotonic() - started < 2.5


def test_the_heartbeat_must_be_shorter_than_the_expiry(out_prefix):
    with pytest.raises(StorageError, match="heartbeat .* must be shorter than its expiry"):
        OutputCommit(out_prefix, job="score", heartbeat_seconds=5, lease_seconds=5)


# --- holders on another host, killed or frozen for real ----------------------------------------------------------

HOLDER_SCRIPT = """
import sys
from pipelines.storage.commit import OutputCommit
from tests.pipelines.storage.test_commit import write_part

commit = OutputCommit(sys.argv[1], job="score", heartbeat_seconds=0.5, lease_seconds=float(sys.argv[2]))
commit.__enter__()
write_part(commit, 0, 5)
print("holding", commit.holder, flush=True)
sys.stdin.readline()  # frozen or killed here
try:
    commit.commit(expected_rows=5)
    print("committed", flush=True)
except Exception as err:
    print("refused:", err, flush=True)
"""


def start_holder(prefix: str, lease_seconds: float, host: str) -> tuple[subprocess.Popen, str]:
    """A process on "another host" that holds the lease (heartbeat 0.5 s) and has written a part."""
    env = {**os.environ, ENV_LEASE_HOST: host, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, prefix, str(lease_seconds)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = holder.stdout.readline()
    assert line.startswith("holding"), line
    return holder, line.split()[1]


@pytest.mark.reliability("process fault")
def test_a_killed_holder_on_another_host_is_taken_over_at_its_expiry_by_exactly_one_retry(
        out_prefix, monkeypatch):
    monkeypatch.setenv(ENV_LEASE_HOST, "retry-host")
    holder, holder_name = start_holder(out_prefix, lease_seconds=3, host="killed-host")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.monotonic()

    def retry() -> OutputCommit | StorageError:
        commit = OutputCommit(out_prefix, job="score", wait_for_expiry=True)
        try:
            commit.__enter__()
        except StorageError as refused:
            return refused
        return commit

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: retry(), range(2))
    waited = time.monotonic() - killed_at
    (taker,) = [r for r in (first, second) if isinstance(r, OutputCommit)]
    (refused,) = [r for r in (first, second) if isinstance(r, StorageError)]
    assert taker.took_over_from == holder_name
    assert f"holder {taker.holder}" in str(refused)
    # not before the dead lease went 3 s unrenewed (it was renewed at most 0.5 s before the kill; the
    # store's clock counts whole seconds), and not much after
    assert 1.5 <= waited <= 3 + 2.5, waited
    write_part(taker, 0, 2)
    taker.commit(expected_rows=2)
    taker.__exit__(None, None, None)
    manifest = read_success(out_prefix)
    assert manifest["attempt_id"] == taker.attempt_id and manifest["rows"] == 2
    assert [e.uri for e in storage.list_files(out_prefix)] == [taker.part_uri(0)]  # the dead one's part is gone


def freeze_between_heartbeats(holder: subprocess.Popen, prefix: str) -> None:
    """SIGSTOP the holder, but not inside a heartbeat's compare-and-replace of a local lease: frozen there it
    holds the lease file's lock, and the taker fails by name after `LOCAL_LOCK_SECONDS` (the test above) —
    the other fault, which this test once hit by chance (it hung to its timeout)."""
    import fcntl

    lock = os.path.join(prefix, f".{LEASE}.lock")
    for _ in range(50):
        holder.send_signal(signal.SIGSTOP)
        while open(f"/proc/{holder.pid}/stat").read().rpartition(")")[2].split()[0] != "T":
            time.sleep(0.001)  # a signal is delivered, not at once: stopped now
        if "://" in prefix or not os.path.exists(lock):
            return
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder.send_signal(signal.SIGCONT)
                time.sleep(0.01)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return
    raise AssertionError("the holder was inside its lock at each of 50 tries")


@pytest.mark.reliability("process fault")
def test_a_holder_frozen_past_its_expiry_loses_the_lease_and_cannot_commit(out_prefix, monkeypatch):
    monkeypatch.setenv(ENV_LEASE_HOST, "retry-host")
    holder, _ = start_holder(out_prefix, lease_seconds=1.5, host="frozen-host")
    freeze_between_heartbeats(holder, out_prefix)  # a stalled process: no heartbeat, no exit
    try:
        with OutputCommit(out_prefix, job="score", wait_for_expiry=True) as taker:
            write_part(taker, 0, 3)
            taker.commit(expected_rows=3)
    finally:
        holder.send_signal(signal.SIGCONT)
    out, _ = holder.communicate("\n", timeout=60)
    assert "refused:" in out and "lost its lease" in out, out
    manifest = read_success(out_prefix)
    assert manifest["attempt_id"] == taker.attempt_id and manifest["rows"] == 3
    assert [e.uri for e in storage.list_files(out_prefix)] == [taker.part_uri(0)]


def test_a_lease_written_before_heartbeats_still_expires_at_its_time(s3_prefix, monkeypatch):
    monkeypatch.setenv(ENV_LEASE_HOST, "retry-host")
    storage.write_json(f"{s3_prefix}/_LEASE", {"holder": "score@old-host:1", "attempt_id": "x",
                                                "acquired_at": "2026-01-01T00:00:00+00:00",
                                                "expires_at": "2026-01-01T01:00:00+00:00"})
    with OutputCommit(s3_prefix, job="score") as commit:
        assert commit.took_over_from == "score@old-host:1"
        commit.commit(expected_rows=0)


def test_the_heartbeat_stops_when_the_block_ends(out_prefix):
    with OutputCommit(out_prefix, job="score", heartbeat_seconds=0.2) as commit:
        assert any(t.name == f"lease heartbeat {commit.lease_uri}" for t in threading.enumerate())
    assert not any(t.name == f"lease heartbeat {commit.lease_uri}" for t in threading.enumerate())


def test_a_job_that_waited_on_a_holder_that_then_committed_stops_as_already_complete(out_prefix):
    """Two jobs for one output at once: the second waits on the first's live lease, the first commits and
    releases it, and the second must not write the output again (CI saw it score everything, then refuse at
    its own commit because `_SUCCESS` had appeared)."""
    from pipelines.storage.commit import AlreadyComplete

    outcome = {}

    def second_job():
        try:
            with OutputCommit(out_prefix, job="score", wait_for_expiry=True):
                outcome["wrote"] = True
        except AlreadyComplete as complete:
            outcome["complete"] = str(complete)

    # its heartbeat would come after the commit: the waiter sees the lease go, not renewed
    with OutputCommit(out_prefix, job="score", heartbeat_seconds=5, lease_seconds=15) as first:
        waiter = threading.Thread(target=second_job)
        waiter.start()
        time.sleep(1)  # the second job is watching the live lease
        write_part(first, 0, 5)
        first.commit(expected_rows=5)
    waiter.join(timeout=30)
    assert outcome == {"complete": outcome.get("complete")} and "already complete" in outcome["complete"]
    assert not storage.exists(storage.join_uri(out_prefix, LEASE))  # nor a lease left behind
