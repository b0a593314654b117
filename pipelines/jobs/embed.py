"""`vaepipe embed`: the latent posterior q(z|x) of every row — mean and log-variance — written to
embeddings/<model>/<dataset>/ as Parquet parts + `_SUCCESS`.

Columns are `row_id`, `mu_0..mu_{d-1}`, `logvar_0..logvar_{d-1}` (plain float32
columns, so any Parquet reader — pandas, Spark, DuckDB — gets features without
Ray's tensor type), plus the label and any passthrough columns.
"""
from __future__ import annotations

from typing import Callable, Optional

from pydantic import Field

from pipelines.batch.config import RowJobConfig
from pipelines.batch.model_actors import ModelActor, ModelWork
from pipelines.batch.model_input import open_row_input
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.storage.layout import embeddings_uri, output_root


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
    return run_batch("embed", config, model, BatchPlan(
        prefix=embeddings_uri(output_root(root, config.output), model.slug, rows.source.manifest.name),
        rows=rows.source.rows,
        description=f"embedding {rows.source.rows} rows of {rows.source.uri} with {model.reference} "
                    f"(latent {latent_dim})",
        work=ModelWork(EmbedActor, rows.dataset, rows.batches, dict(passthrough=rows.passthrough)),
        metadata={**rows.metadata, "latent_dim": latent_dim}), progress)
