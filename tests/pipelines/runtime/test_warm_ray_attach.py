"""A job attaching to the warm Ray of `vaepipe ray up` that stopped after the job found it, or that does not
answer where Ray dials it (the node's address: Ray rewrites the loopback address the warm Ray was started on).
Both happen between two lines of `ray_session`, so the moment is injected: the job found a warm Ray at an
address where nothing listens."""
from __future__ import annotations

import logging

import pytest

from pipelines.errors import UserError
from pipelines.runtime import ray_session as session
from pipelines.runtime.ports import free_ports
from pipelines.runtime.warm_ray import WarmRay, WarmRayInfo


@pytest.fixture
def found_dead(monkeypatch, tmp_path) -> str:
    """A warm Ray found at an address where nothing listens; no state in this test's VAEPIPE_HOME."""
    monkeypatch.setenv("VAEPIPE_HOME", str(tmp_path))
    monkeypatch.setattr(session, "GCS_ANSWER_WAIT_S", 0.5)
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    monkeypatch.setattr(session, "warm_ray_address", lambda: address)
    return address


def test_a_warm_ray_that_stopped_since_it_was_found_is_left_and_the_job_starts_its_own(found_dead, caplog):
    with caplog.at_level(logging.WARNING, logger=session.__name__):
        assert session._answering_warm_ray() is None
    (record,) = caplog.records
    assert f"at {found_dead} stopped; this job starts a Ray of its own" in record.getMessage()
    assert str(WarmRay().log_file) in record.getMessage()


def test_a_running_warm_ray_that_does_not_answer_where_ray_dials_is_an_error_naming_its_log(found_dead, monkeypatch):
    running = WarmRayInfo(address=found_dead, dashboard="", pid=1, temp_dir="", num_cpus=1, storage_endpoint=None)
    monkeypatch.setattr(WarmRay, "status", lambda self: running)
    with pytest.raises(UserError) as refused:
        session._answering_warm_ray()
    port = found_dead.rsplit(":", 1)[1]
    message = str(refused.value)
    assert message.startswith(f"the local Ray of `vaepipe ray up` answers at {found_dead} but not at ")
    assert f":{port}, where Ray connects to it; see {WarmRay().log_file}" in message
