"""The `vaepipe` command: one sub-command per job, each a thin layer over a job module."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from pipelines import __version__
from pipelines.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from pipelines.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="vaepipe",
        description="Train variational autoencoders on Ray from object storage, then score, generate and embed.",
        epilog="Storage: jobs read and write under one root URI (--storage, $VAEPIPE_STORAGE, default s3://vaepipe). "
               "S3 endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL, "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_PROFILE); when they are unset, the "
               "embedded store started by `vaepipe storage up` is used.",
    )
    parser.add_argument("--version", action="version", version=f"vaepipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
