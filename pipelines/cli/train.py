"""`vaepipe train`."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_engine_flag
from pipelines.cli.console import progress, result


def config_from_args(args: argparse.Namespace, model, example: str):
    """The job config of a `train`/`tune` command: its YAML file + `--set` overrides, or with `--resume ID`
    the config stored with that run or sweep (+ overrides)."""
    from pipelines.config import ConfigError, build_config, load_config
    from pipelines.storage.layout import storage_root
    from pipelines.training.runs import check_resume_changes, load_run_config

    overrides = list(args.set or ())
    if args.storage:
        overrides.append(f"storage={args.storage}")
    if getattr(args, "engine", None):
        overrides.append(f"engine={args.engine}")
    if args.resume:
        stored = load_run_config(storage_root(args.storage), args.resume, model)
        resumed = build_config(model, stored.model_dump(mode="json"), overrides, source=f"run {args.resume}")
        check_resume_changes(stored, resumed, args.resume)
        return resumed
    if not args.config:
        raise ConfigError(f"vaepipe {args.command} needs a config file (e.g. {example}) or --resume ID")
    return load_config(model, args.config, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.layout import storage_root
    from pipelines.training.config import TrainJobConfig

    apply_store_env()
    config = config_from_args(args, TrainJobConfig, "configs/digits.yaml")
    # the job's modules import torch (~2.5 s): a config refused above is answered before they load
    from pipelines.jobs.train import run_training
    from pipelines.reports.after_job import attach_report, report_after_job
    from pipelines.reports.training import build_training_report

    outcome = run_training(config, resume=args.resume, progress=progress)
    index = report_after_job(build_training_report, storage_root(config.storage), outcome.model, progress=progress)
    attach_report(outcome.tracked, index)
    result(f"registered model {outcome.model} (best epoch {outcome.best_epoch} of {outcome.epochs}, val -ELBO "
          f"{outcome.metrics['val_neg_elbo']:.3f} nats) in {outcome.seconds:.0f} s")
    result(f"  checkpoints: {outcome.run_uri}/")
    return 0


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train a VAE on a prepared dataset (in this process or with Ray Train) and register the "
                      "best model",
        description="Ray Data streams the dataset's shards into Ray Train workers (DDP; GPU with "
                    "scaling.use_gpu), or, for a dataset below the measured crossover (engine auto) or with "
                    "--engine local, the same loop runs in this process on the rows read with pyarrow. Each epoch "
                    "prints the β-weighted training loss and the validation negative "
                    "ELBO at β=1 (comparable across β), reconstruction and KL. Checkpoints go to "
                    "<storage>/runs/<run>/; the best one is calibrated and registered as models/<name>/<version>/.",
        epilog="Examples:\n  vaepipe train configs/digits.yaml\n"
               "  vaepipe train configs/digits.yaml --set train.epochs=50 --set scaling.num_workers=4 "
               "--set scaling.use_gpu=true --engine ray\n"
               "  vaepipe train configs/digits.yaml --engine local   # one process, no Ray\n"
               "  vaepipe train --resume digits-20261125-101500-ab12cd",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("config", nargs="?", help="YAML job config (see configs/)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config field, e.g. train.epochs=50 (repeatable)")
    train.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    add_engine_flag(train)
    train.set_defaults(handler=cmd_train)

