"""`vaepipe promote`."""
from __future__ import annotations

import argparse

from pipelines.cli.console import progress, result


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.jobs.promote import promote_model
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.registry import PROMOTED

    apply_store_env()
    done = promote_model(args.model, args.storage, alias=args.alias, why=args.why or "", progress=progress)
    was = f"version {done.record.from_version}" if done.record.from_version is not None else "no version"
    uses = "; nightly scoring uses it" if done.alias == PROMOTED else ""
    result(f"{done.name}@{done.alias} → {done.reference} (was {was}){uses}")
    return 0


def register(commands) -> None:
    promote = commands.add_parser(
        "promote", help="point an alias (PROMOTED, champion, ...) of a model at a version, with a recorded reason",
        description="Move an alias of a registered model to a version. PROMOTED (the default) is the version "
                    "`vaepipe nightly` scores with; any other alias works the same (`NAME@champion` in --model "
                    "and configs). Every move is recorded (who, when, from, to, why) in models/<name>/aliases/ "
                    "and is a conditional write: when two promotions of the same alias race, one wins and the "
                    "other fails naming the winner (and is recorded as refused). A version registered with "
                    "MLflow tracking has its MLflow alias moved too. History: `vaepipe models show NAME`.",
        epilog="Examples:\n  vaepipe promote digits@3\n"
               "  vaepipe promote digits@3 --alias champion --why \"beats v2 on last week's data\"\n"
               "  vaepipe promote digits@challenger --alias PROMOTED --why \"shadow run looked fine\"\n"
               "  vaepipe promote digits   # the latest version becomes PROMOTED",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    promote.add_argument("model", help="model reference: NAME@VERSION, NAME@ALIAS, or NAME for the latest")
    promote.add_argument("--alias", default="PROMOTED", help="the alias to move (default PROMOTED)")
    promote.add_argument("--why", help="the reason, recorded in the alias's history")
    promote.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    promote.set_defaults(handler=cmd_promote)
