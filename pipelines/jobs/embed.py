"""`vaepipe embed`: the latent posterior q(z|x) of every row — mean and log-variance — written to
embeddings/<model>/<dataset>/ as Parquet parts + `_SUCCESS`.

Columns are `row_id`, `mu_0..mu_{d-1}`, `logvar_0..logvar_{d-1}` (plain float32
columns, so any Parquet reader — pandas, Spark, DuckDB — gets features without
Ray's tensor type), plus the label and any passthrough columns.

When the input has a label, `_summary.json` (and `_SUCCESS`) also say what the embeddings are worth for it: a
linear probe of the label on the train rows' latent means, scored on the test rows, against the raw features
and PCA of the same width, with every label and with 10 per class (`metrics.linear_probe`).
"""
from __future__ import annotations

from typing import Callable, Optional

from pydantic import Field

from pipelines.batch.config import RowJobConfig
from pipelines.batch.model_actors import ModelActor, ModelWork
from pipelines.batch.model_input import open_row_input
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.storage.layout import SUMMARY_FILE, embeddings_uri, output_root

# rows of each split the probe reads (the first ones in shard order): a logistic regression on 784 pixels of
# 5,000 rows takes seconds on 2 cores
PROBE_ROWS = 5_000


class EmbedJobConfig(RowJobConfig):
    output: str = Field("embeddings", description="output root: a folder under the storage root or a full URI")


def embedding_columns(latent_dim: int) -> list[str]:
    return ["row_id", *(f"{kind}_{i}" for kind in ("mu", "logvar") for i in range(latent_dim))]


class EmbedActor(ModelActor):
    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, passthrough: tuple[str, ...],
                 loaded: Optional[tuple] = None):
        super().__init__(root, reference, use_gpu, loaded)
        self.passthrough = passthrough

    def __call__(self, batch: dict) -> dict:
        from pipelines.datasets.reader import batch_tensor, to_model_input
        from vae_core import encode

        x = to_model_input(batch_tensor(batch["x"]).to(self.device), self.manifest)
        mu, logvar = (t.float().cpu().numpy() for t in encode(self.model, x))
        out = {"row_id": batch["row_id"]}
        out.update({f"mu_{i}": mu[:, i] for i in range(mu.shape[1])})
        out.update({f"logvar_{i}": logvar[:, i] for i in range(logvar.shape[1])})
        out.update({column: batch[column] for column in self.passthrough})
        return out


def run_embedding(config: EmbedJobConfig, progress: Callable[[str], None] = print) -> BatchOutcome:
    """Embed the input and commit embeddings/<model>/<dataset>/; `AlreadyComplete` if it exists."""
    root, model = open_model(config)
    latent_dim = int(model.card["spec"]["latent_dim"])
    rows = open_row_input(root, model, config.input, config.split, config.passthrough, embedding_columns(latent_dim))

    def finish(commit) -> dict:
        from pipelines.metrics.linear_probe import probe_lines
        from pipelines.storage.objects import write_json

        summary: dict = {"latent_dim": latent_dim, "label": rows.label}
        summary["linear_probe"], why = label_probe(commit, model, rows.source, rows.label, latent_dim)
        if why:
            summary["linear_probe_note"] = why
            progress(f"no linear probe: {why}")
        else:
            for line in probe_lines(summary["linear_probe"]):
                progress(line)
        write_json(f"{commit.prefix_uri}/{SUMMARY_FILE}", summary)
        return {"summary": summary}

    return run_batch("embed", config, model, BatchPlan(
        prefix=embeddings_uri(output_root(root, config.output), model.slug, rows.source.manifest.name),
        rows=rows.source.rows,
        description=f"embedding {rows.source.rows} rows of {rows.source.uri} with {model.reference} "
                    f"(latent {latent_dim})",
        work=ModelWork(EmbedActor, rows.dataset, rows.batches, dict(passthrough=rows.passthrough)),
        metadata={**rows.metadata, "latent_dim": latent_dim}, finish=finish), progress)


def label_probe(commit, model, source, label: Optional[str], latent_dim: int) -> tuple[Optional[dict], Optional[str]]:
    """(the linear probe of `label` on this attempt's embeddings vs the raw features and PCA, None) — or (None,
    why not): no label, or the output lacks the train or test rows (`--split`)."""
    import numpy as np
    import pyarrow.compute as pc

    from pipelines.batch.parts import read_attempt_parts
    from pipelines.datasets.local_rows import features, read_rows
    from pipelines.metrics.linear_probe import linear_probe, with_pca

    if label is None:
        return None, "the input has no label column"
    split_rows = {split: read_rows(source.uri, source.manifest, split, limit=PROBE_ROWS) for split in ("train", "test")}
    split_rows = {split: table.filter(pc.is_valid(table[label])) for split, table in split_rows.items()}
    if any(len(table) == 0 for table in split_rows.values()):
        return None, "the input has no labelled train or test rows"
    written = read_attempt_parts(commit, ["row_id", *embedding_columns(latent_dim)[1:latent_dim + 1]])
    position = {row_id: i for i, row_id in enumerate(written["row_id"].to_pylist())}
    mu = np.column_stack([written[f"mu_{i}"].to_numpy() for i in range(latent_dim)])
    pairs, raw, labels = [], [], []
    for split in ("train", "test"):
        table = split_rows[split]
        index = [position.get(row_id) for row_id in table["row_id"].to_pylist()]
        if None in index:
            return None, f"the {split} rows are not in this output (embed every split to get the probe)"
        pairs.append(mu[index])
        # the features alone: a conditional model's input also holds the label itself
        raw.append(features(model.training_manifest, table, conditions=False).reshape(len(table), -1))
        labels.append(np.asarray(table[label].to_pylist()))
    representations = with_pca((pairs[0], pairs[1]), (raw[0], raw[1]))
    return linear_probe(representations, labels[0], labels[1]), None
