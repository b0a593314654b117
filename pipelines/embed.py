"""`vaepipe embed`: the latent posterior q(z|x) of every row — mean and log-variance — written to
embeddings/<model>/<dataset>/ as Parquet parts + `_SUCCESS`.

Columns are `row_id`, `mu_0..mu_{d-1}`, `logvar_0..logvar_{d-1}` (plain float32
columns, so any Parquet reader — pandas, Spark, DuckDB — gets features without
Ray's tensor type), plus the label and any passthrough columns.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from pydantic import Field

from pipelines.batch_inference import ComputeConfig, ModelActor
from pipelines.config_loading import StrictModel
from pipelines.ray_runtime import RayConfig


class EmbedJobConfig(StrictModel):
    model: str = Field(description="registered model: NAME@VERSION, NAME@PROMOTED or NAME@latest")
    input: str = Field(description="prepared dataset to embed: a name under <storage>/datasets/ or a full URI")
    split: Optional[str] = Field(None, description="embed only this split (default: every row)")
    passthrough: list[str] = Field(default_factory=list,
                                   description="input columns copied to the output (the label always is)")
    storage: Optional[str] = Field(None, description="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    output: str = Field("embeddings", description="output root: a folder under the storage root or a full URI")
    overwrite: bool = False
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    ray: RayConfig = Field(default_factory=RayConfig)


@dataclass
class EmbedOutcome:
    output_uri: str
    model: str
    rows: int
    latent_dim: int
    seconds: float


class EmbedActor(ModelActor):
    def __init__(self, root: str, reference: str, use_gpu: bool, passthrough: tuple[str, ...]):
        super().__init__(root, reference, use_gpu)
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


def embedding_columns(model) -> list[str]:
    latent_dim = int(model.card["spec"]["latent_dim"])
    return ["row_id", *(f"{kind}_{i}" for kind in ("mu", "logvar") for i in range(latent_dim))]


def run_embedding(config: EmbedJobConfig, progress: Callable[[str], None] = print) -> EmbedOutcome:
    """Embed the input and commit embeddings/<model>/<dataset>/; `AlreadyComplete` if it exists."""
    from pipelines.batch_inference import map_with_model, open_row_job, output_root, write_parts
    from pipelines.outputs import OutputCommit
    from pipelines.ray_runtime import ray_session

    started = time.monotonic()
    job = open_row_job(config.storage, config.model, config.input, config.split, config.passthrough,
                       output_columns=embedding_columns)
    root, model, source, passthrough = job.root, job.model, job.source, job.passthrough
    prefix = f"{output_root(root, config.output)}/{model.slug}/{source.manifest.name}"
    latent_dim = int(model.card["spec"]["latent_dim"])
    progress(f"embedding {source.rows} rows of {source.uri} with {model.reference} (latent {latent_dim})")
    with OutputCommit(prefix, job="embed", overwrite=config.overwrite) as commit, ray_session(config.ray):
        write_parts(map_with_model(job.rows(config.compute.actors), EmbedActor, model, root,
                                   config.compute, passthrough=passthrough), commit)
        commit.commit(expected_rows=source.rows, metadata={
            "model": model.reference, "input": source.uri, "input_fingerprint": source.fingerprint,
            "split": config.split, "rows_in": source.rows, "rows_out": source.rows, "latent_dim": latent_dim,
            "seconds": round(time.monotonic() - started, 3)})
    return EmbedOutcome(prefix, model.reference, source.rows, latent_dim, time.monotonic() - started)
