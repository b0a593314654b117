"""`vaepipe nightly`: the scheduled scoring run, dated by the schedule, with catch-up of missed dates."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_engine_flag
from pipelines.cli.console import result
from pipelines.cli.score import DRIFT_EXIT_STATUS, drift_exit_status, score_and_report


def cmd_nightly(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from pipelines.jobs import nightly
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    overrides = list(args.set or ())
    overrides += [f"storage={args.storage}"] if args.storage else []
    overrides += [f"engine={args.engine}"] if args.engine else []
    overrides += ["overwrite=true"] if args.overwrite else []
    overrides += ["drift.fail=true"] if args.fail_on_drift else []
    config = nightly.nightly_config(args.config, overrides)
    run = nightly.run_date(config, args.date, args.scheduled_time, args.scheduled_job or None)
    first = (nightly.parse_day(args.since, "--since") if args.since
             else run.day - timedelta(days=config.catch_up_days))
    result(f"nightly run for {run.day} ({run.source})")
    if first == run.day:
        return score_and_report(nightly.scoring_config(config, run.day))
    return catch_up(config, nightly.catch_up_dates(first, run.day))


def catch_up(config, dates) -> int:
    """Score the dates that need it, each with its report; print what happened to every date. Exit status:
    2 when a date failed, else 3 when a scored date raised a drift alarm under drift.fail, else 0."""
    from pipelines.cli.console import progress
    from pipelines.jobs.nightly import FAILED, SCORED, run_catch_up
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.scores import build_scores_report
    from pipelines.storage.layout import storage_root

    root = storage_root(config.storage)
    results = run_catch_up(config, dates, progress, after_scoring=lambda outcome: report_after_job(
        build_scores_report, root, outcome.output_uri, progress=progress))
    counts = {status: sum(r.status == status for r in results) for status in dict.fromkeys(r.status for r in results)}
    result(f"catch-up {dates[0]} … {dates[-1]}: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    statuses = []
    for day in results:
        if day.status == SCORED:
            summary = day.outcome.summary
            detail = (f"{day.outcome.rows} rows → {day.output}/  (anomaly rate {summary['anomaly_rate']:.2%}, "
                      f"PSI {summary['drift']['psi']:.3f})")
        else:
            detail = day.error if day.status == FAILED else day.output or day.input
        result(f"  {day.day}  {day.status:<16}  {detail}")
        if day.status == SCORED:
            statuses.append(drift_exit_status(config, day.outcome.summary))
    if counts.get(FAILED):
        from pipelines.jobs.nightly import NightlyError

        raise NightlyError(f"{counts[FAILED]} of {len(dates)} date(s) failed: "
                           + "; ".join(f"{r.day}: {r.error}" for r in results if r.status == FAILED))
    return DRIFT_EXIT_STATUS if DRIFT_EXIT_STATUS in statuses else 0


def register(commands) -> None:
    nightly = commands.add_parser(
        "nightly", help="score the schedule's date with the promoted model, catching up missed dates",
        description=(
            "Run the scoring job from a config file (configs/nightly.yaml): a bare model name means NAME@PROMOTED.\n"
            "\n"
            "The date is the schedule's, not the clock's: --date, else --scheduled-time / --scheduled-job (what a\n"
            "CronJob or KubeRay RayCronJob passes), else the config's date, else now -- a time taken as a date in\n"
            "the config's time_zone, less its lag_days. A dated input names it: `input: events-{date}` reads\n"
            "datasets/events-2026-11-25 for 2026-11-25 (`{date:%Y%m%d}` takes any strftime form); the scores of\n"
            "every date go to scores/<model>-v<N>/<series>/<date>/, series defaulting to the input without its\n"
            "date (events).\n"
            "\n"
            "Catch-up: --since DATE (or catch_up_days in the config) scores every date from DATE to the run's date\n"
            "that has input and no _SUCCESS, oldest first, each once, and lists each date as scored, already\n"
            "complete or missing input (not an error). A date whose scores are complete is skipped unless\n"
            "--overwrite.\n"
            "\n"
            "Each run compares its scores with the model's validation scores (PSI, KS, the anomaly rate against\n"
            "the expected one) and names any drift alarm (limits under drift: in the config). Exit status: 0 done\n"
            "or nothing to do; 2 bad input or a failed date (nothing of that date committed); 3 a drift alarm\n"
            "with --fail-on-drift or drift.fail (the scores ARE committed)."),
        epilog="Examples:\n  vaepipe nightly configs/nightly.yaml\n"
               "  vaepipe nightly configs/nightly.yaml --date 2026-11-24 --overwrite\n"
               "  vaepipe nightly configs/nightly.yaml --scheduled-time 2026-11-25T02:00:00Z --fail-on-drift\n"
               "  vaepipe nightly configs/nightly.yaml --scheduled-job vaepipe-nightly-29926200   # 2026-11-25T02:00Z\n"
               "  vaepipe nightly configs/nightly.yaml --set input=events-{date} --since 2026-11-20\n"
               "  vaepipe nightly configs/nightly.yaml --set time_zone=Europe/Berlin --set lag_days=1\n"
               "  vaepipe nightly configs/nightly.yaml --engine ray   # on Ray whatever the partition's size",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    nightly.add_argument("config", help="YAML nightly config (see configs/nightly.yaml)")
    when = nightly.add_mutually_exclusive_group()
    when.add_argument("--date", help="the data's date YYYY-MM-DD (no time zone or lag applied)")
    when.add_argument("--scheduled-time", metavar="TIME",
                      help="the schedule's tick, RFC 3339 (2026-11-25T02:00:00Z: the form of KubeRay's "
                           "ray.io/cronjob-scheduled-timestamp annotation)")
    when.add_argument("--scheduled-job", metavar="NAME",
                      help="the name of the tick's job, <name>-<minutes since 1970> as a CronJob names its Jobs and "
                           "a RayCronJob its RayJobs; a name without it (a run started by hand), or an empty one, "
                           "means now")
    nightly.add_argument("--since", metavar="DATE",
                         help="also score every date from DATE (YYYY-MM-DD) to the run's date that has input and "
                              "no _SUCCESS, oldest first")
    nightly.add_argument("--fail-on-drift", action="store_true",
                         help="exit 3 after committing when a date's scores raise a drift alarm")
    nightly.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    nightly.add_argument("--overwrite", action="store_true", help="score again even if a date is complete")
    add_engine_flag(nightly)
    nightly.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    nightly.set_defaults(handler=cmd_nightly)
