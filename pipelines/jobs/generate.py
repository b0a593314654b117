"""`vaepipe generate`: new rows from a registered model's prior, in the dataset's original schema,
written to samples/<model>/<run>/ as Parquet parts (+ `samples.png`, a grid, for images) and `_SUCCESS`.

Determinism: the N samples are cut into fixed blocks of `block_rows`; block b
draws from a generator seeded with (seed, b). Which actor runs a block, and in
which order, changes nothing, so the same seed gives the same rows at any scale.

Tables are decoded with `mode="sample"`: numeric columns draw from the decoder's
Gaussian and categorical columns draw a level from the decoder's probabilities.
Taking the mean / argmax instead shrinks every numeric column's spread to the
decoder's mean and never emits a level that is a minority at every z (rare
levels vanish), so the generated table would not match the data's marginals.
Images are the decoder's mean (pixel probabilities → uint8): Bernoulli draws
would add salt-and-pepper noise that is not in the data.
"""
from __future__ import annotations

import io
from typing import Callable, Optional

import numpy as np
from pydantic import Field

from pipelines.batch.config import BatchJobConfig
from pipelines.batch.model_actors import ModelActor, ModelWork
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.errors import BatchJobError
from pipelines.naming import validate_name
from pipelines.storage.layout import GRID_FILE, output_root, samples_uri

SAMPLE_ID = "sample_id"
GRID_SAMPLES = 64


class GenerateJobConfig(BatchJobConfig):
    output: str = Field("samples", description="output root: a folder under the storage root or a full URI")
    num_samples: int = Field(ge=1, description="rows to generate")
    temperature: float = Field(1.0, ge=0, description="z ~ N(0, temperature² I); < 1 gives more typical rows")
    seed: int = Field(0, ge=0)
    run: Optional[str] = Field(None, description="output folder name (default: from seed, N and temperature, "
                                                 "so the same request lands in the same place)")
    block_rows: int = Field(8192, ge=1, description="rows per seeded block: the unit of work of one actor call")

    def run_name(self) -> str:
        return validate_name(self.run or f"seed{self.seed}-n{self.num_samples}-t{self.temperature:g}", "run")


def sample_blocks(num_samples: int, block_rows: int) -> list[dict]:
    """(block, start, rows) covering 0..num_samples-1 in fixed-size blocks."""
    return [{"block": b, "start": start, "rows": min(block_rows, num_samples - start)}
            for b, start in enumerate(range(0, num_samples, block_rows))]


def block_seed(seed: int, block: int) -> int:
    return int(np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class GenerateActor(ModelActor):
    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, seed: int, temperature: float,
                 loaded: Optional[tuple] = None):
        super().__init__(root, reference, use_gpu, loaded)
        self.seed = seed
        self.temperature = temperature

    def __call__(self, batch: dict) -> dict:
        columns: dict[str, list] = {}
        for block, start, rows in zip(batch["block"], batch["start"], batch["rows"]):
            for name, values in self.generate(int(block), int(start), int(rows)).items():
                columns.setdefault(name, []).append(values)
        return {name: np.concatenate(parts) for name, parts in columns.items()}

    def generate(self, block: int, start: int, rows: int) -> dict:
        import torch

        from pipelines.datasets.features import features_to_table
        from vae_core import sample_prior

        generator = torch.Generator(device=self.device).manual_seed(block_seed(self.seed, block))
        ids = {SAMPLE_ID: np.arange(start, start + rows, dtype=np.int64)}
        if self.manifest.kind == "image":
            x = sample_prior(self.model, rows, self.temperature, generator, mode="mean")
            pixels = torch.round(x.float().clamp(0, 1) * self.manifest.image.max_value).to(torch.uint8)
            return {**ids, self.manifest.image.column: pixels.cpu().numpy()}
        x = sample_prior(self.model, rows, self.temperature, generator, mode="sample")
        table = features_to_table(self.manifest, x.float().cpu().numpy())
        return {**ids, **{name: table[name].to_numpy() for name in table.columns}}


def image_grid_png(images: np.ndarray) -> bytes:
    """uint8 [N, C, H, W] tiled into a square-ish PNG grid (1 px gaps), with Pillow (no display needed)."""
    from PIL import Image

    n, c, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = image.transpose(1, 2, 0)
    scale = max(1, 256 // max(canvas.shape[:2]))  # 8x8 digits would be a postage stamp otherwise
    picture = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas).resize(
        (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def run_generation(config: GenerateJobConfig, progress: Callable[[str], None] = print) -> BatchOutcome:
    """Generate, write samples/<model>/<run>/ and commit it; `AlreadyComplete` if it exists."""
    from pipelines.batch.parts import read_attempt_parts

    root, model = open_model(config)
    manifest = model.training_manifest
    if SAMPLE_ID in manifest.feature_columns:
        raise BatchJobError(f"model {model.reference} has a feature column named {SAMPLE_ID!r}, the column generate "
                            "numbers its rows with; rename it in the source and train again")
    blocks = sample_blocks(config.num_samples, config.block_rows)

    def ray_blocks(_actors: int):
        import ray.data

        # one Ray block per sample block, so every actor gets blocks to work on
        return ray.data.from_items(blocks, override_num_blocks=len(blocks))

    def local_blocks(_rows: int):
        return ({key: np.asarray([value]) for key, value in block.items()} for block in blocks)

    def grid(commit) -> dict:
        if manifest.kind == "image":
            first = read_attempt_parts(commit).sort_by(SAMPLE_ID).slice(0, GRID_SAMPLES)
            images = np.stack(first[manifest.image.column].to_numpy(zero_copy_only=False))
            commit.write(GRID_FILE, image_grid_png(images.reshape(-1, *manifest.image.shape)))
        return {}

    return run_batch("generate", config, model, BatchPlan(
        prefix=samples_uri(output_root(root, config.output), model.slug, config.run_name()),
        rows=config.num_samples,
        description=f"generating {config.num_samples} {manifest.kind} rows from {model.reference} "
                    f"(seed {config.seed}, temperature {config.temperature:g}) in {len(blocks)} block(s)",
        work=ModelWork(GenerateActor, ray_blocks, local_blocks,
                       dict(seed=config.seed, temperature=config.temperature), batch_size=1),
        finish=grid,
        metadata={"rows_in": config.num_samples, "seed": config.seed, "temperature": config.temperature,
                  "block_rows": config.block_rows, "training_fingerprint": manifest.fingerprint}), progress)
