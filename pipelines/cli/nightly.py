"""`vaepipe nightly`: the scheduled scoring run."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_engine_flag
from pipelines.cli.score import score_and_report


def cmd_nightly(args: argparse.Namespace) -> int:
    from pipelines.jobs.nightly import nightly_config
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    overrides = list(args.set or ())
    overrides += [f"{key}={value}" for key, value in (("date", args.date), ("storage", args.storage),
                                                      ("engine", args.engine)) if value]
    if args.overwrite:
        overrides.append("overwrite=true")
    return score_and_report(nightly_config(args.config, overrides))


def register(commands) -> None:
    nightly = commands.add_parser(
        "nightly", help="score today's input with the promoted model (what the schedule runs)",
        description="Run the scoring job from a config file: a bare model name means NAME@PROMOTED and the date "
                    "defaults to today (UTC). A date whose scores are complete is reported and skipped (exit 0) "
                    "unless --overwrite.",
        epilog="Examples:\n  vaepipe nightly configs/nightly.yaml\n"
               "  vaepipe nightly configs/nightly.yaml --date 2026-11-24 --overwrite\n"
               "  vaepipe nightly configs/nightly.yaml --set input=datasets/batch-2026-11-25\n"
               "  vaepipe nightly configs/nightly.yaml --engine ray   # on Ray whatever the partition's size",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    nightly.add_argument("config", help="YAML scoring config (see configs/nightly.yaml)")
    nightly.add_argument("--date", help="partition date YYYY-MM-DD (default: the config's, else today UTC)")
    nightly.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    nightly.add_argument("--overwrite", action="store_true", help="score again even if the date is complete")
    add_engine_flag(nightly)
    nightly.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    nightly.set_defaults(handler=cmd_nightly)
