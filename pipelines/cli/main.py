"""The `vaepipe` command: one sub-command per job, each a thin layer over a job module.

A new command is a new module in this package with `register(commands)` adding its parser, plus one
entry in `COMMANDS` (in the order `--help` lists them). Nothing on the `--help` path imports Ray, torch
or pyarrow: command modules import their job inside the handler.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from typing import Callable, Sequence

from pipelines import __version__
from pipelines.cli import (augment, console, demo, embed, generate, interpret, local_ray, models, nightly, prepare, promote,
                           report, score, storage, submit, train, tune)
from pipelines.errors import UserError
from pipelines.redaction import redact
from pipelines.storage.layout import ENV_ALLOW_SYSTEM_PATHS

COMMANDS = [demo, storage, local_ray, prepare, train, tune, promote, models, score, generate, augment, embed, interpret,
            nightly, report, submit]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaepipe",
        description="Train variational autoencoders on Ray from object storage, then score, generate and embed.",
        epilog="Storage: jobs read and write under one root URI (--storage, $VAEPIPE_STORAGE, default s3://vaepipe). "
               "S3 endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL, "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_PROFILE); when they are unset, the "
               "embedded store started by `vaepipe storage up` is used.",
    )
    parser.add_argument("--version", action="version", version=f"vaepipe {__version__}")
    parser.add_argument("--allow-system-paths", action="store_true",
                        help="allow a local storage root or output under a system directory (/etc, /usr, ...), "
                             "which is refused by default as a likely typo")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", "-q", action="store_true",
                          help="print results, warnings and errors only (no progress lines)")
    loudness.add_argument("--verbose", "-v", action="store_true",
                          help="also print Ray's own output (worker logs, Ray Data and Train messages), hidden by default")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="json: one JSON object per line (time, level, kind, message) for log collectors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.parser = parser  # `submit` checks a job's own arguments with it
    handler: Callable[[argparse.Namespace], int] = args.handler
    console.configure("quiet" if args.quiet else "verbose" if args.verbose else "normal", args.log_format)
    from pipelines.runtime import ray_console

    ray_console.set_verbose(args.verbose)
    allowed_before = os.environ.get(ENV_ALLOW_SYSTEM_PATHS)
    if args.allow_system_paths:
        os.environ[ENV_ALLOW_SYSTEM_PATHS] = "1"
    try:
        return handler(args)
    except UserError as err:
        # one line a person can act on; whatever a library quoted into it, never a secret
        line = "; ".join(part.strip() for part in str(err).splitlines() if part.strip())
        if args.log_format == "json":
            console.LOGGER.error(redact(line))
        else:
            print(f"error: {redact(line)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if allowed_before is None:
            os.environ.pop(ENV_ALLOW_SYSTEM_PATHS, None)
        else:
            os.environ[ENV_ALLOW_SYSTEM_PATHS] = allowed_before


def run() -> None:
    """The `vaepipe` executable: `main()`, then `exit_fast` with its status."""
    exit_fast(main())


def exit_fast(code: int) -> None:
    """Exit with `code` as Python would, less the last step: freeing every object of torch, pandas and the rest
    one by one, 0.5-1 s of every small job on 2 cores (as mypy exits, for the same reason). The atexit handlers
    still run first (Ray's shutdown, MLflow's end of run, temporary folders' clean-up, logging's flush). Python's
    own exit is taken instead where a thread other than daemons still runs (it waits for it), and under a profiler
    or debugger (`python -m cProfile -m pipelines.cli ...` writes its results once the program returns)."""
    if sys.getprofile() is not None or sys.gettrace() is not None or any(
            thread.is_alive() and not thread.daemon for thread in threading.enumerate()
            if thread is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what Python's exit calls: public in behaviour, underscored in name since 2.x
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`vaepipe ... | head`): nothing more can be said there
            pass
    os._exit(code)
