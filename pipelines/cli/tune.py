"""`vaepipe tune`."""
from __future__ import annotations

import argparse

from pipelines.cli.console import progress, result


def report_sweep(outcome, root: str) -> None:
    """What the command leaves beside a finished sweep: its figure (runs/<sweep>/sweep.png) and its report."""
    from pipelines.reports.after_job import attach_report, report_after_job
    from pipelines.reports.sweep import build_sweep_report, write_sweep_figure

    write_sweep_figure(outcome.sweep_uri, outcome.trials, outcome.best_trial)
    attach_report(outcome.tracked, report_after_job(build_sweep_report, root, outcome.sweep_id, progress=progress))


def cmd_tune(args: argparse.Namespace) -> int:
    from pipelines.cli.train import config_from_args
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.layout import SWEEP_CSV, SWEEP_FIGURE, SWEEP_TABLE, storage_root
    from pipelines.training.sweep_config import SweepJobConfig

    apply_store_env()
    if args.metric:
        args.set = [*(args.set or ()), f"search.metric={args.metric}"]
    config = config_from_args(args, SweepJobConfig, "configs/digits-sweep.yaml")
    # torch and Ray Tune: after the config is accepted
    from pipelines.jobs.tune import run_sweep
    from pipelines.training.sweep_table import display_columns

    outcome = run_sweep(config, resume=args.resume, promote=args.promote, progress=progress)
    report_sweep(outcome, storage_root(config.storage))
    columns = [c for c in display_columns() if c in outcome.trials.columns and c not in ("best_epoch",)]
    by_mig = outcome.metric == "mig"
    table = outcome.trials[columns].sort_values("mig" if by_mig else "best_val_neg_elbo", ascending=not by_mig,
                                                na_position="last")
    result(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    result(f"sweep {outcome.sweep_id}: {len(table)} trials ({int(table['stopped_early'].sum())} stopped early by "
           f"ASHA) in {outcome.seconds:.0f} s")
    result(f"registered model {outcome.model} from trial {outcome.best_trial} ("
           + (f"MIG {outcome.best_mig:.3f} on the validation rows, " if outcome.best_mig is not None else "")
           + f"val -ELBO {outcome.metrics['val_neg_elbo']:.3f} nats at epoch {outcome.metrics['epoch']})"
          + ("; promoted: nightly scoring uses it" if outcome.promoted else ""))
    result(f"  results: {outcome.sweep_uri}/{SWEEP_TABLE} (and {SWEEP_CSV}), figure: {outcome.sweep_uri}/{SWEEP_FIGURE}")
    return 0


def register(commands) -> None:
    tune = commands.add_parser(
        "tune", help="search latent size, β, learning rate and widths with Ray Tune; register the best model",
        description="Each trial is a Ray Train run of the config's train/model/scaling sections with the searched "
                    "values (search.space) swapped in. ASHA stops poor trials early on the validation negative "
                    "ELBO at β=1 (comparable across β), and the lowest one is registered; with --metric mig (a dataset "
                    "with factor columns: vaepipe prepare shapes) every trial runs all its epochs and the trial whose "
                    "best checkpoint has the highest MIG on the validation rows is registered. On such a dataset "
                    "every trial's MIG is in the results table and the sweep report. Trials run concurrently as far as the cluster fits them: "
                    "each takes scaling.num_workers × scaling.cpus_per_worker CPUs plus 1 CPU for Ray Data reads, "
                    "and a config where not even one trial fits is refused. Results: <storage>/runs/<sweep>/"
                    "trials.parquet (+ .csv, sweep.png); the best trial's best checkpoint is calibrated and "
                    "registered as models/<name>/<version>/.",
        epilog="Examples:\n  vaepipe tune configs/digits-sweep.yaml\n"
               "  vaepipe tune configs/digits-sweep.yaml --set search.num_samples=16 --promote\n"
               "  vaepipe tune configs/shapes-sweep.yaml --metric mig    # select the most disentangled trial\n"
               "  vaepipe tune --resume digits-sweep-20261125-101500-ab12cd     # continue an interrupted sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("config", nargs="?", help="YAML sweep config (see configs/digits-sweep.yaml)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a config field, e.g. search.num_samples=16 (repeatable)")
    tune.add_argument("--resume", metavar="SWEEP",
                      help="continue an interrupted sweep: finished trials are kept, the others go on")
    tune.add_argument("--metric", choices=["neg_elbo", "mig"],
                      help="select the registered trial on the lowest validation -ELBO (default) or the highest "
                           "MIG (datasets with factor columns); sets search.metric")
    tune.add_argument("--promote", action="store_true",
                      help="mark the registered model as the version nightly scoring uses")
    tune.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    tune.set_defaults(handler=cmd_tune)
