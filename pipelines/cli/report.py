"""`vaepipe report`: build a report of a model, run, sweep, scores or samples output again, on demand."""
from __future__ import annotations

import argparse

from pipelines.cli.console import result

KINDS = ("model", "run", "sweep", "scores", "samples", "interpretation")


def build_report(kind: str, target: str, root: str):
    """The `Report` of `target` (a model reference, run or sweep id, or an output prefix) of `kind`."""
    from pipelines.reports.interpretation import build_interpretation_report
    from pipelines.reports.samples import build_samples_report
    from pipelines.reports.scores import build_scores_report
    from pipelines.reports.sweep import build_sweep_report
    from pipelines.reports.training import build_training_report, model_of_run
    from pipelines.storage.layout import SWEEP_TABLE, output_root, run_uri
    from pipelines.storage.objects import exists

    if kind == "model":
        return build_training_report(root, target)
    if kind == "sweep" or (kind == "run" and exists(f"{run_uri(root, target)}/{SWEEP_TABLE}")):
        return build_sweep_report(root, target)
    if kind == "run":
        return build_training_report(root, model_of_run(root, target))
    prefix = output_root(root, target)
    if kind == "interpretation":
        return build_interpretation_report(root, prefix)
    return build_scores_report(root, prefix) if kind == "scores" else build_samples_report(root, prefix)


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines.storage.layout import storage_root
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.reports.page import copy_report, where_to_open, write_report

    apply_store_env()
    root = storage_root(args.storage)
    report = build_report(args.kind, args.target, root)
    index = write_report(root, report)
    result(f"wrote {report.title}: {index}")
    local = copy_report(index, args.local_dir) if args.local_dir else None
    result(where_to_open(index, report.command, local))
    return 0


def register(commands) -> None:
    report = commands.add_parser(
        "report", help="an HTML report with plots of a model, run, sweep, scores or samples output",
        description="Writes reports/<id>/index.html with PNG plots beside it on the storage root (committed with "
                    "_SUCCESS, replacing an older report of the same thing) and prints where to open it. Jobs "
                    "write their report when they finish; this builds one again or for an older output.\n\n"
                    "  model   training report of a registered model: loss curves, reconstructions, prior samples,\n"
                    "          latent traversals (images), latent means in 2-D coloured by label\n"
                    "  run     the same for the model a training run registered (or the sweep report of a sweep id)\n"
                    "  sweep   validation NLL vs β and latent size, rate–distortion, sortable trial table\n"
                    "  scores  score histogram with threshold, top anomalies, ROC and PR curves with labels\n"
                    "  samples generated vs real: per-column distributions, correlation difference (tables)\n"
                    "  interpretation  a `vaepipe interpret` output: measures, factor-labelled traversals,\n"
                    "          factor × dimension mutual information\n\n"
                    "On S3 storage, --local-dir DIR also copies the report to DIR/<id>/ for a browser.",
        epilog="Examples:\n  vaepipe report model digits@3\n  vaepipe report model digits@PROMOTED --local-dir /tmp/reports\n"
               "  vaepipe report run digits-20261125-101500-ab12cd\n"
               "  vaepipe report sweep digits-sweep-20261125-101500-ab12cd\n"
               "  vaepipe report scores scores/digits-v3/digits/2026-11-24\n"
               "  vaepipe report samples s3://vaepipe/samples/fair-v2/seed7-n100000-t1\n"
               "  vaepipe report interpretation models/shapes/2/interpretations/shapes/all",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("kind", choices=KINDS, help="what to report on")
    report.add_argument("target", help="model reference (model), run or sweep id (run, sweep), or the output's "
                                       "folder under the storage root or full URI (scores, samples, interpretation)")
    report.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    report.add_argument("--local-dir", metavar="DIR", help="also copy the report to DIR/<id>/ and print that path")
    report.set_defaults(handler=cmd_report)
