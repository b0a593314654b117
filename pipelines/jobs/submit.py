"""Run a vaepipe job on a remote Ray cluster through the Ray Jobs API.

The job runs as `vaepipe <job> <args…>` inside a copy of the local working
directory shipped with the job (runtime_env working_dir), so the cluster runs
the code and configs you have here. Only non-secret storage settings travel as
environment variables: the Jobs API shows runtime_env.env_vars in the dashboard
and job metadata (ray#28276), so credentials must come from the cluster's own
identity (IAM role, Kubernetes Secret, the environment of `ray start`).
"""
from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pipelines.errors import UserError

# Storage settings a job needs that are safe to show in the dashboard.
STORAGE_ENV_VARS = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "VAEPIPE_STORAGE",
                    "VAEPIPE_S3_MAX_ATTEMPTS")

# Never shipped, whatever --env says: a name with one of these words (split at `_`, `-` and case) carries a
# credential by convention. Whole words, so MONKEY or KEYBOARD_LAYOUT pass; KEY_PEM, MY_PASS, API_KEY do not.
SECRET_WORDS = frozenset({
    "SECRET", "SECRETS", "TOKEN", "TOKENS", "PASSWORD", "PASSWD", "PASS", "PWD", "PASSPHRASE", "CREDENTIAL",
    "CREDENTIALS", "CRED", "CREDS", "KEY", "KEYS", "APIKEY", "PRIVATE", "PEM", "P12", "PFX", "CERT", "AUTH",
    "SIGNATURE", "SESSION", "COOKIE", "DSN", "SALT", "OTP",
    # database connection strings carry their password by convention (DATABASE_URL, DB_URL, PG_CONN)
    "DB", "DATABASE", "CONN", "CONNECTION",
})
# ...and a value that holds a credential is refused whatever its name: a URL with user:password@,
# or a PEM block (a private key or certificate pasted into a variable)
PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----")


def secret_reason(name: str, value: str | None) -> str | None:
    """Why a variable must not be shipped to a job, or None when it may be."""
    from pipelines.redaction import has_url_credentials

    words = {word.upper() for word in re.split(r"[_\-.]+|(?<=[a-z])(?=[A-Z])", name) if word}
    found = sorted(words & SECRET_WORDS)
    if found:
        return f"its name has {found[0]!r}, which marks a credential"
    if value is not None and has_url_credentials(value):
        return "its value is a URL with a user or password in it"
    if value is not None and PEM_BLOCK.search(value):
        return "its value holds a PEM block (a key or certificate)"
    return None

# The working dir upload is capped at 100 MiB and includes .git unless excluded
# (ray#45602, #55877); local data and stores are read from storage, not shipped.
WORKING_DIR_EXCLUDES = [".git", ".venv", "venv", ".vaepipe", "__pycache__", "*.egg-info", ".pytest_cache",
                        "build", "dist", "data/", "*.safetensors", "*.pt", "*.ckpt"]

TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "STOPPED")


class SubmitError(UserError):
    """A job could not be submitted or followed; the message says why and what to do."""


@dataclass(frozen=True)
class JobRequest:
    """Everything sent to the Jobs API for one submission."""

    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]


def shipped_env_vars(environ: Mapping[str, str], extra_names: Sequence[str] = ()) -> dict[str, str]:
    """The storage settings set here, plus the names asked for; refuses anything that looks secret, by
    name or by value (the storage settings too: an endpoint URL can carry user:password@)."""
    for name in extra_names:
        if name not in environ:
            raise SubmitError(f"--env {name}: not set in this environment, so there is no value to pass")
    shipped = {name: environ[name] for name in (*STORAGE_ENV_VARS, *extra_names) if name in environ}
    for name, value in shipped.items():
        reason = secret_reason(name, value)
        if reason:
            where = f"--env {name}" if name in extra_names else name
            raise SubmitError(f"{where}: refusing to ship it to the job ({reason}); env_vars are shown in the Ray "
                              "dashboard. Give the cluster its credentials through its own identity (IAM role, "
                              "Kubernetes Secret, or the environment of `ray start`)")
    return shipped


def default_working_dir(start: Path) -> Path:
    """The nearest folder at or above `start` holding a pyproject.toml (the project), else `start`."""
    start = start.resolve()
    return next((folder for folder in (start, *start.parents) if (folder / "pyproject.toml").is_file()), start)


def config_path_in_working_dir(config: str, working_dir: Path, cwd: Path) -> str:
    """The config file's path relative to the shipped working dir, where the entrypoint runs.

    A URI (s3://…) is refused: jobs read their config from a file, and `submit` ships it with the working dir.
    """
    if "://" in config:
        raise SubmitError(f"config {config}: a job reads its config from a file shipped with the working dir, not "
                          f"from storage; copy it into the project first (e.g. `aws s3 cp {config} configs/`) and "
                          "pass that path")
    path = (cwd / config).resolve()
    if not path.is_file():
        raise SubmitError(f"config file {config} does not exist (looked for {path})")
    try:
        return path.relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise SubmitError(f"config file {path} is outside the working dir {working_dir.resolve()} that is shipped "
                          "to the cluster; move it inside or pass --working-dir") from None


def replace_arg_value(args: Sequence[str], old: str, new: str) -> list[str]:
    """Replace the argument `old` (alone or as --flag=old) by `new`."""
    replaced = []
    for arg in args:
        if arg == old:
            arg = new
        elif arg.startswith("-") and arg.endswith(f"={old}"):
            arg = arg[: -len(old)] + new
        replaced.append(arg)
    return replaced


def new_submission_id(job: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"vaepipe-{job}-{stamp}-{secrets.token_hex(3)}"


def build_request(job: str, job_args: Sequence[str], working_dir: Path, env_vars: Mapping[str, str],
                  submission_id: str | None = None) -> JobRequest:
    """The request for `vaepipe <job> <job_args>`; `submission_id` (checked as a plain name) or a new one."""
    from pipelines.naming import InvalidName, validate_name

    if submission_id is not None:
        try:
            validate_name(submission_id, "--submission-id")
        except InvalidName as err:
            raise SubmitError(str(err)) from None
    return JobRequest(
        submission_id=submission_id or new_submission_id(job),
        entrypoint=shlex.join(["vaepipe", job, *job_args]),
        runtime_env={"working_dir": str(working_dir), "excludes": list(WORKING_DIR_EXCLUDES),
                     "env_vars": dict(env_vars)},
    )


# --- talking to the Jobs API ------------------------------------------------------

def unreachable_message(address: str, reason: object) -> str:
    return (f"cannot reach the Ray Jobs API at {address}: {str(reason).rstrip('.')}; is the head node running "
            "(`ray start --head --dashboard-host 0.0.0.0`) and is its dashboard port (default 8265) reachable?")


def connect(address: str, environ: Mapping[str, str]):
    """A JobSubmissionClient for `address`; RAY_AUTH_TOKEN, when set, authenticates (never shipped)."""
    import requests
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    from pipelines.runtime.ray_session import explicit_address

    token = environ.get("RAY_AUTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        with explicit_address():
            return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as err:
        raise SubmitError(f"the Ray Jobs API at {address} refused the request: {err} "
                          "(set RAY_AUTH_TOKEN to the cluster's token)") from None
    except (ConnectionError, requests.exceptions.RequestException, RuntimeError, ValueError) as err:
        raise SubmitError(unreachable_message(address, err)) from None


def find_job(client, submission_id: str):
    """The cluster's job of this submission id (its `JobDetails`), or None when there is none."""
    try:
        return next((job for job in client.list_jobs() if job.submission_id == submission_id), None)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise SubmitError(f"the Ray Jobs API did not list its jobs: {err}") from None


def submit(client, request: JobRequest) -> tuple[str, object]:
    """Submit the request; a submission id the cluster already has is not submitted again. Returns (job id,
    the existing job's details or None when this call submitted it). The same id for another entrypoint is
    refused, naming the job that has it."""
    existing = find_job(client, request.submission_id)
    if existing is None:
        try:
            return client.submit_job(entrypoint=request.entrypoint, submission_id=request.submission_id,
                                     runtime_env=request.runtime_env), None
        except (ConnectionError, RuntimeError, ValueError) as err:
            existing = find_job(client, request.submission_id)  # a concurrent submission of the same id won
            if existing is None:
                raise SubmitError(f"the Ray Jobs API did not accept the job: {err}") from None
    if existing.entrypoint != request.entrypoint:
        raise SubmitError(f"submission id {request.submission_id} is already the cluster's job "
                          f"`{existing.entrypoint}` ({existing.status}), not `{request.entrypoint}`; choose another "
                          "--submission-id")
    return request.submission_id, existing


def dashboard_url(client, job_id: str) -> str:
    return f"{client.get_address()}/#/jobs/{job_id}"


def follow_commands(client, job_id: str) -> str:
    address = shlex.quote(client.get_address())
    return (f"follow: ray job logs --follow {job_id} --address {address}\n"
            f"stop:   ray job stop {job_id} --address {address}")


def stream_logs(client, job_id: str, write: Callable[[str], None]) -> None:
    """Write the job's logs as they arrive until it ends (tail_job_logs is async)."""
    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    asyncio.run(tail())


def wait_for_end(client, job_id: str, poll_s: float = 1.0):
    """The job's details once its status is terminal."""
    while True:
        info = client.get_job_info(job_id)
        if str(info.status) in TERMINAL_STATUSES:
            return info
        time.sleep(poll_s)
