"""The `vaepipe` command: one sub-command per job, each a thin layer over a job module."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from pipelines import __version__


def _progress(message: str) -> None:
    print(f"  {message}", flush=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is written for a person: printed alone, without a traceback."""
    from pipelines.config_loading import ConfigError
    from pipelines.datasets.catalog import DatasetError
    from pipelines.datasets.features import FeatureError
    from pipelines.datasets.sources import SourceError
    from pipelines.naming import InvalidName
    from pipelines.registry import ModelNotFound
    from pipelines.storage import StorageError
    from pipelines.submit import SubmitError
    from pipelines.train import TrainingError

    return (ConfigError, DatasetError, FeatureError, SourceError, InvalidName, StorageError, ModelNotFound,
            TrainingError, SubmitError)


# --- storage ------------------------------------------------------------------------

def cmd_storage(args: argparse.Namespace) -> int:
    from pipelines.object_store import EmbeddedStore

    store = EmbeddedStore()
    if args.action == "up":
        info = store.up()
        print(f"embedded S3 store running at {info.endpoint} (data in {store.root / 'data'})")
        print(f"credentials for other tools: source {store.root / 'env'}")
    elif args.action == "down":
        store.down()
        print(f"embedded S3 store stopped; data kept in {store.root / 'data'}")
    else:
        info = store.status()
        print(f"embedded S3 store: {'running at ' + info.endpoint if info else 'not running'} ({store.root})")
        return 0 if info else 3
    return 0


# --- prepare ------------------------------------------------------------------------

def _csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"image shape must be C,H,W (e.g. 1,28,28), got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def prepare_config_from_args(args: argparse.Namespace):
    from pipelines.config_loading import build_config, load_yaml
    from pipelines.datasets.prepare import PrepareConfig

    data = load_yaml(args.config) if args.config else {}
    flags = {
        "source": args.source, "name": args.name, "storage": args.storage, "rows_per_shard": args.rows_per_shard,
        "columns": _csv_list(args.columns), "categorical": _csv_list(args.categorical),
        "numeric": _csv_list(args.numeric), "id_column": args.id_column, "label_column": args.label_column,
        "image_shape": args.image_shape, "impute": args.impute, "overwrite": args.overwrite or None,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    if "name" not in data and "source" in data:
        data["name"] = data["source"].removeprefix("builtin:")
    return build_config(PrepareConfig, data, args.set or (), source=args.config or "command line")


def cmd_prepare(args: argparse.Namespace) -> int:
    from pipelines.datasets.prepare import prepare_dataset
    from pipelines.layout import dataset_uri, storage_root
    from pipelines.object_store import apply_store_env

    apply_store_env()
    config = prepare_config_from_args(args)
    print(f"preparing dataset {config.name!r} from {config.source}")
    manifest = prepare_dataset(config, progress=_progress)
    print(f"dataset {manifest.name}: {manifest.rows} rows ({manifest.split_rows}), {len(manifest.shards)} shards, "
          f"fingerprint {manifest.fingerprint}")
    print(f"  at {dataset_uri(storage_root(config.storage), config.name)}/")
    return 0


# --- train ------------------------------------------------------------------------

def train_config_from_args(args: argparse.Namespace):
    from pipelines.config_loading import ConfigError, build_config, load_config
    from pipelines.layout import storage_root
    from pipelines.train import load_run_config
    from pipelines.train_config import TrainJobConfig

    overrides = list(args.set or ())
    if args.storage:
        overrides.append(f"storage={args.storage}")
    if args.resume:
        stored = load_run_config(storage_root(args.storage), args.resume)
        return build_config(TrainJobConfig, stored.model_dump(mode="json"), overrides, source=f"run {args.resume}")
    if not args.config:
        raise ConfigError("vaepipe train needs a config file (e.g. configs/digits.yaml) or --resume RUN_ID")
    return load_config(TrainJobConfig, args.config, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from pipelines.object_store import apply_store_env
    from pipelines.train import run_training

    apply_store_env()
    config = train_config_from_args(args)
    outcome = run_training(config, resume=args.resume, progress=_progress)
    print(f"registered model {outcome.model} (best epoch {outcome.best_epoch}, val -ELBO "
          f"{outcome.metrics['val_neg_elbo']:.3f} nats) in {outcome.seconds:.0f} s")
    print(f"  checkpoints: {outcome.run_uri}/")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.layout import storage_root
    from pipelines.object_store import apply_store_env
    from pipelines.registry import ModelRef, promote

    apply_store_env()
    ref = ModelRef.parse(args.model)
    version = promote(storage_root(args.storage), ref)
    print(f"promoted {ref.name}@{version}: nightly scoring (models/{ref.name}@PROMOTED) now uses it")
    return 0


# --- demo ---------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo(progress=_progress)


# --- submit -------------------------------------------------------------------------

# Commands that act on this machine (a local store, a local demo), not jobs for a cluster.
NOT_SUBMITTABLE = ("submit", "storage", "demo")


def _add_submit_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--address", help="the cluster's Jobs API, e.g. http://head:8265 (default $RAY_ADDRESS)")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return; do not follow logs")
    parser.add_argument("--working-dir", help="folder shipped to the cluster, where the job runs (default: the "
                                              "project folder holding pyproject.toml above the current directory)")
    parser.add_argument("--env", action="append", metavar="KEY",
                        help="also pass this local environment variable to the job (repeatable; "
                             "secret-looking names are refused)")
    return parser


def _submittable_jobs(parser: argparse.ArgumentParser) -> list[str]:
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return [name for name in commands.choices if name not in NOT_SUBMITTABLE]


def cmd_submit(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from pipelines import submit

    # Options may also follow the job's own arguments: pick ours out, leave the rest to the job.
    options = _add_submit_options(argparse.ArgumentParser(prog="vaepipe submit", add_help=False, allow_abbrev=False))
    args, job_args = options.parse_known_args(args.job_args, namespace=args)
    parser = build_parser()
    jobs = _submittable_jobs(parser)
    if args.job not in jobs:
        raise submit.SubmitError(f"{args.job!r} is not a job that can be submitted; choose one of {', '.join(jobs)}")
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise submit.SubmitError("no cluster given: pass --address http://<head>:8265 (or set RAY_ADDRESS)")

    job_namespace = parser.parse_args([args.job, *job_args])  # the job's own usage errors, before any upload
    cwd = Path.cwd()
    working_dir = Path(args.working_dir).resolve() if args.working_dir else submit.default_working_dir(cwd)
    if not working_dir.is_dir():
        raise submit.SubmitError(f"--working-dir {working_dir} is not a folder")
    config = getattr(job_namespace, "config", None)
    if config:
        job_args = submit.replace_arg_value(job_args, config,
                                            submit.config_path_in_working_dir(config, working_dir, cwd))
    request = submit.build_request(args.job, job_args, working_dir, submit.shipped_env_vars(os.environ, args.env or ()))

    client = submit.connect(address, os.environ)
    job_id = submit.submit(client, request)
    print(f"submitted {job_id}: {request.entrypoint}")
    print(f"  working dir {working_dir}, env {sorted(request.runtime_env['env_vars']) or 'none'}")
    print(f"  dashboard: {submit.dashboard_url(client, job_id)}", flush=True)
    if args.no_wait:
        print(submit.follow_commands(client, job_id))
        return 0
    try:
        try:
            submit.stream_logs(client, job_id, lambda text: print(text, end="", flush=True))
        except RuntimeError as err:
            print(f"log stream ended early ({err}); waiting for the job to finish", file=sys.stderr)
        info = submit.wait_for_end(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running on the cluster\n{submit.follow_commands(client, job_id)}",
              file=sys.stderr)
        return 130
    if str(info.status) == "SUCCEEDED":
        print(f"job {job_id} SUCCEEDED")
        return 0
    print(f"error: job {job_id} {info.status}: {info.message}", file=sys.stderr)
    return 1


# --- parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
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

    storage = commands.add_parser("storage", help="start, stop or check the embedded S3 store (SeaweedFS)",
                                  description="Run a local S3-compatible server on 127.0.0.1 for laptops and tests. "
                                              "Data lives under .vaepipe/store (or $VAEPIPE_HOME/store) and survives "
                                              "down/up; credentials are generated once and written to its env file.")
    storage.add_argument("action", choices=["up", "down", "status"])
    storage.set_defaults(handler=cmd_storage)

    prepare = commands.add_parser(
        "prepare", help="turn a source into sharded Parquet + manifest on storage",
        description="Read a source, check it, split rows into train/val/test by a hash of their id, compute "
                    "preprocessing statistics on train, and write datasets/<name>/part-*.parquet + _manifest.json.",
        epilog="Examples:\n  vaepipe prepare digits\n  vaepipe prepare mnist5k --rows-per-shard 1000\n"
               "  vaepipe prepare data/customers.csv --name customers --id-column customer_id --categorical plan,region\n"
               "  vaepipe prepare photos/ --name photos --image-shape 3,32,32",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prepare.add_argument("source", nargs="?", help="built-in sample (digits, mnist5k, breast_cancer, fair), a CSV or "
                                                   "Parquet file or prefix (local path or s3://), or an image folder")
    prepare.add_argument("--name", help="dataset name (default: the built-in sample's name)")
    prepare.add_argument("--config", help="YAML file with the same fields (flags override it)")
    prepare.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    prepare.add_argument("--rows-per-shard", type=int, help="rows per Parquet shard (default: about 8 shards)")
    prepare.add_argument("--columns", help="comma-separated feature columns to keep (tabular; default all)")
    prepare.add_argument("--categorical", help="comma-separated columns to treat as categorical")
    prepare.add_argument("--numeric", help="comma-separated columns that must be numeric")
    prepare.add_argument("--id-column", help="column with a unique row id (default: row number)")
    prepare.add_argument("--label-column", help="column kept as a label, not a feature")
    prepare.add_argument("--image-shape", type=_shape, help="C,H,W to convert and resize images to (C = 1 or 3)")
    prepare.add_argument("--impute", choices=["error", "mean", "median", "drop"],
                         help="what to do with NaN/inf and missing values (default: error)")
    prepare.add_argument("--overwrite", action="store_true", help="replace a dataset that already exists")
    prepare.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    prepare.set_defaults(handler=cmd_prepare)

    train = commands.add_parser(
        "train", help="train a VAE with Ray Train on a prepared dataset and register the best model",
        description="Ray Data streams the dataset's shards into Ray Train workers (DDP; GPU with "
                    "scaling.use_gpu). Each epoch prints the β-weighted training loss and the validation negative "
                    "ELBO at β=1 (comparable across β), reconstruction and KL. Checkpoints go to "
                    "<storage>/runs/<run>/; the best one is calibrated and registered as models/<name>/<version>/.",
        epilog="Examples:\n  vaepipe train configs/digits.yaml\n"
               "  vaepipe train configs/digits.yaml --set train.epochs=50 --set scaling.num_workers=4 "
               "--set scaling.use_gpu=true\n  vaepipe train --resume digits-20261125-101500-ab12cd",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("config", nargs="?", help="YAML job config (see configs/)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config field, e.g. train.epochs=50 (repeatable)")
    train.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    train.set_defaults(handler=cmd_train)

    promote = commands.add_parser("promote", help="mark a model version as the one nightly scoring uses",
                                  description="Write models/<name>/PROMOTED pointing at a registered version.")
    promote.add_argument("model", help="model reference: NAME@VERSION (or NAME for the latest)")
    promote.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    promote.set_defaults(handler=cmd_promote)

    demo = commands.add_parser("demo", help="run the whole pipeline on the digits sample (what `make demo` runs)",
                               description="Start the embedded store, prepare the digits sample into it and run "
                                           "every pipeline stage, printing where each output lives.")
    demo.set_defaults(handler=cmd_demo)

    from pipelines.submit import STORAGE_ENV_VARS

    submit = commands.add_parser(
        "submit", help="run a job on a remote Ray cluster (Ray Jobs API) and follow its logs",
        description="Ship the working dir to the cluster and run `vaepipe JOB ARGS...` there. Config files named "
                    "in ARGS must lie inside the working dir. Exits 0 when the job succeeds, 1 when it fails or is "
                    "stopped; Ctrl-C stops following, not the job.",
        epilog="Credentials: only non-secret storage settings set here are passed to the job "
               f"({', '.join(STORAGE_ENV_VARS)}), plus --env names; runtime_env variables are visible in the "
               "Ray dashboard, so secrets (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, *SECRET*, "
               "*TOKEN*, *PASSWORD*, *KEY) are never sent. The cluster's own identity supplies storage credentials: "
               "an IAM role, a Kubernetes Secret, or the environment of the `ray start` process. RAY_AUTH_TOKEN, "
               "when set, authenticates this client to the cluster and is not passed to the job.\n\n"
               "Examples:\n  vaepipe submit train configs/digits.yaml --set train.epochs=5 --address http://head:8265\n"
               "  vaepipe submit prepare digits --address http://head:8265 --no-wait",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("job", help=f"the job to run: one of the commands except {', '.join(NOT_SUBMITTABLE)}")
    submit.add_argument("job_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the job's own arguments")
    _add_submit_options(submit)
    submit.set_defaults(handler=cmd_submit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
