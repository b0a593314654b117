"""`vaepipe score`: anomaly scores for a prepared dataset."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config, run_batch_command


# the exit status of a scoring run whose output is committed but raised a drift alarm under --fail-on-drift
DRIFT_EXIT_STATUS = 3


def drift_exit_status(config, summary: dict) -> int:
    """Print the run's drift alarms; `DRIFT_EXIT_STATUS` when there are any and the config says to fail."""
    import sys

    alarms = summary.get("drift", {}).get("alarms", [])
    if not alarms:
        return 0
    print(f"drift alarm{'s' if len(alarms) > 1 else ''}: {'; '.join(alarms)}", file=sys.stderr)
    return DRIFT_EXIT_STATUS if config.drift.fail else 0


def score_and_report(config) -> int:
    """Run the scoring job, write its report and print where the scores are (score and nightly); exit status
    `DRIFT_EXIT_STATUS` after the commit when a drift alarm fails the run (`drift.fail`, --fail-on-drift)."""
    import json

    from pipelines.jobs.score import run_scoring
    from pipelines.reports.scores import build_scores_report

    return run_batch_command(run_scoring, config, report=build_scores_report, done=lambda outcome: (
        f"scored {outcome.rows} rows with {outcome.model} in {outcome.seconds:.1f} s\n"
        + json.dumps(outcome.summary, indent=2)), exit_status=lambda outcome: drift_exit_status(config,
                                                                                               outcome.summary))


def cmd_score(args: argparse.Namespace) -> int:
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.jobs.score import ScoreJobConfig

    apply_store_env()
    fields = {"model": args.model, "input": args.input, "output": args.output, "date": args.date,
              "split": args.split, "threshold": args.threshold, "contamination": args.contamination,
              "iw_samples": args.iw_samples, "normal_label": args.normal_label,
              "passthrough": [c.strip() for c in args.passthrough.split(",") if c.strip()] if args.passthrough
              else None, "drift": {"fail": True} if args.fail_on_drift else None}
    return score_and_report(build_batch_config(ScoreJobConfig, fields, args))


def register(commands) -> None:
    score = commands.add_parser(
        "score", help="anomaly scores for every row of a prepared dataset (in this process or on Ray Data)",
        description="Score a prepared dataset with a registered model: negative ELBO, reconstruction and KL "
                    "terms, optional importance-weighted NLL, percentile against the model's validation scores "
                    "and is_anomaly. Writes scores/<model>-v<version>/<dataset>/<date>/ (Parquet parts, "
                    "_summary.json, _SUCCESS). The input must have the model's training schema. The summary "
                    "also compares the scores with the model's validation scores (PSI, KS, the anomaly rate "
                    "against the expected one) and names any drift alarm (limits: --set drift.psi_alarm=…, "
                    "drift.ks_alarm, drift.anomaly_rate_alarm). Exit status: 0 done or already complete, 2 bad "
                    "input (nothing committed), 3 a drift alarm under --fail-on-drift (the scores ARE committed).",
        epilog="Examples:\n  vaepipe score --model digits@PROMOTED --input digits --split test\n"
               "  vaepipe score --model models/digits@3 --input datasets/new-batch --date 2026-11-24\n"
               "  vaepipe score --model fair@latest --input fair --contamination 0.05 --passthrough age\n"
               "  vaepipe score --model digits --input digits --normal-label 0 --iw-samples 50 --overwrite\n"
               "  vaepipe score --model digits@3 --input big-partition --engine ray --actors 8\n"
               "  vaepipe score --model fair@PROMOTED --input fair-2026-11-24 --set series=fair --fail-on-drift",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    score.add_argument("--model", required=True, help="NAME@VERSION, NAME@PROMOTED or NAME@latest")
    score.add_argument("--input", required=True, help="prepared dataset name or URI")
    score.add_argument("--output", help="output root folder or URI (default scores)")
    score.add_argument("--date", help="partition date YYYY-MM-DD (default: today, UTC)")
    score.add_argument("--split", choices=["train", "val", "test"], help="score one split only (default: all rows)")
    score.add_argument("--passthrough", help="comma-separated input columns to copy to the output")
    threshold = score.add_mutually_exclusive_group()
    threshold.add_argument("--threshold", type=float, help="is_anomaly when anomaly_score exceeds this")
    threshold.add_argument("--contamination", type=float,
                           help="flag this upper fraction of the model's validation scores")
    score.add_argument("--iw-samples", type=int, help="importance samples for iw_nll (default 0 = off)")
    score.add_argument("--normal-label", help="label value of normal rows (for ROC-AUC with multi-class labels)")
    score.add_argument("--fail-on-drift", action="store_true",
                       help="exit 3 after committing when the scores raise a drift alarm (PSI, KS or anomaly rate)")
    add_batch_flags(score)
    score.set_defaults(handler=cmd_score)
