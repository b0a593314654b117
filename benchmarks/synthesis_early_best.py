"""Why the best validation epoch came early (issue 20): validation −ELBO over training under each numeric transform.

On randhie's 70 % (benchmarks/synthesis.py's split), 10 % of it held out for validation, the default step budget:
the step with the best validation −ELBO, the validation −ELBO at the end, and the rows that contribute most
to it at the end. With `--min-std S` the floor on a learned Gaussian std (vae_core.likelihoods.MIN_STD,
in model units) is raised to S, to test the "outliers under a learned per-column std" explanation.

    nice -n 19 .venv/bin/python benchmarks/synthesis_early_best.py [--table randhie] [--min-std 0.1]
    .venv/bin/python benchmarks/synthesis_early_best.py --quick     # 60 steps: checks it runs
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: the repository root is where `benchmarks` lives
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vae_core.likelihoods  # noqa: E402
from benchmarks.synthesis import TABLES, THREADS, split  # noqa: E402
from pipelines.datasets.features import table_features  # noqa: E402
from pipelines.training.tabular_synthesis import SynthesisConfig, fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="randhie", choices=list(TABLES))
    parser.add_argument("--min-std", type=float, default=None)
    parser.add_argument("--transforms", nargs="*", default=["identity", "auto", "quantile"])
    parser.add_argument("--quick", action="store_true", help="60 steps per transform, to check the script runs")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.min_std is not None:
        vae_core.likelihoods.MIN_STD = args.min_std
    table = TABLES[args.table]
    train, _ = split(table.rows())
    for transform in args.transforms:
        config = SynthesisConfig(transform=transform, zero_inflated=None if transform != "quantile" else False,
                                 validation_fraction=0.1, threads=THREADS, steps=60 if args.quick else None,
                                 evaluations=6 if args.quick else SynthesisConfig.model_fields["evaluations"].default)
        synthesizer = fit(train, table.categorical, config)
        history = synthesizer.report.history
        curve = " ".join(f"{h['step']}:{h['val_neg_elbo']:.1f}" for h in history[:: max(1, len(history) // 10)])
        model, manifest = synthesizer.model, synthesizer.manifest
        x = torch.from_numpy(table_features(manifest, {c: train[c].to_numpy() for c in manifest.feature_columns}))
        with model.inference():
            per_row = model(x).neg_elbo.numpy()
        worst = np.argsort(per_row)[-3:][::-1]
        stds = {b: [round(float(s), 4) for s in torch.exp(m.clamped_log_std()).tolist()]
                for b, m in enumerate(model.likelihood.blocks) if hasattr(m, "clamped_log_std")}
        print(f"{args.table} transform={transform} min_std={vae_core.likelihoods.MIN_STD}: "
              f"best step {synthesizer.report.best_step}/{synthesizer.report.steps}, "
              f"best val -ELBO {synthesizer.report.val_neg_elbo:.2f}, last {history[-1]['val_neg_elbo']:.2f}; "
              f"train -ELBO median {np.median(per_row):.2f}, max {per_row.max():.1f} (rows {worst.tolist()}); "
              f"learned stds {stds}\n  curve (step:val -ELBO) {curve}\n  {synthesizer.report.stopped}", flush=True)


if __name__ == "__main__":
    main()
