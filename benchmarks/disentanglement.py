"""Disentanglement on `shapes`: β-VAE (β = 1, 4, 8) against β-TCVAE, scored by MIG, DCI and SAP.

Plain PyTorch, no Ray: the conv VAE of `vae_core` (`ModelSpec.for_images`, `VAE`, Bernoulli
pixels) trained with Adam (cosine-annealed learning rate) on images from
`pipelines.datasets.shapes.render_shapes`. The plain VAE minimizes `VAEOutput.loss` (the β-ELBO,
no free bits, no warm-up); β-TCVAE minimizes `vae_core.beta_tc_loss` (α = γ = 1) on the same
output. Every setting is trained with the same seeds; a seed fixes the initial weights and the
batch order, the data is the same for all. Runs go to `--workers` processes (default 2, one per
core), one torch thread each.

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
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pipelines.datasets.shapes import FACTOR_NAMES, factor_codes, render_shapes
from pipelines.metrics.disentanglement import (active_units, dci, factor_entropies, mig, mutual_information_matrix,
                                               sap)
from vae_core import VAE, ModelSpec, beta_tc_loss, kl_per_dim

ROOT = Path(__file__).resolve().parents[1]
# One torch thread per run, runs in parallel processes: these convs are small (batches of 32 x 32),
# and on a machine shared with other jobs two threads spin-wait on each other at every op —
# measured under load: one β-TC loss + backward 8 ms with one thread, 170-470 ms with two; a
# whole training step 20 ms vs 170-260 ms. Two single-thread runs side by side each keep ~90 %
# of the speed of one alone on an idle 2-core machine.
THREADS_PER_RUN = 1
WORKERS = 2
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
    train_images: int = 20_000
    eval_images: int = 10_000  # disentanglement_lib scores MIG on 10,000 points
    latent_dim: int = 10
    # Three stride-2 stages to a 4 x 4 map: two stages (32, 64) plateaued at MIG ~0.1-0.13 where
    # three reached 0.2 in the same 15 epochs (β-TCVAE, seed 0).
    hidden: tuple[int, ...] = (32, 32, 64)
    epochs: int = 25
    # The minibatch-weighted TC estimate sees q(z) through one batch: at 64 rows seed 1 ended with x
    # and y mixed in two dims (MIG 0.04), at 256 it separated them (0.18).
    batch_size: int = 256
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    dci_importance: str = "random_forest"
    device: str = "cpu"  # "cuda": training and encoding on the GPU, the scores still on the CPU


QUICK = Plan(train_images=256, eval_images=300, latent_dim=3, hidden=(4, 8), epochs=1, batch_size=64, seeds=(0, 1))


# --- one run: train, encode, score ---------------------------------------------------------------

_IMAGES: dict[tuple[int, int, int], tuple[torch.Tensor, np.ndarray]] = {}


def shapes_images(n: int, size: int, seed: int, device: str = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """Pixels in [0, 1] [n, 1, size, size] on `device` and factor grid indices [n, 5], rendered once
    per process."""
    key = (n, size, seed)
    if key not in _IMAGES:
        pixels, factors = render_shapes(n, size, seed=seed)
        _IMAGES[key] = torch.from_numpy(pixels).float() / 255.0, factor_codes(factors, size)
    pixels, factors = _IMAGES[key]
    return pixels.to(device), factors


def train(setting: Setting, images: torch.Tensor, plan: Plan, seed: int) -> VAE:
    """Adam over shuffled minibatches for plan.epochs, the learning rate annealed to 0 on a cosine
    (the last epochs settle instead of hopping: MIG 0.17-0.18 at a constant 3e-3, 0.20 annealed);
    returns the model after the last step."""
    torch.manual_seed(seed)
    model = VAE(ModelSpec.for_images((1, plan.image_size, plan.image_size), latent_dim=plan.latent_dim,
                                     hidden=plan.hidden)).to(plan.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=plan.lr)
    steps = plan.epochs * math.ceil(len(images) / plan.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(plan.epochs):
        for index in torch.randperm(len(images), generator=generator).to(images.device).split(plan.batch_size):
            out = model(images[index], beta=setting.beta)
            loss = out.loss if setting.objective == "elbo" else beta_tc_loss(
                out.recon_nll, out.mu, out.logvar, out.z, dataset_size=len(images), beta=setting.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
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
    return (torch.cat(mus).cpu().numpy(), (torch.stack(kls).sum(0) / len(images)).cpu().numpy(),
            neg_elbo / len(images))


def score(codes: np.ndarray, factors: np.ndarray, kl: np.ndarray, importance: str) -> dict:
    started = time.perf_counter()
    scores = dci(codes, factors, importance=importance)
    mi = mutual_information_matrix(codes, factors)
    return {"mig": mig(codes, factors), "dci_disentanglement": scores.disentanglement,
            "dci_completeness": scores.completeness, "dci_informativeness": scores.informativeness_test,
            "sap": sap(codes, factors), "active_units": int(active_units(kl).sum()),
            "mi_nats": mi.round(4).tolist(), "kl_per_dim": kl.round(4).tolist(),
            "factor_entropy_nats": factor_entropies(factors).round(4).tolist(),
            "metric_seconds": time.perf_counter() - started}


def one_run(setting: Setting, seed: int, plan: Plan) -> tuple[dict, dict]:
    """Train one model and score it on the evaluation images: (the run's record, its weights)."""
    torch.set_num_threads(THREADS_PER_RUN)
    train_images, _ = shapes_images(plan.train_images, plan.image_size, DATA_SEED, plan.device)
    eval_images, factors = shapes_images(plan.eval_images, plan.image_size, EVAL_SEED, plan.device)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = train(setting, train_images, plan, seed)
    if plan.device != "cpu":
        torch.cuda.synchronize()  # the wall time is the GPU's work, not how fast steps were queued
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    codes, kl, neg_elbo = posterior(model, eval_images)
    run = {"setting": setting.label, **asdict(setting), "seed": seed, "train_seconds": train_seconds,
           "train_cpu_seconds": train_cpu_seconds, "eval_neg_elbo": neg_elbo,
           **score(codes, factors, kl, plan.dci_importance)}
    return run, {name: tensor.cpu() for name, tensor in model.state_dict().items()}


def importance_methods_compared(model: VAE, images: torch.Tensor, factors: np.ndarray) -> dict:
    """DCI of one model with each importance method (their time too), to check the forest against
    disentanglement_lib's gradient-boosted trees on real codes."""
    torch.set_num_threads(THREADS_PER_RUN)
    codes, _, _ = posterior(model, images)
    compared = {}
    for method in ("random_forest", "gradient_boosting"):
        started = time.perf_counter()
        scores = dci(codes, factors, importance=method)
        compared[method] = {"disentanglement": scores.disentanglement, "completeness": scores.completeness,
                            "informativeness": scores.informativeness_test,
                            "importance": scores.importance.round(4).tolist(),
                            "seconds": time.perf_counter() - started}
    return compared


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

# (run key, column title, decimals)
COLUMNS = (("mig", "MIG", 2), ("dci_disentanglement", "DCI D", 2), ("dci_completeness", "DCI C", 2),
           ("dci_informativeness", "DCI I (acc)", 2), ("sap", "SAP", 2), ("active_units", "active", 1),
           ("eval_neg_elbo", "-ELBO (nats)", 1))


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for label in dict.fromkeys(run["setting"] for run in runs):
        mine = [run for run in runs if run["setting"] == label]
        row = {"setting": label, "seeds": len(mine)}
        for key in [key for key, _, _ in COLUMNS] + ["train_seconds", "train_cpu_seconds"]:
            values = np.array([run[key] for run in mine], dtype=float)
            row[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        rows.append(row)
    return rows


def markdown(summary: list[dict]) -> str:
    header = "| setting | " + " | ".join(title for _, title, _ in COLUMNS) + " | train s/run (wall) | train CPU s/run |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for row in summary:
        cells = [f"{row[key]['mean']:.{digits}f} ± {row[key]['sd']:.{digits}f}" for key, _, digits in COLUMNS]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + f" | {row['train_seconds']['mean']:.0f} "
                     f"| {row['train_cpu_seconds']['mean']:.0f} |")
    return "\n".join(lines)


def merge(paths: list[str], out: Path | None) -> int:
    """One table over the runs of several results files of the same plan (seeds run on separate
    occasions, e.g. two sessions on a lent GPU); refuses files whose plans differ but in seeds."""
    loaded = [json.loads(Path(path).read_text()) for path in paths]
    plans = [{key: value for key, value in results["plan"].items() if key != "seeds"} for results in loaded]
    if any(plan != plans[0] for plan in plans):
        print(f"error: --merge: the plans differ beyond their seeds: {plans}", file=sys.stderr)
        return 2
    runs = [run for results in loaded for run in results["runs"]]
    seen = [(run["setting"], run["seed"]) for run in runs]
    if len(set(seen)) != len(seen):
        print("error: --merge: a setting and seed appears in more than one file", file=sys.stderr)
        return 2
    summary = summarize(runs)
    best = max(runs, key=lambda run: run["mig"])
    merged = {"plan": {**loaded[0]["plan"], "seeds": sorted({run["seed"] for run in runs})},
              "gpu": loaded[0].get("gpu"), "merged_from": [str(path) for path in paths],
              "seconds": sum(results["seconds"] for results in loaded), "summary": summary, "runs": runs,
              "best_run": {"setting": best["setting"], "seed": best["seed"], "mig": best["mig"]}}
    print(markdown(summary))
    print(f"best run: {best['setting']} seed {best['seed']}, MIG {best['mig']:.3f}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(merged, indent=2))
        print(f"wrote {out}")
    return 0


# --- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, seconds per run; checks the code path only")
    parser.add_argument("--out-dir", help="where to write disentanglement.json and the traversal PNG "
                                          "(default: benchmarks/results and docs; --quick: a temporary folder)")
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--train-images", type=int, help="override the plan's number of training images")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the plan's seeds")
    parser.add_argument("--batch-size", type=int, help="override the plan's batch size (the β-TC estimate sees "
                                                        "q(z) through one batch)")
    parser.add_argument("--lr", type=float, help="override the plan's peak learning rate")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="where to train and encode (default cpu); "
                                                                   "the scores are computed on the CPU either way")
    parser.add_argument("--dci-importance", choices=("random_forest", "gradient_boosting"))
    parser.add_argument("--workers", type=int, default=WORKERS, help="runs trained side by side, one process each")
    parser.add_argument("--gbt-check", action="store_true",
                        help="also score the best model's DCI with disentanglement_lib's gradient-boosted trees "
                             "(minutes), to compare with the forest")
    parser.add_argument("--merge", nargs="+", metavar="RESULTS_JSON",
                        help="train nothing: print one table over these results files' runs (same plan, other "
                             "seeds) and, with --out-dir, write the merged disentanglement.json there")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out_dir) / "disentanglement.json" if args.out_dir else None)
    plan = QUICK if args.quick else Plan()
    overrides = {"epochs": args.epochs, "train_images": args.train_images,
                 "seeds": tuple(args.seeds) if args.seeds else None, "dci_importance": args.dci_importance,
                 "batch_size": args.batch_size, "lr": args.lr, "device": args.device}
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

    started = time.perf_counter()
    load_before = os.getloadavg()
    if plan.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here")
    print(f"shapes {plan.image_size}px: {plan.train_images} training / {plan.eval_images} evaluation images; "
          f"{len(SETTINGS)} settings x {len(plan.seeds)} seeds on {args.workers} worker(s), {plan.device}; "
          f"{plan.epochs} epochs of batch {plan.batch_size}", flush=True)
    tasks = [(setting, seed) for setting in SETTINGS for seed in plan.seeds]
    # spawn, not fork: a forked child inherits the parent's OpenMP state and can hang in torch.
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(one_run, setting, seed, plan) for setting, seed in tasks]
        outcomes = []
        for future in futures:
            run, weights = future.result()
            outcomes.append((run, weights))
            print(f"  {run['setting']:16s} seed {run['seed']}: MIG {run['mig']:.3f}  "
                  f"DCI D {run['dci_disentanglement']:.3f}  active {run['active_units']}  "
                  f"-ELBO {run['eval_neg_elbo']:.1f}  train {run['train_seconds']:.0f} s  "
                  f"metrics {run['metric_seconds']:.0f} s", flush=True)
    runs = [run for run, _ in outcomes]
    best_run, best_weights = max(outcomes, key=lambda outcome: outcome[0]["mig"])
    best = VAE(ModelSpec.for_images((1, plan.image_size, plan.image_size), latent_dim=plan.latent_dim,
                                    hidden=plan.hidden))
    best.load_state_dict(best_weights)

    summary = summarize(runs)
    table = markdown(summary)
    eval_images, eval_factors = shapes_images(plan.eval_images, plan.image_size, EVAL_SEED)
    traversal_figure(best, eval_images[0], best_run, figure_path)
    importance_check = importance_methods_compared(best, eval_images, eval_factors) if args.gbt_check else None
    gpu = torch.cuda.get_device_name() if plan.device == "cuda" else None
    results = {"plan": asdict(plan), "gpu": gpu, "factors": list(FACTOR_NAMES), "workers": args.workers,
               "threads_per_run": THREADS_PER_RUN,
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "seconds": time.perf_counter() - started, "summary": summary, "runs": runs,
               "best_run": {"setting": best_run["setting"], "seed": best_run["seed"], "mig": best_run["mig"]},
               "figure": str(figure_path), "dci_importance_check": importance_check}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))
    print(table)
    if importance_check:
        print("DCI of the best model by importance method: " + "; ".join(
            f"{method}: D {row['disentanglement']:.3f} C {row['completeness']:.3f} I {row['informativeness']:.3f} "
            f"({row['seconds']:.0f} s)" for method, row in importance_check.items()))
    print(f"{results['seconds']:.0f} s in all; wrote {results_path} and {figure_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
