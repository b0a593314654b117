"""Disentanglement on `shapes`: β-VAE (β = 1, 4, 8) against β-TCVAE, scored by MIG, DCI and SAP.

One process, plain PyTorch: the conv VAE of `vae_core` (`ModelSpec.for_images`, `VAE`, Bernoulli
pixels) trained with Adam on images from `pipelines.datasets.shapes.render_shapes`. The plain
VAE minimizes `VAEOutput.loss` (the β-ELBO, no free bits, no warm-up); β-TCVAE minimizes
`vae_core.beta_tc_loss` (α = γ = 1) on the same output. Every setting is trained with the same
seeds; a seed fixes the initial weights and the batch order, the data is the same for all.

Scores come from `pipelines.metrics.disentanglement` on the latent means of a separate evaluation
set rendered with another seed: MIG (20 bins), DCI (importance from the cheaper forest — see
`FOREST` there — since disentanglement_lib's gradient-boosted trees take minutes per model on two
cores; `--dci-importance gradient_boosting` for theirs), SAP (discrete factors) and active units
(dims with a mean KL above 0.01 nats). Factors are the grid indices of (shape, scale, rotation,
pos_x, pos_y).

Prints a Markdown table (mean ± sd over seeds, wall time per run), writes
benchmarks/results/disentanglement.json and a latent-traversal figure of the model with the best
MIG (docs/disentanglement-traversal.png), each row labelled with the factor its dim shares the most
mutual information with. `--quick` trains tiny models for a few seconds each and writes to a
temporary folder; it checks the code path, not the quality.

    PYTHONPATH=. nice -n 19 .venv/bin/python benchmarks/disentanglement.py [--quick] [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pipelines.datasets.shapes import FACTOR_NAMES, factor_codes, render_shapes
from pipelines.metrics.disentanglement import (active_units, dci, factor_entropies, mig, mutual_information_matrix,
                                               sap)
from vae_core import VAE, ModelSpec, beta_tc_loss, kl_per_dim

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
DATA_SEED, EVAL_SEED = 1000, 2000  # the training and evaluation images, the same for every run


@dataclass(frozen=True)
class Setting:
    objective: str  # "elbo" (β-VAE) | "beta_tc" (β-TCVAE)
    beta: float

    @property
    def label(self) -> str:
        return f"β-VAE β={self.beta:g}" if self.objective == "elbo" else f"β-TCVAE β={self.beta:g}"


SETTINGS = (Setting("elbo", 1.0), Setting("elbo", 4.0), Setting("elbo", 8.0), Setting("beta_tc", 6.0))


@dataclass(frozen=True)
class Plan:
    image_size: int = 32
    train_images: int = 60_000
    eval_images: int = 10_000  # disentanglement_lib scores MIG on 10,000 points
    latent_dim: int = 10
    hidden: tuple[int, ...] = (32, 64)
    epochs: int = 4
    batch_size: int = 256
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    dci_importance: str = "random_forest"


QUICK = Plan(train_images=256, eval_images=300, latent_dim=3, hidden=(4, 8), epochs=1, batch_size=64, seeds=(0, 1))


# --- training -------------------------------------------------------------------------------

def train(setting: Setting, images: torch.Tensor, plan: Plan, seed: int) -> VAE:
    """Adam over shuffled minibatches for plan.epochs; returns the model after the last step."""
    torch.manual_seed(seed)
    model = VAE(ModelSpec.for_images((1, plan.image_size, plan.image_size), latent_dim=plan.latent_dim,
                                     hidden=plan.hidden))
    optimizer = torch.optim.Adam(model.parameters(), lr=plan.lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(plan.epochs):
        for index in torch.randperm(len(images), generator=generator).split(plan.batch_size):
            out = model(images[index], beta=setting.beta)
            loss = out.loss if setting.objective == "elbo" else beta_tc_loss(
                out.recon_nll, out.mu, out.logvar, out.z, dataset_size=len(images), beta=setting.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


@torch.no_grad()
def posterior(model: VAE, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """Latent means [N, Z], mean KL per dim [Z] and mean negative ELBO on `images`."""
    model.eval()
    mus, kls, neg_elbo = [], [], 0.0
    for chunk in images.split(1000):
        out = model(chunk)
        mus.append(out.mu)
        kls.append(kl_per_dim(out.mu, out.logvar).sum(0))
        neg_elbo += float(out.neg_elbo.sum())
    return torch.cat(mus).numpy(), (torch.stack(kls).sum(0) / len(images)).numpy(), neg_elbo / len(images)


def score(codes: np.ndarray, factors: np.ndarray, kl: np.ndarray, plan: Plan) -> dict:
    started = time.perf_counter()
    scores = dci(codes, factors, importance=plan.dci_importance)
    mi = mutual_information_matrix(codes, factors)
    return {"mig": mig(codes, factors), "dci_disentanglement": scores.disentanglement,
            "dci_completeness": scores.completeness, "dci_informativeness": scores.informativeness_test,
            "sap": sap(codes, factors), "active_units": int(active_units(kl).sum()),
            "mi_nats": mi.round(4).tolist(), "kl_per_dim": kl.round(4).tolist(),
            "metric_seconds": time.perf_counter() - started}


# --- the figure -----------------------------------------------------------------------------

@torch.no_grad()
def traversal_figure(model: VAE, base_image: torch.Tensor, run: dict, path: Path, steps: int = 9,
                     span: float = 2.5) -> None:
    """One row per active latent dim (most KL first): decode the base image's latent mean with that
    dim swept over ±span prior standard deviations; each row names the factor the dim shares the
    most mutual information with, as nats and as a fraction of that factor's entropy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    mi, kl, entropy = np.array(run["mi_nats"]), np.array(run["kl_per_dim"]), np.array(run["factor_entropy_nats"])
    dims = [int(j) for j in np.argsort(-kl) if active_units(kl)[j]] or [int(np.argmax(kl))]
    base = model.encode(base_image[None]).mu[0]
    values = torch.linspace(-span, span, steps)
    fig, axes = plt.subplots(len(dims), steps, figsize=(steps * 0.9 + 2.6, len(dims) * 0.95 + 0.5), squeeze=False)
    for row, dim in enumerate(dims):
        z = base.repeat(steps, 1)
        z[:, dim] = values
        images = model.likelihood.mean(model.decode(z)).reshape(steps, *model.spec.input_shape[1:])
        best = int(np.argmax(mi[dim]))
        for col in range(steps):
            axes[row, col].imshow(images[col].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(f"z{dim}: {FACTOR_NAMES[best]}\nMI {mi[dim, best]:.2f} nats "
                                f"({mi[dim, best] / entropy[best]:.0%})\nKL {kl[dim]:.2f}",
                                rotation=0, ha="right", va="center", fontsize=8)
    for col, value in enumerate(values):
        axes[-1, col].set_xlabel(f"{value:+.1f}", fontsize=8)
    fig.suptitle(f"{run['setting']}, seed {run['seed']}: MIG {run['mig']:.2f} — latent traversals "
                 f"(z from -{span:g} to +{span:g})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the table ------------------------------------------------------------------------------

COLUMNS = (("mig", "MIG"), ("dci_disentanglement", "DCI D"), ("dci_completeness", "DCI C"),
           ("dci_informativeness", "DCI I (acc)"), ("sap", "SAP"), ("active_units", "active"))


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for label in dict.fromkeys(run["setting"] for run in runs):
        mine = [run for run in runs if run["setting"] == label]
        row = {"setting": label, "seeds": len(mine)}
        for key, _ in COLUMNS + (("train_seconds", ""), ("train_cpu_seconds", "")):
            values = np.array([run[key] for run in mine], dtype=float)
            row[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        rows.append(row)
    return rows


def markdown(summary: list[dict]) -> str:
    header = "| setting | " + " | ".join(title for _, title in COLUMNS) + " | train s/run (wall) | train CPU s/run |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for row in summary:
        cells = [f"{row[key]['mean']:.2f} ± {row[key]['sd']:.2f}" for key, _ in COLUMNS]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + f" | {row['train_seconds']['mean']:.0f} "
                     f"| {row['train_cpu_seconds']['mean']:.0f} |")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, seconds per run; checks the code path only")
    parser.add_argument("--out-dir", help="where to write disentanglement.json and the traversal PNG "
                                          "(default: benchmarks/results and docs; --quick: a temporary folder)")
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--train-images", type=int, help="override the plan's number of training images")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the plan's seeds")
    parser.add_argument("--dci-importance", choices=("random_forest", "gradient_boosting"))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    overrides = {"epochs": args.epochs, "train_images": args.train_images,
                 "seeds": tuple(args.seeds) if args.seeds else None, "dci_importance": args.dci_importance}
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.out_dir:
        results_path = Path(args.out_dir) / "disentanglement.json"
        figure_path = Path(args.out_dir) / "disentanglement-traversal.png"
    elif args.quick:
        folder = Path(tempfile.mkdtemp(prefix="disentanglement-quick-"))
        results_path, figure_path = folder / "disentanglement.json", folder / "disentanglement-traversal.png"
    else:
        results_path = ROOT / "benchmarks" / "results" / "disentanglement.json"
        figure_path = ROOT / "docs" / "disentanglement-traversal.png"

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    load_before = os.getloadavg()
    train_pixels, _ = render_shapes(plan.train_images, plan.image_size, seed=DATA_SEED)
    eval_pixels, eval_factors = render_shapes(plan.eval_images, plan.image_size, seed=EVAL_SEED)
    train_images = torch.from_numpy(train_pixels).float() / 255.0
    eval_images = torch.from_numpy(eval_pixels).float() / 255.0
    factors = factor_codes(eval_factors, plan.image_size)
    entropy = factor_entropies(factors)
    print(f"shapes {plan.image_size}px: {plan.train_images} training / {plan.eval_images} evaluation images "
          f"({time.perf_counter() - started:.1f} s to render); {len(SETTINGS)} settings x {len(plan.seeds)} seeds",
          flush=True)

    runs, best = [], None
    for setting in SETTINGS:
        for seed in plan.seeds:
            run_started, cpu_started = time.perf_counter(), time.process_time()
            model = train(setting, train_images, plan, seed)
            train_seconds, train_cpu_seconds = time.perf_counter() - run_started, time.process_time() - cpu_started
            codes, kl, neg_elbo = posterior(model, eval_images)
            run = {"setting": setting.label, **asdict(setting), "seed": seed, "train_seconds": train_seconds,
                   "train_cpu_seconds": train_cpu_seconds,
                   "eval_neg_elbo": neg_elbo, **score(codes, factors, kl, plan),
                   "factor_entropy_nats": entropy.round(4).tolist()}
            runs.append(run)
            print(f"  {setting.label:16s} seed {seed}: MIG {run['mig']:.3f}  DCI D {run['dci_disentanglement']:.3f}  "
                  f"active {run['active_units']}  -ELBO {neg_elbo:.1f}  train {train_seconds:.0f} s  "
                  f"metrics {run['metric_seconds']:.0f} s", flush=True)
            if best is None or run["mig"] > best[1]["mig"]:
                best = (model, run)

    summary = summarize(runs)
    table = markdown(summary)
    traversal_figure(best[0], eval_images[0], best[1], figure_path)
    results = {"plan": asdict(plan), "factors": list(FACTOR_NAMES), "threads": THREADS,
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "seconds": time.perf_counter() - started, "summary": summary, "runs": runs,
               "best_run": {"setting": best[1]["setting"], "seed": best[1]["seed"], "mig": best[1]["mig"]},
               "figure": str(figure_path)}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))
    print(table)
    print(f"{results['seconds']:.0f} s in all; wrote {results_path} and {figure_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
