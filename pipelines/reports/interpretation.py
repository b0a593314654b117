"""The interpretation report of a `vaepipe interpret` output (models/<name>/<version>/interpretations/<dataset>/
<split>/): its measures, the latent traversals of image models labelled with the factor each dimension explains
best, the factor × dimension mutual-information heatmap under each dimension's KL, and MIG's term per factor."""
from __future__ import annotations

import numpy as np

from pipelines.reports.page import Figure, Report, Section
from pipelines.reports.training import traversal_figure, interpretation_line


def build_interpretation_report(root: str, prefix: str) -> Report:
    """The report of the interpretation committed at `prefix` (its `_summary.json`, and the model it measures)."""
    from pipelines.datasets.manifest import DatasetManifest
    from pipelines.reports.latent_factors import dim_label, factor_table_html, mi_heatmap_png
    from pipelines.storage.commit import read_success
    from pipelines.storage.layout import SUMMARY_FILE, interpretation_report_id, parse_interpretation_uri
    from pipelines.storage.objects import read_json
    from pipelines.storage.registry import load_registered

    name, version, dataset, split = parse_interpretation_uri(prefix)
    committed = read_success(prefix)
    summary = read_json(f"{prefix}/{SUMMARY_FILE}")
    model, card = load_registered(root, f"{name}@{version}")
    manifest = DatasetManifest.model_validate(card["dataset"]["manifest"])
    kl = np.asarray(summary["kl_per_dim"])
    factors = summary.get("factors") or {}
    facts = {"model": f"{name}@{version}", "input": f"{committed.get('input', dataset)} (split {split})",
             "rows": f"{summary['rows']}", "measures": interpretation_line(summary),
             "active dims": ", ".join(f"z{j}" for j in summary["active_dims"]) or "none",
             "factors": ", ".join(factors.get("columns", [])) or "none recorded in the dataset"}
    if factors.get("constant_factors"):
        facts["left out"] = f"{', '.join(factors['constant_factors'])} (one value on the measured rows)"
    sections = []
    if "mi_nats" in factors:
        mi, entropy, names = np.asarray(factors["mi_nats"]), np.asarray(factors["entropy_nats"]), factors["columns"]
        if manifest.kind == "image":
            labels = [dim_label(j, mi, entropy, names, kl[j]) for j in range(len(kl))]
            sections.append(Section("Latent traversals", "", [traversal_figure(
                model, kl, manifest.image.shape, labels, f"on {factors['metric_rows']} rows of {dataset}")]))
        sections.append(Section(
            "Latent dimensions and factors",
            f"Mutual information of each latent mean with each factor on {factors['metric_rows']} rows (means cut "
            f"into {factors['mig_bins']} equal bins, as MIG does). A disentangled dimension is bright in one row "
            "only; MIG averages, over the factors, the gap between the two dimensions that know the most about "
            "the factor, over its entropy.",
            [Figure("factor-mi.png", mi_heatmap_png(mi, entropy, names, kl, summary["active_kl_floor"],
                                                    f"{name}@{version} on {dataset} ({split})"),
                    "Top: each dimension's mean KL (grey: inactive). Below: MI with each factor as a share of "
                    "the factor's entropy (colour) and in nats (numbers).")],
            tables=[factor_table_html(mi, entropy, names)]))
    else:
        sections.append(Section("Latent dimensions", f"{dataset} records no generative factors, so only each "
                                "dimension's KL is measured: " + ", ".join(f"z{j} {kl[j]:.3f}" for j in range(len(kl)))
                                + " nats."))
    return Report(interpretation_report_id(prefix), f"Interpretation: {name}@{version} on {dataset} ({split})",
                  facts, sections, f"vaepipe report interpretation {prefix}")
