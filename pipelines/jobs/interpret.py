"""`vaepipe interpret`: how interpretable a model's latent space is, measured on a prepared dataset.

Every row is encoded by the model actors of `embed` (on Ray or in this process: `runtime.engine`), and the
latent posteriors are committed with the row's known factors under the model version they measure:
models/<name>/<version>/interpretations/<dataset>/<split | all>/ part-*.parquet + `_summary.json` + `_SUCCESS`.
The summary holds the mean KL of each latent dim and the active units (dims above
`metrics.disentanglement.ACTIVE_KL_FLOOR` nats), and when the dataset has factor columns (`vaepipe prepare
shapes`, `factor_table`) the factor × dim mutual information, each dim's most informative factor, MIG, DCI
disentanglement / completeness / informativeness and SAP of the latent means
(`pipelines.metrics.disentanglement.interpretation_summary`).

A registered model card is never rewritten (the registry commits each version once); its interpretations are
outputs of their own beside it, committed the same way, and `storage.registry.read_interpretations` reads a
version's card together with them.
"""
from __future__ import annotations

from typing import Callable, Literal

import numpy as np
from pydantic import Field

from pipelines.batch.config import RowJobConfig
from pipelines.batch.model_actors import ModelWork
from pipelines.batch.model_input import open_row_input
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.jobs.embed import EmbedActor, embedding_columns
from pipelines.metrics.disentanglement import SUMMARY_ROWS, interpretation_summary
from pipelines.storage.layout import SUMMARY_FILE, interpretation_uri


class InterpretJobConfig(RowJobConfig):
    output: Literal["models"] = Field(
        "models", description="interpretations are committed beside the model version they measure: "
                              "models/<name>/<version>/interpretations/<dataset>/<split | all>/")
    metric_rows: int = Field(SUMMARY_ROWS, ge=2, description="rows the factor scores (MIG, DCI, SAP) are computed "
                                                             "on, drawn by `seed` (disentanglement_lib uses 10,000); "
                                                             "the KL and active units use every row")
    seed: int = Field(0, ge=0, description="seed of the rows drawn for the scores and of DCI's train/test cut")
    dci_importance: Literal["random_forest", "gradient_boosting"] = Field(
        "random_forest", description="DCI's importance: random_forest (seconds) or gradient_boosting "
                                     "(disentanglement_lib's, minutes on 10,000 rows)")


def latent_arrays(table, latent_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) [N, Z] from the columns `embed` writes."""
    mu = np.column_stack([table[f"mu_{i}"].to_numpy() for i in range(latent_dim)])
    logvar = np.column_stack([table[f"logvar_{i}"].to_numpy() for i in range(latent_dim)])
    return mu, logvar


def run_interpretation(config: InterpretJobConfig, progress: Callable[[str], None] = print) -> BatchOutcome:
    """Encode the input and commit its interpretation beside the model version; `AlreadyComplete` if it exists."""
    from pipelines.batch.parts import read_attempt_parts
    from pipelines.datasets.catalog import load_manifest
    from pipelines.storage.layout import resolve_dataset
    from pipelines.storage.objects import write_json

    root, model = open_model(config)
    latent_dim = int(model.card["spec"]["latent_dim"])
    factors = list(load_manifest(resolve_dataset(root, config.input)).factor_columns or [])
    # the factors travel with the latents, after the label and the passthrough columns
    rows = open_row_input(root, model, config.input, config.split, list(dict.fromkeys([*config.passthrough, *factors])),
                          embedding_columns(latent_dim))
    prefix = interpretation_uri(root, model.name, model.version, rows.source.manifest.name, config.split)

    def summarize(commit) -> dict:
        written = read_attempt_parts(commit, [*embedding_columns(latent_dim)[1:], *factors]).to_pandas()
        mu, logvar = latent_arrays(written, latent_dim)
        progress(f"measuring {len(written)} latent rows"
                 + (f" against the factors {', '.join(factors)} (on {min(len(written), config.metric_rows)} rows)"
                    if factors else " (the dataset has no factor columns: KL per dim and active units only)"))
        summary = interpretation_summary(mu, logvar, written[factors] if factors else None,
                                         max_rows=config.metric_rows, seed=config.seed,
                                         importance=config.dci_importance)
        summary.update({"model": model.reference, "input": rows.source.uri, "split": config.split})
        write_json(f"{prefix}/{SUMMARY_FILE}", summary)
        return {"summary": summary}

    return run_batch("interpret", config, model, BatchPlan(
        prefix=prefix, rows=rows.source.rows,
        description=f"interpreting {model.reference} (latent {latent_dim}) on {rows.source.rows} rows of "
                    f"{rows.source.uri}{f' (split {config.split})' if config.split else ''}",
        work=ModelWork(EmbedActor, rows.dataset, rows.batches, dict(passthrough=rows.passthrough)),
        metadata={**rows.metadata, "latent_dim": latent_dim, "factor_columns": factors},
        finish=summarize), progress)
