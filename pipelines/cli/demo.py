"""`vaepipe demo`: the whole pipeline on the digits sample in the embedded store (what `make demo` runs)."""
from __future__ import annotations

import argparse
import time
from typing import Callable

from pipelines.cli.console import progress, result

DEMO_DATASET = "digits"
DEMO_CONFIG = "configs/digits.yaml"  # found in the installed package when no configs/ folder is beside it


def _list_outputs(prefix: str) -> None:
    from pipelines.storage.objects import list_files

    for entry in list_files(prefix, include_hidden=True):
        progress(f"{entry.uri}  ({entry.size:,} bytes)")


def run_demo(say: Callable[[str], None] = result) -> int:
    """Store → prepare → train → score → generate → embed, each stage's output listed and reported."""
    from pipelines.config import load_config, resolve_config_path
    from pipelines.datasets.catalog import load_manifest
    from pipelines.jobs.embed import EmbedJobConfig, run_embedding
    from pipelines.jobs.generate import GenerateJobConfig, run_generation
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
    from pipelines.jobs.score import ScoreJobConfig, run_scoring
    from pipelines.jobs.train import run_training
    from pipelines.reports.after_job import report_after_job
    from pipelines.reports.page import copy_report
    from pipelines.reports.samples import build_samples_report
    from pipelines.reports.scores import build_scores_report
    from pipelines.reports.training import build_training_report
    from pipelines.runtime.ray_session import RayConfig, ray_session
    from pipelines.storage.commit import AlreadyComplete
    from pipelines.storage.embedded_server import EmbeddedStore, apply_store_env
    from pipelines.storage.layout import dataset_uri, model_version_uri, storage_root
    from pipelines.storage.objects import ensure_bucket
    from pipelines.training.config import TrainJobConfig

    started = time.monotonic()
    store = EmbeddedStore()
    info = store.up()
    # the demo always runs against the embedded store, whatever AWS_* the shell has
    apply_store_env(store.root, override=True)
    root = storage_root(f"s3://{info.bucket}")
    ensure_bucket(root)
    say(f"[1/6] embedded S3 store at {info.endpoint}, storage root {root}")

    dataset = dataset_uri(root, DEMO_DATASET)
    say(f"[2/6] prepare {DEMO_DATASET} → {dataset}/")
    try:
        manifest = prepare_dataset(PrepareConfig(name=DEMO_DATASET, source="digits", storage=root,
                                                 rows_per_shard=256), progress=progress)
    except AlreadyComplete:
        manifest = load_manifest(dataset)
        progress("already prepared; reusing it (vaepipe prepare digits --overwrite redoes it)")
    progress(f"{manifest.rows} rows {manifest.split_rows}, image shape {manifest.image.shape}, "
             f"fingerprint {manifest.fingerprint}")
    _list_outputs(dataset)

    # one Ray for every stage: each job would otherwise start and stop its own (~5-10 s each)
    with ray_session(RayConfig()):
        say(f"[3/6] train a conv VAE on 2 Ray Train workers ({DEMO_CONFIG})")
        config = load_config(TrainJobConfig, resolve_config_path(DEMO_CONFIG), [f"storage={root}"])
        trained = run_training(config, progress=progress)
        training_report = report_after_job(build_training_report, root, trained.model, progress=progress)
        progress(f"registered {trained.model}: val -ELBO {trained.metrics['val_neg_elbo']:.2f} nats "
                 f"(epoch 1: {trained.history[0]['val_neg_elbo']:.2f}); checkpoints in {trained.run_uri}/")
        _list_outputs(model_version_uri(root, trained.name, trained.version))

        say("[4/6] score the test split (anomaly scores against the calibrated threshold)")
        scored = run_scoring(ScoreJobConfig(model=trained.model, input=DEMO_DATASET, split="test", storage=root),
                             progress=progress)
        report_after_job(build_scores_report, root, scored.output_uri, progress=progress)
        progress(f"{scored.rows} rows scored, anomaly rate {scored.summary['anomaly_rate']:.3f} → {scored.output_uri}/")

        say("[5/6] generate 64 digits from the prior")
        generated = run_generation(GenerateJobConfig(model=trained.model, num_samples=64, seed=7, storage=root),
                                   progress=progress)
        report_after_job(build_samples_report, root, generated.output_uri, progress=progress)
        progress(f"{generated.rows} samples + PNG grid → {generated.output_uri}/")

        say("[6/6] embed every row (latent means) for downstream models")
        embedded = run_embedding(EmbedJobConfig(model=trained.model, input=DEMO_DATASET, storage=root),
                                 progress=progress)
        progress(f"{embedded.rows} embeddings → {embedded.output_uri}/")

    if training_report is not None:
        # the report lives in the S3 store; a browser opens a local copy
        say(f"training report: open {copy_report(training_report, store.root.parent / 'reports').as_uri()}")
    say(f"demo finished in {time.monotonic() - started:.0f} s; the store keeps running "
        f"(`vaepipe storage down` stops it, data is kept)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo()


def register(commands) -> None:
    demo = commands.add_parser("demo", help="run the whole pipeline on the digits sample (what `make demo` runs)",
                               description="Start the embedded store, prepare the digits sample into it and run "
                                           "every pipeline stage, printing where each output lives.")
    demo.set_defaults(handler=cmd_demo)
