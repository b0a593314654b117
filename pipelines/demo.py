"""`vaepipe demo`: the whole pipeline, as far as it is built, on the digits sample in the embedded store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

DEMO_DATASET = "digits"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits.yaml"


def _list_outputs(prefix: str, progress: Callable[[str], None]) -> None:
    from pipelines.storage import list_files

    for entry in list_files(prefix, include_hidden=True):
        progress(f"{entry.uri}  ({entry.size:,} bytes)")


def run_demo(progress: Callable[[str], None]) -> int:
    from pipelines.config_loading import load_config
    from pipelines.datasets.catalog import load_manifest
    from pipelines.datasets.prepare import PrepareConfig, prepare_dataset
    from pipelines.embed import EmbedJobConfig, run_embedding
    from pipelines.generate import GenerateJobConfig, run_generation
    from pipelines.layout import dataset_uri, storage_root
    from pipelines.object_store import EmbeddedStore, apply_store_env
    from pipelines.outputs import AlreadyComplete
    from pipelines.ray_runtime import RayConfig, ray_session
    from pipelines.score import ScoreJobConfig, run_scoring
    from pipelines.storage import ensure_bucket
    from pipelines.train import run_training
    from pipelines.train_config import TrainJobConfig

    started = time.monotonic()
    store = EmbeddedStore()
    info = store.up()
    # the demo always runs against the embedded store, whatever AWS_* the shell has
    apply_store_env(store.root, override=True)
    root = storage_root(f"s3://{info.bucket}")
    ensure_bucket(root)
    print(f"[1/6] embedded S3 store at {info.endpoint}, storage root {root}")

    dataset = dataset_uri(root, DEMO_DATASET)
    print(f"[2/6] prepare {DEMO_DATASET} → {dataset}/")
    try:
        manifest = prepare_dataset(PrepareConfig(name=DEMO_DATASET, source="digits", storage=root,
                                                 rows_per_shard=256), progress=progress)
    except AlreadyComplete:
        manifest = load_manifest(dataset)
        progress("already prepared; reusing it (vaepipe prepare digits --overwrite redoes it)")
    progress(f"{manifest.rows} rows {manifest.split_rows}, image shape {manifest.image.shape}, "
             f"fingerprint {manifest.fingerprint}")
    _list_outputs(dataset, progress)

    # one Ray for every stage: each job would otherwise start and stop its own (~5-10 s each)
    with ray_session(RayConfig()):
        print(f"[3/6] train a conv VAE on 2 Ray Train workers ({DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[1])})")
        config = load_config(TrainJobConfig, DEMO_CONFIG, [f"storage={root}"])
        outcome = run_training(config, progress=progress)
        progress(f"registered {outcome.model}: val -ELBO {outcome.metrics['val_neg_elbo']:.2f} nats "
                 f"(epoch 1: {outcome.history[0]['val_neg_elbo']:.2f}); checkpoints in {outcome.run_uri}/")
        _list_outputs(f"{root}/models/{config.name}/{outcome.version}", progress)

        print("[4/6] score the test split (anomaly scores against the calibrated threshold)")
        scored = run_scoring(ScoreJobConfig(model=outcome.model, input=DEMO_DATASET, split="test", storage=root),
                             progress=progress)
        progress(f"{scored.rows} rows scored, anomaly rate {scored.summary['anomaly_rate']:.3f} → {scored.output_uri}/")

        print("[5/6] generate 64 digits from the prior")
        generated = run_generation(GenerateJobConfig(model=outcome.model, num_samples=64, seed=7, storage=root),
                                   progress=progress)
        progress(f"{generated.rows} samples + PNG grid → {generated.output_uri}/")

        print("[6/6] embed every row (latent means) for downstream models")
        embedded = run_embedding(EmbedJobConfig(model=outcome.model, input=DEMO_DATASET, storage=root),
                                 progress=progress)
        progress(f"{embedded.rows} embeddings → {embedded.output_uri}/")

    # the training report (written by run_training) lives in the S3 store; a browser opens a local copy
    from pipelines.reports.page import INDEX, copy_report, report_uri
    from pipelines.reports.training import report_id

    local = copy_report(f"{report_uri(root, report_id(config.name, outcome.version))}/{INDEX}", store.root.parent / "reports")
    print(f"training report: open {local.as_uri()}")

    print(f"demo finished in {time.monotonic() - started:.0f} s; the store keeps running "
          f"(`vaepipe storage down` stops it, data is kept)")
    return 0
