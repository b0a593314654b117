"""`vaepipe submit` against a real Ray head node started by this module (no mocks)."""
from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.jobs.submit import STORAGE_ENV_VARS
from tests.ray_nodes import free_port, node_env, start_head

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ray_head() -> str:
    """A real single-node cluster on free ports; yields its Jobs API address. Jobs here use local
    storage, so the node gets no storage credentials."""
    head = start_head(node_env(storage_credentials=False))
    try:
        yield head.dashboard
    finally:
        head.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)


@pytest.fixture
def client(ray_head):
    from pipelines.jobs.submit import connect

    # connect(), not JobSubmissionClient(): Ray would let $RAY_ADDRESS (the test session's own
    # cluster) win over the address given
    return connect(ray_head, {})


def _submit(address: str, *job: str, extra: tuple[str, ...] = ()) -> int:
    return main(["submit", *job, "--address", address, "--working-dir", str(ROOT), *extra])


def _job_id(output: str) -> str:
    match = re.search(r"submitted (vaepipe-\S+):", output)
    assert match, output
    return match.group(1)


def _wait_for_end(client, job_id: str, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.get_job_info(job_id)
        if str(info.status) in ("SUCCEEDED", "FAILED", "STOPPED"):
            return info
        time.sleep(0.5)
    pytest.fail(f"job {job_id} did not finish within {timeout_s} s")


@pytest.mark.timeout(180)
def test_submitted_job_streams_its_logs_and_writes_its_output(ray_head, client, tmp_path, capsys):
    code = _submit(ray_head, "prepare", "digits", "--storage", str(tmp_path), "--name", "digits")

    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "dataset digits: 1797 rows" in out  # printed by the job on the cluster
    assert f"job {_job_id(out)} SUCCEEDED" in out
    assert json.loads((tmp_path / "datasets" / "digits" / "_manifest.json").read_text())["rows"] == 1797
    assert client.get_job_info(_job_id(out)).runtime_env["working_dir"].startswith("gcs://")


@pytest.mark.timeout(120)
def test_no_wait_returns_the_id_at_once_and_the_job_runs_to_success(ray_head, client, tmp_path, capsys):
    started = time.monotonic()
    code = _submit(ray_head, "prepare", "digits", "--storage", str(tmp_path), "--name", "digits",
                   extra=("--no-wait",))
    seconds = time.monotonic() - started

    out, _ = capsys.readouterr()
    assert code == 0
    assert seconds < 10, f"--no-wait took {seconds:.1f} s"
    assert f"ray job stop {_job_id(out)}" in out
    assert str(_wait_for_end(client, _job_id(out)).status) == "SUCCEEDED"
    assert (tmp_path / "datasets" / "digits" / "_manifest.json").is_file()


@pytest.mark.timeout(120)
def test_failed_job_exits_non_zero_and_shows_its_error(ray_head, tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    code = _submit(ray_head, "prepare", str(missing), "--name", "missing", "--storage", str(tmp_path))

    _, err = capsys.readouterr()
    assert code == 1
    assert "FAILED" in err
    assert f"input {missing} does not exist" in err


@pytest.mark.reliability("security")
@pytest.mark.timeout(120)
def test_secrets_in_the_local_environment_are_not_shipped(ray_head, client, tmp_path, capsys, monkeypatch):
    secret = f"vaepipe-secret-{secrets.token_hex(8)}"
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(name, secret)
    for name in STORAGE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-test-1")

    code = _submit(ray_head, "prepare", "digits", "--storage", str(tmp_path), "--name", "digits",
                   extra=("--no-wait",))

    out, _ = capsys.readouterr()
    assert code == 0
    info = _wait_for_end(client, _job_id(out))
    assert info.runtime_env["env_vars"] == {"AWS_REGION": "eu-test-1"}
    assert secret not in json.dumps(info.model_dump(), default=str)
    assert secret not in client.get_job_logs(_job_id(out))


SECRETS = {"AWS_SECRET_ACCESS_KEY": "not-to-be-shipped", "MY_PASS": "hunter22", "DB_URL": "postgres://db.internal/x",
           "API_PRIVATE_KEY_PEM": "-----BEGIN PRIVATE KEY-----\nMIIE", "apiKey": "abc123456",
           "SERVICE_ENDPOINT": "https://svc:s3cr3t-value@svc.internal/", "CERT_BUNDLE": "x",
           "LICENSE_BLOB": "-----BEGIN RSA PRIVATE KEY-----"}


@pytest.mark.reliability("security")
@pytest.mark.parametrize("name, value", SECRETS.items(), ids=list(SECRETS))
def test_asking_to_ship_a_secret_is_refused(capsys, monkeypatch, name, value):
    """A secret is refused by its name (a credential word) or by its value (user:password@ in a URL, a PEM
    block), and the value is never printed."""
    monkeypatch.setenv(name, value)

    code = _submit("http://127.0.0.1:9", "prepare", "digits", extra=("--env", name))

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"error: --env {name}: refusing to ship it") and len(err.strip().splitlines()) == 1, err
    assert value not in err


@pytest.mark.reliability("security")
def test_an_endpoint_url_with_credentials_is_not_shipped(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://USER:SECRET-PASS@127.0.0.1:9000")

    code = _submit("http://127.0.0.1:9", "prepare", "digits")

    _, err = capsys.readouterr()
    assert code == 2 and "SECRET-PASS" not in err and "USER" not in err, err


def test_config_outside_the_working_dir_is_refused(tmp_path, capsys):
    config = tmp_path / "digits.yaml"
    config.write_text("name: digits\n")

    code = _submit("http://127.0.0.1:9", "train", str(config))

    _, err = capsys.readouterr()
    assert code == 2
    assert f"config file {config} is outside the working dir {ROOT}" in err


def test_commands_that_are_not_jobs_are_refused(capsys):
    code = _submit("http://127.0.0.1:9", "storage", "up")

    _, err = capsys.readouterr()
    assert code == 2
    assert "'storage' is not a job that can be submitted; choose one of prepare, train" in err


@pytest.mark.timeout(60)
def test_unreachable_address_is_one_clear_line(capsys):
    address = f"http://127.0.0.1:{free_port()}"

    code = _submit(address, "prepare", "digits")

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"error: cannot reach the Ray Jobs API at {address}")
    assert "ray start --head --dashboard-host 0.0.0.0" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.timeout(180)
def test_resubmitting_a_submission_id_reports_that_job_instead_of_running_it_twice(ray_head, client, tmp_path,
                                                                                   capsys):
    submission = f"vaepipe-test-{secrets.token_hex(4)}"
    job = ("prepare", "digits", "--storage", str(tmp_path), "--name", "digits")
    assert _submit(ray_head, *job, extra=("--submission-id", submission, "--no-wait")) == 0
    assert f"submitted {submission}:" in capsys.readouterr().out

    code = _submit(ray_head, *job, extra=("--submission-id", submission))  # e.g. a retried scheduler run

    out, _ = capsys.readouterr()
    assert code == 0, out
    assert f"already submitted {submission}" in out and "not submitted again" in out
    assert f"job {submission} SUCCEEDED" in out
    assert [j.submission_id for j in client.list_jobs()].count(submission) == 1


@pytest.mark.timeout(120)
def test_a_submission_id_already_used_by_another_job_is_refused(ray_head, tmp_path, capsys):
    submission = f"vaepipe-test-{secrets.token_hex(4)}"
    assert _submit(ray_head, "prepare", "digits", "--storage", str(tmp_path), "--name", "digits",
                   extra=("--submission-id", submission, "--no-wait")) == 0
    capsys.readouterr()

    code = _submit(ray_head, "prepare", "digits", "--storage", str(tmp_path), "--name", "other",
                   extra=("--submission-id", submission, "--no-wait"))

    _, err = capsys.readouterr()
    assert code == 2
    assert f"error: submission id {submission} is already the cluster's job `vaepipe prepare digits" in err
