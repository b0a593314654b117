"""What every batch command (score, generate, embed, nightly) shares: its flags, how they become config fields,
and the run itself — an output that is already complete is reported (exit 0), a finished one gets its
report and the lines that say where it is."""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from pipelines.cli.console import progress, result


ENGINE_FLAG_HELP = ("local: in this process, no Ray; ray: Ray Data/Train (a Ray started for the job, the warm one "
                    "of `vaepipe ray up`, or ray.address); auto (default): local for small inputs, ray above the "
                    "measured crossover and always when attached to a Ray cluster")


def add_engine_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["auto", "ray", "local"], help=ENGINE_FLAG_HELP)


def add_batch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    add_engine_flag(parser)
    from pipelines.batch.config import CPU_ACTOR_CPUS, ComputeConfig

    defaults = ComputeConfig()  # the one owner of these defaults: the help says what the config will hold
    parser.add_argument("--actors", type=int, help=f"model actors in the pool (default {defaults.actors}; engine ray)")
    parser.add_argument("--cpus-per-actor", type=float, help=f"logical CPUs per actor (default {CPU_ACTOR_CPUS:g}; "
                        "with --use-gpu, Ray Data's 1 beside each GPU actor; engine ray)")
    parser.add_argument("--batch-size", type=int, help=f"rows per model call (default {defaults.batch_size})")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU (or --set compute.gpus_per_actor) per actor")
    parser.add_argument("--overwrite", action="store_true", help="replace an output that is already complete")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override any config field, e.g. compute.actors=4 or ray.address=auto (repeatable)")


def batch_fields(args: argparse.Namespace) -> dict:
    """Config fields from the shared flags that were given (unset flags keep the config's defaults)."""
    compute = {"actors": args.actors, "cpus_per_actor": args.cpus_per_actor, "batch_size": args.batch_size,
               "use_gpu": args.use_gpu or None}
    fields = {"storage": args.storage, "overwrite": args.overwrite or None, "engine": args.engine,
              "compute": {k: v for k, v in compute.items() if v is not None}}
    return {k: v for k, v in fields.items() if v not in (None, {})}


def build_batch_config(model_class, fields: dict, args: argparse.Namespace, source: str = "command line"):
    from pipelines.config import build_config

    given = {k: v for k, v in fields.items() if v is not None}
    return build_config(model_class, {**given, **batch_fields(args)}, args.set or (), source=source)


def run_batch_command(run: Callable, config, done: Callable[[object], str],
                      report: Optional[Callable] = None, exit_status: Callable[[object], int] = lambda _: 0) -> int:
    """`run(config, progress=...)`, then its report (`report(root, output_uri)`) and `done(outcome)` printed;
    the command's exit status is `exit_status(outcome)` (an alarm about a committed output)."""
    from pipelines.reports.after_job import attach_report, report_after_job
    from pipelines.storage.commit import AlreadyComplete
    from pipelines.storage.layout import storage_root

    try:
        outcome = run(config, progress=progress)
    except AlreadyComplete as complete:
        result(f"already complete: {complete}")
        return 0
    if report is not None:
        attach_report(outcome.tracked, report_after_job(report, storage_root(config.storage), outcome.output_uri,
                                                        progress=progress))
    result(done(outcome))
    result(f"  at {outcome.output_uri}/")
    return exit_status(outcome)
