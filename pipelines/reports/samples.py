"""The generation report of a samples output (samples/<model>/<run>/): synthetic rows next to the data the
model was trained on. Tables: each column's real vs synthetic distribution and the difference between the
two correlation matrices; images: a grid of real and one of generated images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.datasets.manifest import DatasetManifest
from pipelines.reports.page import Figure, Report, Section
from pipelines.reports.plotting import figure_png, histogram, image_grid_png, pyplot
from pipelines.storage.layout import samples_report_id

MAX_ROWS = 20_000  # of each side: enough for smooth histograms and correlations, cheap to read
GRID_IMAGES = 64


def column_distributions_png(manifest: DatasetManifest, real: pd.DataFrame, synthetic: pd.DataFrame) -> bytes:
    """One panel per feature column: overlaid density histograms (numeric, shared bins) or side-by-side level
    frequencies (categorical) of the real and the synthetic rows."""
    plt = pyplot()
    columns = manifest.numeric + manifest.categorical
    cols = min(4, len(columns))
    rows = int(np.ceil(len(columns) / cols))
    figure, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), constrained_layout=True, squeeze=False)
    for axis, column in zip(axes.flat, columns):
        if column in manifest.numeric:
            bins = np.histogram_bin_edges(real[column.name].to_numpy(dtype=float), bins=30,
                                          range=(column.min, column.max) if column.max > column.min else None)
            histogram(axis, real[column.name].to_numpy(dtype=float), bins, density=True, alpha=0.5, label="real")
            histogram(axis, synthetic[column.name].to_numpy(dtype=float), bins, density=True, alpha=0.5,
                      label="synthetic")
        else:
            positions = np.arange(len(column.levels))
            for offset, (name, frame) in zip((-0.2, 0.2), (("real", real), ("synthetic", synthetic))):
                counts = frame[column.name].astype(str).value_counts(normalize=True)
                axis.bar(positions + offset, [counts.get(level, 0.0) for level in column.levels], width=0.4,
                         label=name)
            axis.set_xticks(positions, column.levels, rotation=45 if len(column.levels) > 4 else 0,
                            fontsize="small")
        axis.set_title(column.name, fontsize="medium")
    for axis in axes.flat[len(columns):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    return figure_png(figure)


def correlation_difference(manifest: DatasetManifest, real: pd.DataFrame, synthetic: pd.DataFrame):
    """(synthetic − real) correlation matrix of the model's features (standardized numerics, one column per
    categorical level) and the features' names. A constant feature correlates 0 with everything."""
    from pipelines.datasets.features import table_features

    def correlations(frame: pd.DataFrame) -> np.ndarray:
        x = table_features(manifest, {name: frame[name].to_numpy() for name in manifest.feature_columns})
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(np.corrcoef(x, rowvar=False))

    names = [c.name for c in manifest.numeric] + [f"{c.name}={level}" for c in manifest.categorical
                                                  for level in c.levels]
    return correlations(synthetic) - correlations(real), names


def correlation_difference_png(difference: np.ndarray, names: list[str]) -> bytes:
    plt = pyplot()
    size = min(14.0, 3.0 + 0.3 * len(names))
    figure, axis = plt.subplots(figsize=(size + 1.5, size), constrained_layout=True)
    image = axis.imshow(difference, cmap="RdBu_r", vmin=-1, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=90, fontsize="x-small")
    axis.set_yticks(range(len(names)), names, fontsize="x-small")
    figure.colorbar(image, ax=axis, label="corr(synthetic) − corr(real)")
    return figure_png(figure)


def tabular_comparison(manifest: DatasetManifest, real: pd.DataFrame, synthetic: pd.DataFrame,
                       prefix: str = "") -> list[Figure]:
    """The per-column distributions figure and the correlation-difference heatmap (files named with `prefix`)."""
    difference, names = correlation_difference(manifest, real, synthetic)
    return [
        Figure(f"{prefix}columns.png", column_distributions_png(manifest, real, synthetic),
               f"Each column's distribution in {len(real)} real rows and {len(synthetic)} synthetic rows "
               "(densities for numbers, level frequencies for categories)."),
        Figure(f"{prefix}correlation-difference.png", correlation_difference_png(difference, names),
               "Correlation matrix of the synthetic rows minus that of the real rows, over the model's features "
               f"(one column per categorical level): white is a correlation the model reproduces. "
               f"Mean |difference| {np.abs(difference).mean():.3f}, largest {np.abs(difference).max():.3f}."),
    ]


def build_samples_report(root: str, prefix: str) -> Report:
    """The report of the committed samples at `prefix`, against the train split of the model's dataset."""
    from pipelines.batch.model_actors import resolve_model
    from pipelines.batch.parts import read_committed_parts
    from pipelines.storage.commit import read_success
    from pipelines.datasets.local_rows import images, read_rows

    prefix = prefix.rstrip("/")
    success = read_success(prefix)
    model = resolve_model(root, success["model"])
    manifest = model.training_manifest
    synthetic = read_committed_parts(prefix, limit=MAX_ROWS).to_pandas()
    real_rows = read_rows(model.card["dataset"]["uri"], manifest, "train", limit=MAX_ROWS)
    facts = {"samples": prefix, "model": model.reference, "rows": f"{success['rows']:,}",
             "seed": str(success.get("seed")), "compared with": f"train split of {model.card['dataset']['uri']}"}
    if "temperature" in success:
        facts["temperature"] = str(success["temperature"])
    if "from_embeddings" in success:
        facts["decoded from"] = f"{success['from_embeddings']} (radius {success['radius']:g})"
    summary = success.get("summary") or {}
    if summary.get("sampler"):
        facts["sampler"] = summary["sampler"] + (f" ({summary['mixture_components']} components)"
                                                 if summary.get("mixture_components") else "")
    quality = summary.get("quality")
    if quality:
        from pipelines.metrics.synthesis_quality import pair_trends_text

        facts["quality (SDMetrics)"] = (f"overall {quality['overall']:.3f}: column shapes "
                                        f"{quality['column_shapes']:.3f}, column-pair trends "
                                        f"{pair_trends_text(quality['column_pair_trends'])} (against the "
                                        f"{quality['compared_with']})")
        facts["DCR closer to training"] = (f"{quality['dcr_closer_to_training']:.3f} of rows (about 0.5: no sign "
                                           "of copied training rows)")
    if manifest.kind == "image":
        n = GRID_IMAGES
        real = images(manifest, real_rows)[:n]
        fake = np.stack(synthetic[manifest.image.column].head(n).to_numpy()).reshape(-1, *manifest.image.shape)
        figures = [Figure(f"{name}.png", image_grid_png(grid / manifest.image.max_value, title=title), title)
                   for name, grid, title in (("real", real, "real (train split)"), ("synthetic", fake, "generated"))]
        section = Section("Real and generated images", "The first images of each, side by side.", figures)
    else:
        section = Section("Real vs synthetic columns", "", tabular_comparison(manifest, real_rows.to_pandas(),
                                                                                synthetic))
    return Report(samples_report_id(prefix), f"Generated samples: {model.reference}", facts, [section],
                  f"vaepipe report samples {prefix}")
