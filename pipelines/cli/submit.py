"""`vaepipe submit`: run any job on a remote Ray cluster through the Ray Jobs API."""
from __future__ import annotations

import argparse
import sys

from pipelines.cli.console import result
from pipelines.jobs.submit import STORAGE_ENV_VARS

# Commands that act on this machine (its store, its local Ray, the demo) or only list the registry: not cluster jobs.
NOT_SUBMITTABLE = ("submit", "storage", "demo", "ray", "models")


def _add_submit_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--address", help="the cluster's Jobs API, e.g. http://head:8265 (default $RAY_ADDRESS)")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return; do not follow logs")
    parser.add_argument("--working-dir", help="folder shipped to the cluster, where the job runs (default: the "
                                              "project folder holding pyproject.toml above the current directory)")
    parser.add_argument("--submission-id", metavar="ID",
                        help="the job's id on the cluster (default: a new one); submitting an id the cluster already "
                             "has reports (and follows) that job instead of running it twice")
    parser.add_argument("--env", action="append", metavar="KEY",
                        help="also pass this local environment variable to the job (repeatable; "
                             "secret-looking names are refused)")
    return parser


def _submittable_jobs(parser: argparse.ArgumentParser) -> list[str]:
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return [name for name in commands.choices if name not in NOT_SUBMITTABLE]


def cmd_submit(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from pipelines.jobs import submit

    # Options may also follow the job's own arguments: pick ours out, leave the rest to the job.
    options = _add_submit_options(argparse.ArgumentParser(prog="vaepipe submit", add_help=False, allow_abbrev=False))
    args, job_args = options.parse_known_args(args.job_args, namespace=args)
    parser = args.parser  # the whole `vaepipe` parser (set by cli.main), to check the job's own arguments
    jobs = _submittable_jobs(parser)
    if args.job not in jobs:
        raise submit.SubmitError(f"{args.job!r} is not a job that can be submitted; choose one of {', '.join(jobs)}")
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise submit.SubmitError("no cluster given: pass --address http://<head>:8265 (or set RAY_ADDRESS)")

    job_namespace = parser.parse_args([args.job, *job_args])  # the job's own usage errors, before any upload
    cwd = Path.cwd()
    working_dir = Path(args.working_dir).resolve() if args.working_dir else submit.default_working_dir(cwd)
    if not working_dir.is_dir():
        raise submit.SubmitError(f"--working-dir {working_dir} is not a folder")
    config = getattr(job_namespace, "config", None)
    if config:
        job_args = submit.replace_arg_value(job_args, config,
                                            submit.config_path_in_working_dir(config, working_dir, cwd))
    request = submit.build_request(args.job, job_args, working_dir, submit.shipped_env_vars(os.environ, args.env or ()),
                                   submission_id=args.submission_id)

    client = submit.connect(address, os.environ)
    job_id, existing = submit.submit(client, request)
    if existing is None:
        result(f"submitted {job_id}: {request.entrypoint}")
        result(f"  working dir {working_dir}, env {sorted(request.runtime_env['env_vars']) or 'none'}")
    else:
        result(f"already submitted {job_id} ({existing.status}): {existing.entrypoint}; not submitted again")
    result(f"  dashboard: {submit.dashboard_url(client, job_id)}")
    if args.no_wait:
        result(submit.follow_commands(client, job_id))
        return 0
    try:
        try:
            submit.stream_logs(client, job_id, lambda text: print(text, end="", flush=True))
        except RuntimeError as err:
            print(f"log stream ended early ({err}); waiting for the job to finish", file=sys.stderr)
        info = submit.wait_for_end(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running on the cluster\n{submit.follow_commands(client, job_id)}",
              file=sys.stderr)
        return 130
    if str(info.status) == "SUCCEEDED":
        result(f"job {job_id} SUCCEEDED")
        return 0
    print(f"error: job {job_id} {info.status}: {info.message}", file=sys.stderr)
    return 1


def register(commands) -> None:
    submit = commands.add_parser(
        "submit", help="run a job on a remote Ray cluster (Ray Jobs API) and follow its logs",
        description="Ship the working dir to the cluster and run `vaepipe JOB ARGS...` there. Config files named "
                    "in ARGS must lie inside the working dir. Exits 0 when the job succeeds, 1 when it fails or is "
                    "stopped; Ctrl-C stops following, not the job.",
        epilog="Credentials: only non-secret storage settings set here are passed to the job "
               f"({', '.join(STORAGE_ENV_VARS)}), plus --env names; runtime_env variables are visible in the "
               "Ray dashboard, so secrets (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, *SECRET*, "
               "*TOKEN*, *PASSWORD*, *KEY) are never sent. The cluster's own identity supplies storage credentials: "
               "an IAM role, a Kubernetes Secret, or the environment of the `ray start` process. RAY_AUTH_TOKEN, "
               "when set, authenticates this client to the cluster and is not passed to the job.\n\n"
               "Examples:\n  vaepipe submit train configs/digits.yaml --set train.epochs=5 --address http://head:8265\n"
               "  vaepipe submit prepare digits --address http://head:8265 --no-wait\n"
               "  vaepipe submit nightly configs/nightly.yaml --date 2026-11-24 --submission-id nightly-2026-11-24 "
               "--address http://head:8265   # a retried scheduler run finds the same job",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("job", help=f"the job to run: one of the commands except {', '.join(NOT_SUBMITTABLE)}")
    submit.add_argument("job_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the job's own arguments")
    _add_submit_options(submit)
    submit.set_defaults(handler=cmd_submit)
