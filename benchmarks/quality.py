"""Model quality against the peers: density, one-class anomaly detection, tabular synthesis.

One run, fixed seeds, the same data and splits for every model. It measures our own code
paths: the datasets are the built-in sources turned into rows, splits and preprocessing
statistics by `pipelines.jobs.prepare.build_arrow_table` (the same hash-of-row-id split
as `vaepipe prepare`: 80 % train / 10 % val / 10 % test), featurized by
`pipelines.datasets.features`; models are built by `pipelines.jobs.train.model_spec_for` with
the default `ModelConfig` (for one-class images, `ANOMALY_MODEL`: Gaussian pixels); scores come from `vae_core.anomaly_scores` (what `vaepipe score`
ranks and thresholds by, `anomaly_score`), samples from `vae_core.sample_prior(mode="sample")` +
`features_to_table` (what `vaepipe generate` does for tables).

Training runs in-process with a plain loop equivalent to `pipelines/training/loop.py` (same
Adam optimizer, β warm-up `beta_at`, free bits, and the pipeline's choice of the epoch with
the best validation negative ELBO) instead of `run_training`, to avoid Ray start-up on a
2-core machine; the per-step arithmetic is the same.

1. Density: test NLL in nats/example — importance-weighted estimate (Burda et al. 2015,
   `vae_core.iw_log_likelihood`, k = 1000 (digits) / 200 (mnist5k)) and the negative ELBO — of
   our default image model (conv, Bernoulli over intensities in [0, 1]) on `digits` and
   `mnist5k`, against a reference MLP VAE (Kingma & Welling 2014: one 400-unit ReLU
   hidden layer each side, the same latent size, Bernoulli decoder), both trained with the
   same epochs, batch size and optimizer.
2. One-class anomaly detection, 5-fold: every row is tested once. Stratified 5-fold over all
   rows (seeded); per fold, train on the other folds' rows of one class (digits: each digit;
   breast_cancer: benign; 1 in 9 of them held out as our model's validation rows for epoch
   selection, the peers fit on the same training rows), score the held-out fold, ROC-AUC with
   "not the trained class" as positive; the mean over folds per class, and the mean over
   classes, for our VAE (images: `model.image_likelihood: gaussian`, squared error over one
   learned noise level; tables: the default per-column likelihoods) and scikit-learn's
   IsolationForest, PCA reconstruction error, OneClassSVM and PyOD's VAE on identical
   inputs (pixels in [0, 1]; for tables the features standardized by prepare's statistics of
   its train split, the same for every method).
3. Tabular synthesis on `fair` (statsmodels' Fair 1978, mixed types): ours vs SDV's TVAE
   with the same epochs and batch size, as many rows as the train split. Column shapes
   (1 - KS statistic for numeric, 1 - total variation distance for categorical) and
   column-pair trends (1 - |Δ Pearson r|/2 for numeric pairs, 1 - TVD of the contingency
   table for pairs with a categorical, numerics binned by real-data deciles), as in
   sdmetrics' ColumnShapes / ColumnPairTrends; and train-on-synthetic/test-on-real
   ROC-AUC of a logistic regression predicting `had_affair` (affairs > 0) from the other
   columns, against train-on-real.

SDV pins pandas < 3 while vaepipe runs on pandas 3, so TVAE runs in a subprocess under
another interpreter (`--sdv-python`, default `.venv-sdv/bin/python`: a venv that sees the
main venv's packages through a .pth file and adds sdv + pandas 2.3; see README). Without
it, TVAE's column says why it is missing.

    PYTHONPATH=. .venv/bin/python benchmarks/quality.py [--quick] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines.datasets.features import features_to_table, image_features, table_features
from pipelines.datasets.manifest import DatasetManifest, SplitRule
from pipelines.datasets.preparation import PrepareConfig, build_arrow_table
from pipelines.datasets.sources import load_builtin
from pipelines.metrics.anomaly import SCORE_COLUMN
from pipelines.training.model_spec import model_spec_for
from pipelines.training.config import LoopConfig, ModelConfig
from pipelines.training.loop import beta_at
from pipelines.training.optimizer import FusedAdam
from vae_core import VAE, ModelSpec, anomaly_scores, iw_log_likelihood, sample_prior
from vae_core.spec import LikelihoodBlock

SEED = 0
THREADS = 2
ONE_CLASS_FOLDS = 5
SPLITS = ("train", "val", "test")
ROOT = Path(__file__).resolve().parents[1]


# --- data ------------------------------------------------------------------------------

@dataclass
class BenchData:
    manifest: DatasetManifest
    x: dict[str, torch.Tensor]          # split -> model inputs (images [N, C, H, W] in [0, 1]; table features)
    labels: dict[str, np.ndarray]       # split -> label
    rows: dict[str, pd.DataFrame]       # split -> feature columns in the original schema (tables only)


def load_data(name: str) -> BenchData:
    """A built-in source through prepare's split and statistics, then our featurizers."""
    source = load_builtin(name)
    config = PrepareConfig(name=name, source=name)
    arrow, fields = build_arrow_table(source, config)
    manifest = DatasetManifest(name=name, kind=source.kind, source=source.description, rows=arrow.num_rows,
                               split=SplitRule(fractions=config.split),
                               arrow_schema={f.name: str(f.type) for f in arrow.schema}, shards=[],
                               created_at="in-memory", **fields)
    split = np.asarray(arrow["split"].to_pylist())
    labels = np.asarray(arrow[manifest.label_column].to_pylist())
    if manifest.kind == "image":
        features = image_features(manifest, arrow["image"].combine_chunks().to_numpy_ndarray())
        frame = None
    else:
        frame = pd.DataFrame({c: arrow[c].to_numpy() for c in manifest.feature_columns})
        features = table_features(manifest, {c: frame[c].to_numpy() for c in frame.columns})
    return BenchData(manifest, {s: torch.from_numpy(features[split == s]) for s in SPLITS},
                     {s: labels[split == s] for s in SPLITS},
                     {s: frame[split == s].reset_index(drop=True) for s in SPLITS} if frame is not None else {})


# --- training (the loop of pipelines/training/loop.py, in one process) ----------------------------

def train(model: VAE, x_train: torch.Tensor, x_val: torch.Tensor, loop: LoopConfig) -> dict:
    """Adam (fused), β warm-up and free bits as in training/loop.py; keeps the epoch with the best val -ELBO."""
    torch.manual_seed(loop.seed)
    optimizer = FusedAdam(model.parameters(), lr=loop.lr, weight_decay=loop.weight_decay)
    best, best_state, best_epoch = math.inf, None, 0
    started = time.perf_counter()
    for epoch in range(loop.epochs):
        beta = beta_at(loop, epoch)
        generator = torch.Generator().manual_seed(loop.seed * 100_003 + epoch * 101)
        model.train()
        for index in torch.randperm(len(x_train), generator=generator).split(loop.batch_size):
            out = model(x_train[index], beta=beta, free_bits=loop.free_bits)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if loop.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip)
            optimizer.step()
        with model.inference():
            val = float(model(x_val).neg_elbo.mean())
        if val < best:
            best, best_epoch = val, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "val_neg_elbo": best, "seconds": time.perf_counter() - started}


# What a user sets to score grey images for anomalies (README "Model quality"). One-class digits 3
# and 9, 5 folds: Bernoulli pixels 0.986, Gaussian with a std per pixel 0.992, one shared std 0.994
# (PCA 0.995): a per-pixel weight, which the Bernoulli's deviance also has, ranks worse.
ANOMALY_MODEL = {"image": ModelConfig(image_likelihood="gaussian"), "tabular": ModelConfig()}


def our_model(manifest: DatasetManifest, config: ModelConfig | None = None) -> VAE:
    torch.manual_seed(SEED)
    return VAE(model_spec_for(manifest, config or ModelConfig()))


def reference_mlp_vae(feature_dim: int, latent_dim: int, hidden: int = 400) -> VAE:
    """Kingma & Welling (2014)'s MNIST VAE: one hidden layer each side (ReLU here, as is usual
    now), Bernoulli decoder. Built as a VAE so the objective and IW estimate are the same code."""
    torch.manual_seed(SEED)
    spec = ModelSpec("mlp", (feature_dim,), latent_dim, (hidden,),
                     likelihood=(LikelihoodBlock("bernoulli", feature_dim),))
    model = VAE(spec)
    model.encoder = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
    model.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim))
    return model


# --- 1. density ------------------------------------------------------------------------

@torch.no_grad()
def test_nll(model: VAE, x: torch.Tensor, k: int, elbo_passes: int = 10) -> dict:
    """Mean test -log p(x) (IW, k samples) and -ELBO (averaged over `elbo_passes` z draws), nats/example."""
    generator = torch.Generator().manual_seed(SEED)
    model.eval()
    iw = torch.cat([-iw_log_likelihood(model, chunk, k=k, chunk_size=50, generator=generator)
                    for chunk in x.split(256)])
    torch.manual_seed(SEED)
    elbo = torch.stack([model(x).neg_elbo for _ in range(elbo_passes)]).mean(0)
    return {"iw_nll": float(iw.mean()), "neg_elbo": float(elbo.mean())}


def density(name: str, loop: LoopConfig, k: int) -> dict:
    data = load_data(name)
    results = {"dataset": name, "test_rows": len(data.x["test"]), "epochs": loop.epochs,
               "batch_size": loop.batch_size, "iw_samples": k}
    ours = our_model(data.manifest)
    reference = reference_mlp_vae(data.manifest.feature_dim, ours.spec.latent_dim)
    for label, model in (("ours", ours), ("reference_mlp_vae", reference)):
        fit = train(model, data.x["train"], data.x["val"], loop)
        results[label] = {**test_nll(model, data.x["test"], k), **fit,
                          "parameters": sum(p.numel() for p in model.parameters())}
        print(f"  density {name} {label}: {results[label]}", flush=True)
    return results


# --- 2. one-class anomaly detection ---------------------------------------------------------

def peer_scores(x_train: np.ndarray, x_test: np.ndarray, loop: LoopConfig) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = more anomalous) of the peers, fit on the same rows."""
    from pyod.models.vae import VAE as PyODVAE
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    forest = IsolationForest(n_estimators=200, random_state=SEED).fit(x_train)
    pca = PCA(n_components=0.9, random_state=SEED).fit(x_train)
    reconstructed = pca.inverse_transform(pca.transform(x_test))
    svm = OneClassSVM(gamma="scale", nu=0.1).fit(x_train)
    pyod = PyODVAE(epoch_num=loop.epochs, batch_size=loop.batch_size, random_state=SEED, verbose=0)
    pyod.fit(x_train)
    return {
        "isolation_forest": -forest.score_samples(x_test),
        "pca_reconstruction": ((x_test - reconstructed) ** 2).sum(1),
        "one_class_svm": -svm.score_samples(x_test),
        "pyod_vae": pyod.decision_function(x_test),
    }


def one_class_folds(labels: np.ndarray, normal, folds: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, val, test) row indices per fold: stratified K-fold over every row, so each row is
    tested exactly once; train/val are the other folds' rows of the normal class, 1 in 9 kept
    for validation (prepare's 80/10 train/val ratio)."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    out = []
    for fold, (fit, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        normal_rows = np.random.default_rng(SEED + fold).permutation(fit[labels[fit] == normal])
        val_rows = max(1, len(normal_rows) // 9)
        out.append((np.sort(normal_rows[val_rows:]), np.sort(normal_rows[:val_rows]), test))
    return out


def one_class(name: str, normal_classes: list, loop: LoopConfig, folds: int) -> dict:
    from sklearn.metrics import roc_auc_score

    data = load_data(name)
    x = torch.cat([data.x[s] for s in SPLITS])
    labels = np.concatenate([data.labels[s] for s in SPLITS])
    per_class, per_fold = {}, {}
    for normal in normal_classes:
        aucs: dict[str, list[float]] = {}
        for train_rows, val_rows, test_rows in one_class_folds(labels, normal, folds):
            model = our_model(data.manifest, ANOMALY_MODEL[data.manifest.kind])
            train(model, x[train_rows], x[val_rows], loop)
            scores = {"ours": anomaly_scores(model, x[test_rows])[SCORE_COLUMN].numpy()}
            scores.update(peer_scores(x[train_rows].flatten(1).numpy(), x[test_rows].flatten(1).numpy(), loop))
            anomalous = labels[test_rows] != normal
            for method, score in scores.items():
                aucs.setdefault(method, []).append(float(roc_auc_score(anomalous, score)))
        per_fold[str(normal)] = aucs
        per_class[str(normal)] = {method: float(np.mean(values)) for method, values in aucs.items()}
        print(f"  one-class {name} normal={normal}: {per_class[str(normal)]}", flush=True)
    methods = next(iter(per_class.values())).keys()
    mean = {m: float(np.mean([auc[m] for auc in per_class.values()])) for m in methods}
    return {"dataset": name, "rows": len(x), "folds": folds, "epochs": loop.epochs, "batch_size": loop.batch_size,
            "model": ANOMALY_MODEL[data.manifest.kind].model_dump(exclude_defaults=True),
            "per_class": per_class, "per_fold": per_fold, "mean": mean}


# --- 3. tabular synthesis --------------------------------------------------------------------

def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, categorical: list[str]) -> float:
    from scipy.stats import ks_2samp

    scores = []
    for column in real.columns:
        if column in categorical:
            p = real[column].value_counts(normalize=True)
            q = synthetic[column].value_counts(normalize=True).reindex(p.index.union(synthetic[column].unique()))
            scores.append(1 - 0.5 * (p.reindex(q.index).fillna(0) - q.fillna(0)).abs().sum())
        else:
            scores.append(1 - ks_2samp(real[column], synthetic[column]).statistic)
    return float(np.mean(scores))


def _binned(values: pd.Series, edges: np.ndarray) -> pd.Series:
    return pd.Series(np.searchsorted(edges, values.to_numpy(dtype=float), side="right"), index=values.index)


def column_pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, categorical: list[str]) -> float:
    columns = list(real.columns)
    # numerics enter contingency tables as real-data deciles
    edges = {c: np.unique(np.quantile(real[c], np.linspace(0.1, 0.9, 9))) for c in columns if c not in categorical}

    def discrete(frame, column):
        return frame[column].astype(str) if column in categorical else _binned(frame[column], edges[column])

    scores = []
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            if a not in categorical and b not in categorical:
                r_real, r_syn = real[a].corr(real[b]), synthetic[a].corr(synthetic[b])
                scores.append(1 - abs(np.nan_to_num(r_real) - np.nan_to_num(r_syn)) / 2)
            else:
                p = pd.crosstab(discrete(real, a), discrete(real, b), normalize=True).stack()
                q = pd.crosstab(discrete(synthetic, a), discrete(synthetic, b), normalize=True).stack()
                index = p.index.union(q.index)
                scores.append(1 - 0.5 * (p.reindex(index).fillna(0) - q.reindex(index).fillna(0)).abs().sum())
    return float(np.mean(scores))


def utility_auc(train_rows: pd.DataFrame, test_rows: pd.DataFrame, categorical: list[str]) -> float:
    """ROC-AUC on real test rows of a logistic regression predicting had_affair (affairs > 0)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    target = lambda frame: (frame["affairs"] > 0).to_numpy()  # noqa: E731
    inputs = [c for c in train_rows.columns if c != "affairs"]
    numeric = [c for c in inputs if c not in categorical]
    if len(np.unique(target(train_rows))) < 2:
        return float("nan")
    classifier = make_pipeline(
        ColumnTransformer([("numeric", StandardScaler(), numeric),
                           ("categorical", OneHotEncoder(handle_unknown="ignore"), [c for c in inputs if c in categorical])]),
        LogisticRegression(max_iter=2000))
    classifier.fit(train_rows[inputs], target(train_rows))
    return float(roc_auc_score(target(test_rows), classifier.predict_proba(test_rows[inputs])[:, 1]))


def our_synthetic_rows(data: BenchData, loop: LoopConfig, rows: int) -> tuple[pd.DataFrame, dict]:
    model = our_model(data.manifest)
    fit = train(model, data.x["train"], data.x["val"], loop)
    generator = torch.Generator().manual_seed(SEED)
    x = sample_prior(model, rows, generator=generator, mode="sample")
    return features_to_table(data.manifest, x.numpy()), fit


TVAE_SCRIPT = """
import sys, time, pandas as pd, torch
from sdv.metadata import Metadata
from sdv.single_table import TVAESynthesizer
torch.set_num_threads({threads}); torch.manual_seed({seed})
import numpy as np; np.random.seed({seed})
train = pd.read_parquet(sys.argv[1])
columns = {{c: {{"sdtype": "categorical" if c in {categorical!r} else "numerical"}} for c in train.columns}}
metadata = Metadata.load_from_dict({{"tables": {{"fair": {{"columns": columns}}}}}})
started = time.perf_counter()
synthesizer = TVAESynthesizer(metadata, epochs={epochs}, batch_size={batch_size}, enforce_min_max_values=True,
                              enable_gpu=False)
synthesizer.fit({{"fair": train}})  # sdv 2 takes a dict of tables
synthetic = synthesizer.sample({rows})
(synthetic["fair"] if isinstance(synthetic, dict) else synthetic).to_parquet(sys.argv[2])
print(time.perf_counter() - started)
"""


def tvae_synthetic_rows(train_rows: pd.DataFrame, categorical: list[str], loop: LoopConfig, rows: int,
                        python: str) -> tuple[pd.DataFrame | None, dict]:
    if not Path(python).exists():
        return None, {"missing": f"no interpreter with sdv at {python} (see the module docstring)"}
    with tempfile.TemporaryDirectory() as directory:
        source, target = Path(directory, "train.parquet"), Path(directory, "synthetic.parquet")
        train_rows.to_parquet(source)
        script = TVAE_SCRIPT.format(threads=THREADS, seed=SEED, categorical=categorical, epochs=loop.epochs, batch_size=loop.batch_size, rows=rows)
        done = subprocess.run([python, "-c", script, str(source), str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            return None, {"missing": f"TVAE failed: {done.stderr.strip().splitlines()[-1:]}"}
        return pd.read_parquet(target), {"seconds": float(done.stdout.strip().splitlines()[-1])}


def synthesis(loop: LoopConfig, sdv_python: str) -> dict:
    data = load_data("fair")
    categorical = [c.name for c in data.manifest.categorical]
    real_train, real_test = data.rows["train"], data.rows["test"]
    rows = len(real_train)
    results = {"dataset": "fair", "train_rows": rows, "test_rows": len(real_test), "epochs": loop.epochs,
               "batch_size": loop.batch_size,
               "real": {"utility_auc": utility_auc(real_train, real_test, categorical)}}
    ours, fit = our_synthetic_rows(data, loop, rows)
    tvae, tvae_fit = tvae_synthetic_rows(real_train, categorical, loop, rows, sdv_python)
    for label, synthetic, info in (("ours", ours, fit), ("tvae", tvae, tvae_fit)):
        if synthetic is None:
            results[label] = info
            continue
        synthetic = synthetic[real_train.columns]
        results[label] = {"column_shapes": column_shapes(real_test, synthetic, categorical),
                          "column_pair_trends": column_pair_trends(real_test, synthetic, categorical),
                          "utility_auc": utility_auc(synthetic, real_test, categorical), **info}
        print(f"  synthesis fair {label}: {results[label]}", flush=True)
    # the ceiling: real train rows against real test rows
    results["real"].update(column_shapes=column_shapes(real_test, real_train, categorical),
                           column_pair_trends=column_pair_trends(real_test, real_train, categorical))
    return results


# --- report ------------------------------------------------------------------------------------

def markdown(results: dict) -> str:
    lines = ["### Density: test NLL, nats per example (lower is better)", "",
             "| dataset | model | IW NLL (k) | −ELBO | params | best epoch / epochs |", "|---|---|---|---|---|---|"]
    for d in results["density"]:
        for label, name in (("ours", "vaepipe default (conv, Bernoulli)"), ("reference_mlp_vae", "K&W MLP VAE (400 ReLU)")):
            r = d[label]
            lines.append(f"| {d['dataset']} | {name} | {r['iw_nll']:.2f} ({d['iw_samples']}) | {r['neg_elbo']:.2f} | "
                         f"{r['parameters']:,} | {r['best_epoch']} / {d['epochs']} |")
    methods = ["ours", "isolation_forest", "pca_reconstruction", "one_class_svm", "pyod_vae"]
    folds = results["anomaly"][0]["folds"]
    lines += ["", f"### One-class anomaly detection: held-out ROC-AUC, mean of {folds} folds (higher is better)", "",
              "| dataset | normal class | vaepipe score (anomaly_score) | IsolationForest | PCA recon. | OneClassSVM | PyOD VAE |",
              "|---|---|---|---|---|---|---|"]
    for a in results["anomaly"]:
        for normal, auc in a["per_class"].items():
            lines.append(f"| {a['dataset']} | {normal} | " + " | ".join(f"{auc[m]:.3f}" for m in methods) + " |")
        settings = ", ".join(f"{k}: {v}" for k, v in a.get("model", {}).items()) or "defaults"
        best_peer = max(a["mean"][m] for m in methods[1:])
        lines.append(f"| **{a['dataset']}** ({settings}) | **mean** | " + " | ".join(
            f"**{a['mean'][m]:.3f}**" if a["mean"][m] >= best_peer else f"{a['mean'][m]:.3f}" for m in methods) + " |")
    s = results["synthesis"]
    lines += ["", f"### Tabular synthesis on `fair` ({s['train_rows']} synthetic rows vs {s['test_rows']} real test "
                  "rows; higher is better)", "",
              "| generator | column shapes | column-pair trends | TSTR ROC-AUC (had_affair) | seconds |",
              "|---|---|---|---|---|"]
    for label, name in (("ours", "vaepipe generate"), ("tvae", "SDV TVAE")):
        r = s[label]
        if "missing" in r:
            lines.append(f"| {name} | — | — | — | {r['missing']} |")
        else:
            lines.append(f"| {name} | {r['column_shapes']:.3f} | {r['column_pair_trends']:.3f} | "
                         f"{r['utility_auc']:.3f} | {r['seconds']:.0f} |")
    r = s["real"]
    lines.append(f"| real train rows (ceiling) | {r['column_shapes']:.3f} | {r['column_pair_trends']:.3f} | "
                 f"{r['utility_auc']:.3f} | — |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute smoke run: few epochs, fewer datasets")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for quality.json/.md")
    parser.add_argument("--sdv-python", default=str(ROOT / ".venv-sdv" / "bin" / "python"),
                        help="interpreter that can import sdv (TVAE)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    quick = args.quick
    image_loop = LoopConfig(epochs=2 if quick else 20, batch_size=64, lr=2e-3, kl_warmup_epochs=1 if quick else 5,
                            seed=SEED)
    one_class_loop = LoopConfig(epochs=5 if quick else 200, batch_size=32, lr=2e-3,
                                kl_warmup_epochs=1 if quick else 10, seed=SEED)
    table_loop = LoopConfig(epochs=3 if quick else 100, batch_size=128, lr=2e-3, kl_warmup_epochs=1 if quick else 10,
                            seed=SEED)
    results = {"quick": quick, "seed": SEED, "threads": THREADS, "split": PrepareConfig(name="x", source="x").split}
    print("density", flush=True)
    results["density"] = [density("digits", image_loop, k=100 if quick else 1000)]
    if not quick:
        results["density"].append(density("mnist5k", image_loop, k=200))
    print("one-class anomaly detection", flush=True)
    folds = 2 if quick else ONE_CLASS_FOLDS
    results["anomaly"] = [one_class("digits", [0, 1] if quick else list(range(10)), one_class_loop, folds),
                          one_class("breast_cancer", [1], one_class_loop, folds)]
    print("tabular synthesis", flush=True)
    results["synthesis"] = synthesis(table_loop, args.sdv_python)
    results["seconds"] = time.perf_counter() - started
    table = markdown(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    (out / "quality.md").write_text(table)
    print(table)
    print(f"{results['seconds']:.0f} s; wrote {out / 'quality.json'} and {out / 'quality.md'}")


if __name__ == "__main__":
    sys.exit(main())
