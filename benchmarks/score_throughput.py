"""Rows/s of `vaepipe score` (S3 → Ray Data actors → S3) against a plain single-process loop
(read Parquet, score with torch, write Parquet) on the same prepared dataset, in one run.

    PYTHONPATH=. python benchmarks/score_throughput.py --rows 1000000
    PYTHONPATH=. python benchmarks/score_throughput.py --quick     # 20,000 rows: checks the script runs

Uses the AWS_* store if set, else the embedded one. The model is registered with
untrained weights: throughput does not depend on what the weights are. The
fixed start-up cost is measured by scoring a 2,000-row dataset with the same
command; "steady" subtracts it from the large run.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, 4))
    table = pd.DataFrame(z @ rng.normal(size=(4, 16)) + 0.1 * rng.normal(size=(rows, 16)),
                         columns=[f"x{i}" for i in range(16)])
    table["plan"] = np.array(["basic", "plus", "pro"])[(z[:, 0] > 0).astype(int) + (z[:, 1] > 1)]
    table["region"] = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, rows)]
    return table


def prepare(root: str, name: str, rows: int, workdir: str):
    from pipelines.jobs.prepare import PrepareConfig, prepare_dataset

    path = f"{workdir}/{name}.parquet"
    pq.write_table(pa.Table.from_pandas(synthetic_table(rows), preserve_index=False), path)
    # 8 shards: a read task per shard, so both actors and the writer have work
    return prepare_dataset(PrepareConfig(name=name, source=path, storage=root, rows_per_shard=-(-rows // 8),
                                         split={"train": 0.98, "val": 0.01, "test": 0.01}))


def register_untrained(root: str, manifest) -> str:
    import json

    from pipelines.storage.registry import register_model
    from pipelines.metrics.anomaly import calibration_card
    from pipelines.training.model_spec import model_spec_for
    from pipelines.training.config import ModelConfig
    from vae_core import VAE, model_to_bytes

    torch.manual_seed(0)
    model = VAE(model_spec_for(manifest, ModelConfig(latent_dim=8, hidden=[64, 32])))
    weights, spec_json = model_to_bytes(model)
    card = {"spec": json.loads(spec_json),
            "dataset": {"uri": "", "name": manifest.name, "fingerprint": manifest.fingerprint,
                        "manifest": manifest.model_dump(mode="json")},
            "training": {}, "metrics": {},
            "calibration": calibration_card(np.random.default_rng(0).normal(30, 5, 1000), 0.01)}
    return f"bench@{register_model(root, 'bench', weights, card)}"


def plain_loop(root: str, dataset: str, reference: str, batch_size: int) -> float:
    """Seconds to score every row with one process: read each shard, score, write a Parquet per shard."""
    from pipelines.datasets.catalog import load_manifest, shard_uris
    from pipelines.datasets.features import table_features
    from pipelines.storage.registry import load_registered
    from pipelines.storage.objects import read_bytes, write_bytes
    from vae_core import anomaly_scores

    started = time.perf_counter()
    model, card = load_registered(root, reference)
    manifest = load_manifest(f"{root}/datasets/{dataset}")
    for i, uri in enumerate(shard_uris(f"{root}/datasets/{dataset}", manifest)):
        table = pq.read_table(io.BytesIO(read_bytes(uri)))
        columns = {name: table[name].to_numpy(zero_copy_only=False) for name in manifest.feature_columns}
        x = torch.from_numpy(table_features(manifest, columns))
        out: dict[str, list] = {}  # every score `vaepipe score` writes, whatever vae_core returns
        for start in range(0, len(x), batch_size):
            for name, value in anomaly_scores(model, x[start:start + batch_size]).items():
                out.setdefault(name, []).append(value.numpy())
        result = pa.table({"row_id": table["row_id"], **{k: np.concatenate(v) for k, v in out.items()}})
        buffer = io.BytesIO()
        pq.write_table(result, buffer)
        write_bytes(f"{root}/bench-plain/{uuid.uuid4().hex[:6]}-part-{i}.parquet", buffer.getvalue())
    return time.perf_counter() - started


def vaepipe_score(root: str, dataset: str, reference: str, batch_size: int, actors: int) -> float:
    command = [sys.executable, "-m", "pipelines.cli", "score", "--model", reference, "--input", dataset,
               "--storage", root, "--output", f"bench-scores-{uuid.uuid4().hex[:6]}", "--batch-size",
               str(batch_size), "--actors", str(actors), "--cpus-per-actor", "0.5", "--engine", "ray"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return time.perf_counter() - started


def main() -> None:
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.objects import check_access, ensure_bucket

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--storage", help="storage root (default s3://vaepipe/bench-<random>)")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, to check the script runs (the suite "
                                                             "runs it; its speed means nothing)")
    args = parser.parse_args()
    if args.quick:
        args.rows = 20_000
    apply_store_env()
    torch.set_num_threads(os.cpu_count() or 1)
    root = args.storage or f"s3://vaepipe/bench-{uuid.uuid4().hex[:8]}"
    ensure_bucket(root)
    check_access(root)
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        big = prepare(root, "big", args.rows, workdir)
        prepare(root, "small", 2000, workdir)
    reference = register_untrained(root, big)
    plain_s = plain_loop(root, "big", reference, args.batch_size)
    fixed_s = vaepipe_score(root, "small", reference, args.batch_size, args.actors)
    ray_s = vaepipe_score(root, "big", reference, args.batch_size, args.actors)
    rows = big.rows
    steady_s = ray_s - fixed_s
    print(f"\nscoring {rows:,} rows S3→S3 ({os.cpu_count()} cores, {args.actors} actors, batch {args.batch_size})")
    print(f"{'path':<34}{'seconds':>9}{'rows/s':>12}{'ratio':>8}")
    print(f"{'plain single-process loop':<34}{plain_s:>9.1f}{rows / plain_s:>12,.0f}{1.0:>8.2f}")
    print(f"{'vaepipe score, end to end':<34}{ray_s:>9.1f}{rows / ray_s:>12,.0f}{plain_s / ray_s:>8.2f}")
    if steady_s > 0:
        print(f"{'vaepipe score, minus fixed start':<34}{steady_s:>9.1f}{rows / steady_s:>12,.0f}"
              f"{plain_s / steady_s:>8.2f}")
    else:  # on a loaded machine the small run can take longer than the large one
        print(f"{'vaepipe score, minus fixed start':<34}{'n/a: fixed start-up varied more than the run':>29}")
    print(f"fixed start-up (vaepipe score of 2,000 rows end to end): {fixed_s:.1f} s")


if __name__ == "__main__":
    main()
