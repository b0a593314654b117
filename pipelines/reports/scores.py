"""The scoring report of a scores output (scores/<model>/<dataset>/<date>/): the score distribution with
the threshold, the top anomalies (images and their reconstructions for image data), ROC and
precision–recall curves when the rows carry labels that mark anomalies, the run's drift from the model's
validation scores, and the nightly history of anomaly rate and drift of every date of that model and input."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from pipelines.datasets.manifest import DatasetManifest
from pipelines.reports.page import Figure, Report, Section, html_table
from pipelines.reports.plotting import figure_png, histogram, image_table_png, pyplot

TOP_ANOMALIES = 16
HISTOGRAM_BINS = 60
HISTORY_DATES = 60  # the nightly history shows this many dates up to the report's own


def read_scores(prefix: str) -> pd.DataFrame:
    """Every committed row of a scores output (the parts its `_SUCCESS` lists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.storage.commit import list_committed_parts
    from pipelines.storage.objects import resolve

    location = resolve(prefix)
    return pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                             for uri in list_committed_parts(prefix)]).to_pandas()


SCORE_NAMES = {"anomaly_score": "anomaly score: reconstruction deviance + KL (nats)",
               "neg_elbo": "anomaly score: negative ELBO (nats)"}


def histogram_png(values: np.ndarray, threshold: float, positive: Optional[np.ndarray],
                  score: str = "anomaly_score") -> bytes:
    """Histogram of the scores with the threshold; split into labelled normal / anomalous rows."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4), constrained_layout=True)
    bins = np.histogram_bin_edges(np.append(values, threshold), bins=HISTOGRAM_BINS)
    if positive is None:
        histogram(axis, values, bins, color="tab:blue", label="all rows")
    else:
        histogram(axis, values[~positive], bins, alpha=0.6, color="tab:blue", label="labelled normal")
        histogram(axis, values[positive], bins, alpha=0.6, color="tab:orange", label="labelled anomaly")
    axis.axvline(threshold, color="tab:red", linestyle="--",
                 label=f"threshold {threshold:.2f} ({int((values > threshold).sum())} rows above)")
    axis.set_xlabel(SCORE_NAMES.get(score, score))
    axis.set_ylabel("rows")
    axis.legend()
    axis.grid(alpha=0.3)
    return figure_png(figure)


def roc_pr_png(scores: np.ndarray, positive: np.ndarray) -> bytes:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = pyplot()
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    false_positive, true_positive, _ = roc_curve(positive, scores)
    roc.plot(false_positive, true_positive, label=f"AUC {roc_auc_score(positive, scores):.3f}")
    roc.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.set_title("ROC")
    precision, recall, _ = precision_recall_curve(positive, scores)
    pr.plot(recall, precision, label=f"average precision {average_precision_score(positive, scores):.3f}")
    pr.axhline(positive.mean(), color="gray", linestyle=":", label=f"chance ({positive.mean():.3f})")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_title("precision–recall")
    for axis in (roc, pr):
        axis.legend(loc="lower right" if axis is roc else "upper right")
        axis.grid(alpha=0.3)
    return figure_png(figure)


def top_anomaly_images(root: str, model_reference: str, input_uri: str, manifest: DatasetManifest,
                       top: pd.DataFrame, score: str) -> Figure:
    """The top rows' images (read from the scored dataset by row id) above their reconstructions."""
    import torch

    from pipelines.storage.registry import load_registered
    from pipelines.datasets.local_rows import images, read_rows

    model, _ = load_registered(root, model_reference)
    rows = read_rows(input_uri, manifest, row_ids=top["row_id"].tolist())
    order = {row_id: i for i, row_id in enumerate(rows[manifest.id_column].to_pylist())}
    x = torch.from_numpy(images(manifest, rows)[[order[r] for r in top["row_id"]]] / manifest.image.max_value).float()
    with model.inference():
        recon = model.reconstruct(x).float().clamp(0, 1).numpy()
    png = image_table_png(np.stack([x.numpy(), recon]), ["input", "reconstruction"],
                          [f"{value:.1f}" for value in top[score]])
    return Figure("top-anomalies.png", png, f"The {len(top)} highest-scoring rows, highest first, with their "
                  f"scores ({score}) above and the model's reconstructions below.")


def nightly_history(prefix: str, limit: int = HISTORY_DATES) -> pd.DataFrame:
    """One row per committed date of the same model and input up to `prefix`'s own (the last `limit`), oldest
    first: its rows, anomaly rate and drift figures, from each date's `_summary.json` (none: NaN)."""
    from pipelines.storage.commit import SUCCESS
    from pipelines.storage.layout import SUMMARY_FILE, parse_scores_uri, scores_date_uri, scores_series_uri
    from pipelines.storage.objects import list_files, read_json, resolve

    series = scores_series_uri(prefix)
    own_date = parse_scores_uri(prefix)[2]
    base = resolve(series).path.rstrip("/") + "/"
    names = {entry.path[len(base):] for entry in list_files(series, recursive=True, include_hidden=True)}
    dates = sorted(name.split("/")[0] for name in names
                   if name.endswith(f"/{SUCCESS}") and name.count("/") == 1
                   and f"{name.split('/')[0]}/{SUMMARY_FILE}" in names and name.split("/")[0] <= own_date)
    rows = []
    for date in dates[-limit:]:
        summary = read_json(f"{scores_date_uri(series, date)}/{SUMMARY_FILE}")
        drift = summary.get("drift") or {}
        rows.append({"date": date, "rows": summary.get("rows"), "anomaly rate": summary.get("anomaly_rate"),
                     "expected rate": drift.get("expected_anomaly_rate"), "PSI": drift.get("psi"),
                     "KS": drift.get("ks"), "alarms": "; ".join(drift.get("alarms", [])) or ""})
    return pd.DataFrame(rows, columns=["date", "rows", "anomaly rate", "expected rate", "PSI", "KS", "alarms"])


def history_png(history: pd.DataFrame, psi_limit: Optional[float]) -> bytes:
    """The anomaly rate (with the expected one) and the PSI (with its alarm limit) of each date."""
    plt = pyplot()
    figure, (rate, psi) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, constrained_layout=True)
    x = pd.to_datetime(history["date"])
    rate.plot(x, history["anomaly rate"].astype(float) * 100, marker="o", label="anomaly rate")
    rate.plot(x, history["expected rate"].astype(float) * 100, color="gray", linestyle=":",
              label="expected (validation scores above the threshold)")
    rate.set_ylabel("% of rows flagged")
    psi.plot(x, history["PSI"].astype(float), marker="o", color="tab:purple", label="PSI vs validation scores")
    if psi_limit is not None:
        psi.axhline(psi_limit, color="tab:red", linestyle="--", label=f"alarm above {psi_limit:g}")
    psi.set_ylabel("PSI")
    for axis in (rate, psi):
        axis.legend(loc="upper left")
        axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure_png(figure)


def drift_section(summary: dict, history: pd.DataFrame) -> Section:
    """This run's drift figures and alarms, and the nightly history of the model on this input."""
    drift = summary.get("drift")
    if drift is None:
        return Section("Drift and nightly history", "Not measured: these scores were written before vaepipe "
                       "compared scores with the model's validation scores.")
    ratio = drift.get("anomaly_rate_ratio")
    text = (f"Against the model's validation scores ({drift.get('validation_rows')} rows): PSI "
            f"{drift['psi']:.3f} over {drift['psi_bins']} bins at the validation deciles (below 0.1 reads as "
            f"stable, above 0.25 as a shift), KS {drift['ks']:.3f}; anomaly rate {drift['anomaly_rate']:.2%} "
            f"against {drift['expected_anomaly_rate']:.2%} expected"
            + (f" ({ratio:.2f}×)" if ratio is not None else "") + ". Alarms: "
            + ("; ".join(drift["alarms"]) if drift["alarms"] else "none") + ".")
    figures = ([Figure("nightly-history.png", history_png(history, drift.get("limits", {}).get("psi_alarm")),
                       f"The {len(history)} dates scored with this model on this input, up to this one.")]
               if len(history) > 1 else [])
    return Section("Drift and nightly history", text, figures, [html_table(history, float_format="{:.4f}")])


def build_scores_report(root: str, prefix: str) -> Report:
    """The report of the committed scores at `prefix` (its rows, `_summary.json` and `_SUCCESS` metadata)."""
    from pipelines.datasets.catalog import load_manifest
    from pipelines.storage.commit import read_success
    from pipelines.metrics.anomaly import anomaly_classes, score_column
    from pipelines.storage.layout import SUMMARY_FILE, parse_scores_uri, scores_report_id
    from pipelines.storage.objects import read_json

    prefix = prefix.rstrip("/")
    success = read_success(prefix)
    summary = read_json(f"{prefix}/{SUMMARY_FILE}")
    scores = read_scores(prefix)
    label = success.get("label")
    positive, why_not = (anomaly_classes(scores[label].to_numpy(), success.get("normal_label"))
                         if label and label in scores.columns else (None, "no label column"))
    threshold = float(summary["threshold"])
    score = score_column(summary)

    sections = [Section("Score distribution", "", [Figure(
        "histogram.png", histogram_png(scores[score].to_numpy(), threshold, positive, score),
        "Rows above the threshold are flagged is_anomaly." + (f" Labelled anomalies: {label} "
        + (f"≠ {success['normal_label']}" if success.get("normal_label") is not None else "= its larger value")
        + "." if positive is not None else ""))])]
    top = scores.nlargest(TOP_ANOMALIES, score, keep="first")  # not a sort of every row: 3.4 → 0.15 s at 10M
    shown = [c for c in ("row_id", "anomaly_score", "neg_elbo", "recon_nll", "kl", "iw_nll", "percentile",
                         "is_anomaly", label)
             if c and c in top.columns]
    manifest = load_manifest(success["input"])
    figures = [top_anomaly_images(root, success["model"], success["input"], manifest, top, score)] \
        if manifest.kind == "image" else []
    sections.append(Section("Top anomalies", "", figures, [html_table(top[shown], sortable=True)]))
    if positive is not None:
        sections.append(Section("ROC and precision–recall", f"The {score} as a detector of the labelled "
                                "anomalies, over every threshold.",
                                [Figure("roc-pr.png", roc_pr_png(scores[score].to_numpy(), positive),
                                        f"{int(positive.sum())} labelled anomalies among {len(positive)} rows.")]))
    else:
        sections.append(Section("ROC and precision–recall", f"Not drawn: {why_not}."))
    facts = {"scores": prefix, "model": success["model"], "input": str(success.get("input")),
             "split": str(success.get("split") or "all rows"), "date": str(success.get("date")),
             "rows": f"{summary['rows']:,}", "threshold": f"{threshold:.3f}",
             "flagged": f"{summary['anomalies']:,} ({summary['anomaly_rate']:.2%})"}
    if "roc_auc" in summary:
        facts["ROC-AUC / precision@k"] = f"{summary['roc_auc']:.3f} / {summary['precision_at_k']:.3f} (k={summary['k']})"
    if "drift" in summary:
        drift = summary["drift"]
        facts["drift (PSI / KS)"] = f"{drift['psi']:.3f} / {drift['ks']:.3f}"
        facts["drift alarms"] = "; ".join(drift["alarms"]) or "none"
    sections.append(drift_section(summary, nightly_history(prefix)))
    return Report(scores_report_id(prefix), f"Scoring report: {success['model']} on {parse_scores_uri(prefix)[1]}",
                  facts, sections, f"vaepipe report scores {prefix}")
