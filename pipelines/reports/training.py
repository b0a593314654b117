"""The training report of a registered model, from its card (history, dataset manifest) and its weights:
loss curves, reconstructions next to inputs, samples from the prior, latent traversals and a 2-D projection
of the latent means, on up to `MAX_ROWS` validation rows read without Ray."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from pipelines.datasets.manifest import DatasetManifest
from pipelines.metrics.disentanglement import ACTIVE_KL_FLOOR, MIG_BINS
from pipelines.datasets.local_rows import features, read_rows
from pipelines.reports.data import labels
from pipelines.reports.page import Figure, Report, Section, html_table
from pipelines.reports.latent_factors import dim_label, dims_by_kl, factor_table_html, mi_heatmap_png
from pipelines.reports.plotting import figure_png, image_grid_png, image_table_png, pyplot
from pipelines.storage.layout import training_report_id

MAX_ROWS = 2000
RECONSTRUCTIONS = 16  # images; 8 to a row, each row of inputs above its reconstructions
TABLE_RECONSTRUCTIONS = 5
PRIOR_IMAGES = 32
TRAVERSAL_STEPS = np.linspace(-3.0, 3.0, 9)  # in prior standard deviations
MAX_TRAVERSED_DIMS = 10
MAX_LEGEND_CLASSES = 20



def factor_information(manifest: DatasetManifest, rows, mu: np.ndarray
                       ) -> Optional[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(MI [Z, F] in nats, the factors' entropies [F], their names) of the rows' latent means `mu` and the
    dataset's factor columns; None when it has none (or they take one value each on these rows)."""
    from pipelines.metrics.disentanglement import factor_entropies, mutual_information_matrix

    names = [name for name in manifest.factor_columns or [] if name in rows.column_names
             and len(set(rows[name].to_pylist())) > 1]
    if not names or len(mu) < 2:
        return None
    frame = rows.select(names).to_pandas()
    return mutual_information_matrix(mu, frame), factor_entropies(frame), names


def interpretation_line(summary: dict) -> str:
    """One line of an interpretation's measures: active units, and the factor scores when it had factors."""
    line = f"{summary['active_units']} of {summary['latent_dim']} dims active"
    if summary.get("mig") is not None:
        line += (f"; MIG {summary['mig']:.3f}, SAP {summary['sap']:.3f}"
                 + (f", DCI D {summary['dci_disentanglement']:.3f} C {summary['dci_completeness']:.3f} "
                    f"I {summary['dci_informativeness']:.3f}" if summary.get("dci_disentanglement") is not None else "")
                 + f" (on {summary['factors']['metric_rows']} rows)")
    return line


def loss_curves_png(history: list[dict], best_epoch: int, objective: str = "elbo") -> bytes:
    """Training loss (β-weighted), train and val −ELBO, val reconstruction NLL and val KL per epoch; β on a
    second axis of the KL panel when it changes (warm-up)."""
    plt = pyplot()
    frame = pd.DataFrame(history)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    axes[0].plot(frame["epoch"], frame["train_loss"],
                 label="train loss (β-TCVAE)" if objective == "beta_tc" else "train loss (β-ELBO)")
    axes[0].plot(frame["epoch"], frame["train_neg_elbo"], label="train −ELBO (β=1)")
    axes[0].plot(frame["epoch"], frame["val_neg_elbo"], label="val −ELBO (β=1)")
    axes[0].set_ylabel("nats per row")
    axes[1].plot(frame["epoch"], frame["val_recon_nll"], color="tab:green", label="val reconstruction NLL")
    axes[2].plot(frame["epoch"], frame["val_kl"], color="tab:purple", label="val KL(q(z|x) ‖ p(z))")
    if frame["beta"].nunique() > 1:
        beta_axis = axes[2].twinx()
        beta_axis.plot(frame["epoch"], frame["beta"], color="gray", linestyle=":", label="β")
        beta_axis.set_ylabel("β")
    for axis in axes:
        axis.axvline(best_epoch, color="tab:red", linestyle="--", alpha=0.6, label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    return figure_png(figure)


def reconstruction_figure(model, x: torch.Tensor) -> Figure:
    n = min(RECONSTRUCTIONS, len(x)) // 8 * 8 or min(RECONSTRUCTIONS, len(x))
    with model.inference():
        recon = model.reconstruct(x[:n]).float().clamp(0, 1).numpy()
    cols, shape = min(8, n), model.spec.input_shape
    pixels = model.split_condition(x[:n])[0].numpy()  # without a conditional model's condition one-hots
    inputs, outputs = pixels.reshape(-1, cols, *shape), recon.reshape(-1, cols, *shape)
    stacked = np.stack([inputs, outputs], axis=1).reshape(-1, cols, *shape)
    png = image_table_png(stacked, ["input", "reconstruction"] * len(inputs))
    return Figure("reconstructions.png", png,
                  "Validation images (input) above the decoder's mean at z = the posterior mean (reconstruction).")


def reconstruction_table(model, x: torch.Tensor, rows, manifest: DatasetManifest) -> str:
    from pipelines.datasets.features import features_to_table

    n = min(TABLE_RECONSTRUCTIONS, len(x))
    with model.inference():
        recon = model.reconstruct(x[:n]).float().numpy()
    inputs = rows.slice(0, n).to_pandas()[manifest.feature_columns]
    outputs = features_to_table(manifest, recon)
    ids = rows[manifest.id_column].to_pylist()[:n]
    lines = []
    for i in range(n):
        lines.append({"row": ids[i], "": "input", **inputs.iloc[i].to_dict()})
        lines.append({"row": ids[i], "": "reconstruction", **outputs.iloc[i].to_dict()})
    return html_table(pd.DataFrame(lines))


def traversal_figure(model, kl: np.ndarray, image_shape, labels: Optional[Sequence[str]] = None,
                     labelled_by: str = "") -> Figure:
    """Decoded traversals of the dims with the most mean KL (`kl` [Z]), one row each; a row is named by
    `labels[dim]` when given (the factor the dim explains best, from `reports.latent_factors.dim_label`)."""
    dims = dims_by_kl(kl)[:MAX_TRAVERSED_DIMS]
    steps = len(TRAVERSAL_STEPS)
    z = torch.zeros(len(dims) * steps, len(kl))
    for row, dim in enumerate(dims):
        z[row * steps:(row + 1) * steps, dim] = torch.from_numpy(TRAVERSAL_STEPS).float()
    with model.inference():
        decoded = model.likelihood.mean(model.decode(z)).float().clamp(0, 1).numpy()
    png = image_table_png(decoded.reshape(len(dims), steps, *image_shape),
                          [labels[d] if labels else f"z{d} (KL {kl[d]:.2f})" for d in dims],
                          [f"{v:+.1f}" for v in TRAVERSAL_STEPS])
    return Figure("traversals.png", png,
                  "Each row decodes z with one latent dimension set to −3 … +3 prior standard deviations and the "
                  "others at 0 (the prior mean). Rows are ordered by the dimension's average KL: a dimension with "
                  "KL ≈ 0 is unused by the encoder, and its row does not change."
                  + (f" Each row names the factor the dimension shares the most mutual information with ({labelled_by}),"
                     " that information in nats and as a share of the factor's entropy." if labels else "")
                  + (f" The {MAX_TRAVERSED_DIMS} dimensions with the most KL are shown." if len(kl) > len(dims) else ""))


def principal_components(points: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(the points projected on their first k principal axes, the fraction of variance of each axis)."""
    centered = points - points.mean(axis=0)
    _, singular, axes = np.linalg.svd(centered, full_matrices=False)
    variance = singular ** 2
    return centered @ axes[:k].T, variance[:k] / max(variance.sum(), 1e-12)


def latent_projection_png(mu: np.ndarray, label_values: Optional[np.ndarray], label_name: Optional[str]) -> bytes:
    """Latent means in 2-D (the latents themselves when there are two, else PCA), coloured by label."""
    plt = pyplot()
    if mu.shape[1] <= 2:
        coords = np.column_stack([mu, np.zeros((len(mu), 2 - mu.shape[1]))])
        x_label, y_label = "z0", ("z1" if mu.shape[1] == 2 else "")
    else:
        coords, explained = principal_components(mu)
        x_label, y_label = f"PC1 ({explained[0]:.0%} of variance)", f"PC2 ({explained[1]:.0%})"
    figure, axis = plt.subplots(figsize=(7, 6), constrained_layout=True)
    classes = None if label_values is None else np.unique(label_values.astype(str))
    if classes is not None and len(classes) <= MAX_LEGEND_CLASSES:
        colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, value in enumerate(classes):
            chosen = label_values.astype(str) == value
            axis.scatter(coords[chosen, 0], coords[chosen, 1], s=10, alpha=0.7, color=colours(i), label=value)
        axis.legend(title=label_name, fontsize="small", markerscale=2)
    elif label_values is not None and np.issubdtype(np.asarray(label_values).dtype, np.number):
        points = axis.scatter(coords[:, 0], coords[:, 1], s=10, alpha=0.7, c=label_values, cmap="viridis")
        figure.colorbar(points, ax=axis, label=label_name)
    else:
        axis.scatter(coords[:, 0], coords[:, 1], s=10, alpha=0.7)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)
    return figure_png(figure)


def _prior_section(model, manifest: DatasetManifest, rows) -> Section:
    from pipelines.datasets.features import features_to_table
    from pipelines.reports.samples import tabular_comparison
    from vae_core import sample_prior

    generator = torch.Generator().manual_seed(0)
    if manifest.kind == "image":
        samples = sample_prior(model, PRIOR_IMAGES, generator=generator, mode="mean").float().clamp(0, 1).numpy()
        given = (f" Sample i is decoded with level i mod K of {', '.join(c.name for c in manifest.condition)}."
                 if manifest.condition else "")
        return Section("Samples from the prior", f"Decoder means at z ~ N(0, I), seed 0.{given}",
                       [Figure("prior-samples.png", image_grid_png(samples), f"{PRIOR_IMAGES} samples")])
    # tables draw values (mode="sample") as `vaepipe generate` does, so their spread is comparable
    samples = sample_prior(model, max(len(rows), 500), generator=generator, mode="sample").float().numpy()
    synthetic = features_to_table(manifest, samples)
    return Section("Samples from the prior", "Rows decoded from z ~ N(0, I) (seed 0) against the validation rows.",
                   tabular_comparison(manifest, rows.to_pandas(), synthetic, prefix="prior-"))


def build_training_report(root: str, reference: str) -> Report:
    """The report of a registered model (`digits@3`, `digits@PROMOTED`, ...)."""
    from pipelines.storage.registry import load_registered, read_interpretations
    from vae_core import encode, kl_per_dim

    model, card = load_registered(root, reference)
    manifest = DatasetManifest.model_validate(card["dataset"]["manifest"])
    dataset, training = card["dataset"]["uri"], card["training"]
    rows = read_rows(dataset, manifest, "val", limit=MAX_ROWS)
    split = "validation"
    if rows.num_rows == 0:  # a dataset prepared without a val split
        rows, split = read_rows(dataset, manifest, None, limit=MAX_ROWS), "all"
    x = torch.from_numpy(features(manifest, rows))
    posterior = encode(model, x)
    mu, logvar = posterior.mu.float(), posterior.logvar.float()
    best = int(training["best_epoch"])

    loop = training["config"]["train"]
    objective = loop.get("objective", "elbo")
    kl = kl_per_dim(mu, logvar).mean(dim=0).numpy()
    sections = [Section("Loss curves", "Per epoch. The training loss weighs the KL by β "
                        + ("(β-TCVAE: the KL term split into index-code MI × α, total correlation × β and "
                           "dimension-wise KL × γ)" if objective == "beta_tc" else "")
                        + "; the −ELBO curves use β = 1, so they compare across runs and sweeps. The best epoch "
                        "(lowest val −ELBO) is the registered one.",
                        [Figure("loss.png", loss_curves_png(training["history"], best, objective),
                                "Training loss, train/val negative ELBO, val reconstruction NLL and val KL.")])]
    if manifest.kind == "image":
        sections.append(Section("Reconstructions", "", [reconstruction_figure(model, x)]))
    else:
        sections.append(Section("Reconstructions", f"The first {TABLE_RECONSTRUCTIONS} {split} rows and their "
                                "reconstructions (decoder mean at z = posterior mean; categories: most likely level).",
                                tables=[reconstruction_table(model, x, rows, manifest)]))
    sections.append(_prior_section(model, manifest, rows))
    factors = factor_information(manifest, rows, mu.numpy())
    dim_labels = ([dim_label(j, *factors, kl[j]) for j in range(len(kl))] if factors else None)
    if manifest.kind == "image":
        sections.append(Section("Latent traversals", "", [traversal_figure(
            model, kl, manifest.image.shape, dim_labels, f"on {len(x)} {split} rows")]))
    if factors:
        mi, entropy, names = factors
        sections.append(Section(
            "Latent dimensions and factors",
            f"The dataset records each row's generative factors ({', '.join(names)}). Mutual information between "
            f"each latent mean and each factor on {len(x)} {split} rows, the means cut into {MIG_BINS} equal bins as "
            "MIG does: a disentangled dimension is bright in one row only. `vaepipe interpret` measures MIG, DCI and "
            "SAP on the whole dataset.",
            [Figure("factor-mi.png", mi_heatmap_png(mi, entropy, names, kl, ACTIVE_KL_FLOOR,
                                                    f"I(z; factor) on {len(x)} {split} rows"),
                    "Top: each dimension's mean KL (grey: inactive). Below: MI with each factor as a share of the "
                    "factor's entropy (colour) and in nats (numbers).")],
            tables=[factor_table_html(mi, entropy, names)]))
    label_values = labels(manifest, rows)
    sections.append(Section("Latent space", "", [Figure(
        "latent-projection.png", latent_projection_png(mu.numpy(), label_values, manifest.label_column),
        f"Posterior means of {len(x)} {split} rows"
        + (" projected on their first two principal components" if mu.shape[1] > 2 else "")
        + (f", coloured by {manifest.label_column}." if label_values is not None else "."))]))

    metrics = card["metrics"]
    facts = {"model": f"{card['name']}@{card['version']}", "registered": card.get("registered_at", ""),
             "dataset": f"{card['dataset']['name']} ({dataset}, fingerprint {card['dataset']['fingerprint'][:12]})",
             "run": f"{training['run_id']} ({training['run_uri']})",
             "model spec": f"{card['spec']['architecture']} VAE, latent {card['spec']['latent_dim']}",
             "objective": (f"β-TCVAE (α {loop.get('alpha', 1.0):g}, β {loop['beta']:g}, γ {loop.get('gamma', 1.0):g})"
                           if objective == "beta_tc" else f"β-ELBO (β {loop['beta']:g})"),
             "best epoch": f"{best} of {len(training['history'])}",
             "val −ELBO / recon NLL / KL": f"{metrics['val_neg_elbo']:.3f} / {metrics['val_recon_nll']:.3f} / "
                                         f"{metrics['val_kl']:.3f} nats",
             "anomaly threshold": f"{card['calibration']['threshold']:.3f} "
                                  f"(contamination {card['calibration']['contamination']})"}
    for where, summary in read_interpretations(root, card["name"], card["version"]).items():
        facts[f"interpretation {where}"] = interpretation_line(summary)
    return Report(training_report_id(card["name"], card["version"]), f"Training report: {card['name']}@{card['version']}",
                  facts, sections,
                  f"vaepipe report model {card['name']}@{card['version']}")


def model_of_run(root: str, run_id: str) -> str:
    """`name@version` of the model a training run registered (the newest, if it was registered twice)."""
    from pipelines.storage.layout import CARD_FILE, JOB_FILE, model_version_uri, run_uri, runs_uri
    from pipelines.storage.objects import exists, read_json
    from pipelines.storage.registry import ModelNotFound, list_versions

    job = f"{run_uri(root, run_id)}/{JOB_FILE}"
    if not exists(job):
        raise ModelNotFound(f"no run {run_id!r} under {runs_uri(root)} (no {JOB_FILE}); run ids are printed by "
                            "`vaepipe train`")
    name = read_json(job)["name"]
    for version in reversed(list_versions(root, name)):
        if read_json(f"{model_version_uri(root, name, version)}/{CARD_FILE}")["training"]["run_id"] == run_id:
            return f"{name}@{version}"
    raise ModelNotFound(f"run {run_id} registered no version of model {name!r} (it failed or is still running); "
                        f"report a registered version with `vaepipe report model {name}@<version>`")
