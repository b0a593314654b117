"""`vaepipe promote`."""
from __future__ import annotations

import argparse


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.jobs.promote import promote_model
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    reference = promote_model(args.model, args.storage)
    print(f"promoted {reference}: nightly scoring ({reference.split('@')[0]}@PROMOTED) now uses it")
    return 0


def register(commands) -> None:
    promote = commands.add_parser("promote", help="mark a model version as the one nightly scoring uses",
                                  description="Write models/<name>/PROMOTED pointing at a registered version.",
                                  epilog="Examples:\n  vaepipe promote digits@3\n  vaepipe promote digits   # the latest",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    promote.add_argument("model", help="model reference: NAME@VERSION (or NAME for the latest)")
    promote.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    promote.set_defaults(handler=cmd_promote)
