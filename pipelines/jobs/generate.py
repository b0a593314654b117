"""`vaepipe generate`: new rows from a registered model, in the dataset's original schema, written to
samples/<model>/<run>/ as Parquet parts (+ `samples.png`, a grid, for images), `_summary.json` and `_SUCCESS`.

Where z comes from (`sampler`): the N(0, I) prior, or a Gaussian mixture fitted to the posterior means of
(up to `MIXTURE_ROWS`) training rows — the aggregate posterior, pythae's GMM sampler. A VAE's aggregate
posterior does not fill the prior, so prior draws land where the decoder saw no data; on five real tables
the mixture raised the mean SDMetrics overall score from 0.916 to 0.920 and TSTR from 0.647 to 0.688
(`benchmarks/synthesis.py --ablation`), so tables default to it. Images keep the prior (not measured).

Determinism: the N samples are cut into fixed blocks of `block_rows`; block b
draws from a generator seeded with (seed, b). Which actor runs a block, and in
which order, changes nothing, so the same seed gives the same rows at any scale
(as a set; with `with_ids` each row also carries its number, `sample_id`).

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
from typing import Callable, Literal, Optional

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
MIXTURE_ROWS = 20_000   # training rows whose posterior means the mixture sampler is fitted to
QUALITY_ROWS = 2_000    # rows of each side the summary's quality and privacy figures compare
MIXTURE_FILE = "latent_mixture.json"


class GenerateJobConfig(BatchJobConfig):
    output: str = Field("samples", description="output root: a folder under the storage root or a full URI")
    num_samples: int = Field(ge=1, description="rows to generate")
    temperature: float = Field(1.0, ge=0, description="z ~ N(0, temperature² I); < 1 gives more typical rows")
    seed: int = Field(0, ge=0)
    run: Optional[str] = Field(None, description="output folder name (default: from the sampler, seed, N and "
                                                 "temperature, so the same request lands in the same place)")
    block_rows: int = Field(8192, ge=1, description="rows per seeded block: the unit of work of one actor call")
    sampler: Literal["auto", "prior", "gmm"] = Field(
        "auto", description="where z comes from: prior (N(0, temperature² I)), gmm (a Gaussian mixture fitted to "
                            "the training rows' posterior means), auto (gmm for tables, prior for images)")
    with_ids: bool = Field(False, description="add a sample_id column numbering the rows 0..N-1 (tables otherwise "
                                              "have exactly the source's columns)")

    def run_name(self, sampler: str) -> str:
        default = f"{sampler}-seed{self.seed}-n{self.num_samples}-t{self.temperature:g}"
        return validate_name(self.run or default, "run")


def sample_blocks(num_samples: int, block_rows: int) -> list[dict]:
    """(block, start, rows) covering 0..num_samples-1 in fixed-size blocks."""
    return [{"block": b, "start": start, "rows": min(block_rows, num_samples - start)}
            for b, start in enumerate(range(0, num_samples, block_rows))]


def block_seed(seed: int, block: int) -> int:
    return int(np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class GenerateActor(ModelActor):
    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, seed: int, temperature: float,
                 loaded: Optional[tuple] = None, mixture=None, with_ids: bool = False):
        super().__init__(root, reference, use_gpu, loaded)
        self.seed = seed
        self.temperature = temperature
        self.mixture = mixture  # a fitted sklearn GaussianMixture over z, or None: the prior
        self.with_ids = with_ids

    def __call__(self, batch: dict) -> dict:
        columns: dict[str, list] = {}
        for block, start, rows in zip(batch["block"], batch["start"], batch["rows"]):
            for name, values in self.generate(int(block), int(start), int(rows)).items():
                columns.setdefault(name, []).append(values)
        return {name: np.concatenate(parts) for name, parts in columns.items()}

    def generate(self, block: int, start: int, rows: int) -> dict:
        import torch

        from pipelines.datasets.features import features_to_table
        from pipelines.training.tabular_synthesis import sample_mixture
        from vae_core import decode_latents, sample_prior

        generator = torch.Generator(device=self.device).manual_seed(block_seed(self.seed, block))
        ids = {SAMPLE_ID: np.arange(start, start + rows, dtype=np.int64)} if self.with_ids else {}
        mode = "mean" if self.manifest.kind == "image" else "sample"
        if self.mixture is None:
            x = sample_prior(self.model, rows, self.temperature, generator, mode=mode)
        else:
            z = sample_mixture(self.mixture, rows, block_seed(self.seed, block), self.temperature)
            x = decode_latents(self.model, torch.from_numpy(z).float(), generator, mode=mode)
        if self.manifest.kind == "image":
            pixels = torch.round(x.float().clamp(0, 1) * self.manifest.image.max_value).to(torch.uint8)
            return {**ids, self.manifest.image.column: pixels.cpu().numpy()}
        table = features_to_table(self.manifest, x.float().cpu().numpy())
        return {**ids, **{name: table[name].to_numpy() for name in table.columns}}


def training_dataset(model) -> Optional[str]:
    """The URI of the prepared dataset the model was trained on, or None when its rows were never stored (a
    model fitted in a notebook and saved)."""
    from pipelines.storage.objects import StorageError, resolve

    uri = model.card["dataset"]["uri"]
    try:
        resolve(uri)
    except StorageError:
        return None
    return uri


def sampler_of(config: GenerateJobConfig, model, dataset: Optional[str]) -> str:
    """The sampler a request gets: auto is gmm for tables whose training rows are on storage (`dataset`, from
    `training_dataset`), else prior."""
    kind, stored = model.training_manifest.kind, dataset is not None
    if config.sampler == "gmm" and not stored:
        raise BatchJobError(f"--sampler gmm fits a mixture to the training rows' latents, but {model.reference} was "
                            f"trained on rows kept nowhere on storage ({model.card['dataset']['uri']}); use --sampler "
                            "prior")
    if config.sampler != "auto":
        return config.sampler
    return "gmm" if kind == "tabular" and stored else "prior"


def fit_mixture(root: str, model, seed: int):
    """The mixture sampler: a Gaussian mixture fitted to the posterior means of up to MIXTURE_ROWS training
    rows of the model's dataset, read in this process."""
    import torch

    from pipelines.datasets.local_rows import features, read_rows
    from pipelines.storage.registry import load_registered
    from pipelines.training.tabular_synthesis import fit_latent_mixture

    vae, _ = load_registered(root, model.reference)
    manifest = model.training_manifest
    rows = read_rows(model.card["dataset"]["uri"], manifest, "train", limit=MIXTURE_ROWS)
    return fit_latent_mixture(vae, torch.from_numpy(features(manifest, rows)), seed=seed)


def mixture_json(mixture) -> bytes:
    import json

    return json.dumps({"weights": mixture.weights_.tolist(), "means": mixture.means_.tolist(),
                       "covariances": mixture.covariances_.tolist()}).encode()


def synthesis_quality(model, synthetic) -> dict:
    """How close the generated rows are to real rows the model did not train on (the dataset's test split, or
    val when test is empty): SDMetrics' column shapes, column-pair trends and overall, and DCR — the share of
    generated rows closer to a training row than to a holdout row (about 0.5: no sign of copying)."""
    from pipelines.datasets.local_rows import read_rows
    from pipelines.metrics.synthesis_quality import dcr_closer_to_training_share, quality_scores

    manifest = model.training_manifest
    columns = manifest.feature_columns
    categorical = [column.name for column in manifest.categorical]
    dataset = model.card["dataset"]["uri"]
    holdout_split = "test" if manifest.split_rows.get("test") else "val"
    holdout = read_rows(dataset, manifest, holdout_split, limit=QUALITY_ROWS).to_pandas()[columns]
    train = read_rows(dataset, manifest, "train", limit=QUALITY_ROWS).to_pandas()[columns]
    if holdout.empty:
        return {"quality": None, "quality_note": "the dataset has no test or val rows to compare with"}
    scores = quality_scores(holdout, synthetic[columns], categorical)
    return {"quality": {**{name: round(value, 4) for name, value in scores.items()},
                        "dcr_closer_to_training": round(dcr_closer_to_training_share(
                            synthetic[columns], train, holdout, categorical), 4),
                        "compared_with": f"{holdout_split} split, {len(holdout)} rows",
                        "synthetic_rows": len(synthetic)}}


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


def samples_prefix(config: GenerateJobConfig) -> str:
    """Where the request's samples are (or will be) committed."""
    root, model = open_model(config)
    sampler = sampler_of(config, model, training_dataset(model))
    return samples_uri(output_root(root, config.output), model.slug, config.run_name(sampler))


def copy_samples_out(prefix: str, directory: str, file_format: Literal["parquet", "csv"] = "parquet") -> str:
    """The committed rows at `prefix` as one local file DIR/<run>.<format> (written to a temporary name, then
    renamed, so a reader never sees half a file); its path. Images only as Parquet (a cell holds an array)."""
    import os

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from pipelines.batch.parts import read_committed_parts

    table = read_committed_parts(prefix)
    if file_format == "csv" and any(pa.types.is_fixed_size_list(f.type) or pa.types.is_list(f.type)
                                    or isinstance(f.type, pa.ExtensionType) for f in table.schema):
        raise BatchJobError(f"{prefix} holds images, which a CSV cell cannot: use --local-format parquet")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{prefix.rstrip('/').rsplit('/', 1)[-1]}.{file_format}")
    partial = f"{path}.partial"
    if file_format == "csv":
        pcsv.write_csv(table, partial)
    else:
        pq.write_table(table, partial, compression="zstd")
    os.replace(partial, path)
    return path


def run_generation(config: GenerateJobConfig, progress: Callable[[str], None] = print) -> BatchOutcome:
    """Generate, write samples/<model>/<run>/ and commit it; `AlreadyComplete` if it exists."""
    from pipelines.batch.parts import read_attempt_parts
    from pipelines.storage.layout import SUMMARY_FILE
    from pipelines.storage.objects import write_json

    root, model = open_model(config)
    manifest = model.training_manifest
    if config.with_ids and SAMPLE_ID in manifest.feature_columns:
        raise BatchJobError(f"model {model.reference} has a feature column named {SAMPLE_ID!r}, the column "
                            "--with-ids numbers rows with; generate without --with-ids")
    blocks = sample_blocks(config.num_samples, config.block_rows)
    dataset = training_dataset(model)
    sampler = sampler_of(config, model, dataset)
    if config.sampler == "auto" and sampler == "prior" and manifest.kind == "tabular":
        progress(f"sampler prior: {model.reference}'s training rows are not on storage (the mixture sampler needs them)")

    def ray_blocks(_actors: int):
        import ray.data

        # one Ray block per sample block, so every actor gets blocks to work on
        return ray.data.from_items(blocks, override_num_blocks=len(blocks))

    def local_blocks(_rows: int):
        return ({key: np.asarray([value]) for key, value in block.items()} for block in blocks)

    mixture = None
    if sampler == "gmm":
        progress(f"fitting the latent mixture to up to {MIXTURE_ROWS:,} training rows of "
                 f"{model.card['dataset']['uri']}")
        mixture = fit_mixture(root, model, config.seed)

    def finish(commit) -> dict:
        summary: dict = {"sampler": sampler, "temperature": config.temperature, "seed": config.seed}
        if mixture is not None:
            commit.write(MIXTURE_FILE, mixture_json(mixture))
            summary["mixture_components"] = len(mixture.weights_)
        if manifest.kind == "image":
            first = read_attempt_parts(commit, limit=None if config.with_ids else GRID_SAMPLES)
            if config.with_ids:
                first = first.sort_by(SAMPLE_ID).slice(0, GRID_SAMPLES)
            images = np.stack(first[manifest.image.column].to_numpy(zero_copy_only=False))
            commit.write(GRID_FILE, image_grid_png(images.reshape(-1, *manifest.image.shape)))
        elif dataset is None:
            summary.update(quality=None, quality_note="the model's training dataset is not on storage")
        else:
            synthetic = read_attempt_parts(commit, manifest.feature_columns, limit=QUALITY_ROWS).to_pandas()
            summary.update(synthesis_quality(model, synthetic))
            quality = summary["quality"]
            if quality:
                progress(f"quality against the {quality['compared_with']}: overall {quality['overall']:.3f} "
                         f"(column shapes {quality['column_shapes']:.3f}, pair trends "
                         f"{quality['column_pair_trends']:.3f}); {quality['dcr_closer_to_training']:.0%} of "
                         "rows closer to a training row than to a holdout row")
        write_json(f"{commit.prefix_uri}/{SUMMARY_FILE}", summary)
        return {"summary": summary}

    return run_batch("generate", config, model, BatchPlan(
        prefix=samples_uri(output_root(root, config.output), model.slug, config.run_name(sampler)),
        rows=config.num_samples,
        description=f"generating {config.num_samples} {manifest.kind} rows from {model.reference} "
                    f"(sampler {sampler}, seed {config.seed}, temperature {config.temperature:g}) in "
                    f"{len(blocks)} block(s)",
        work=ModelWork(GenerateActor, ray_blocks, local_blocks,
                       dict(seed=config.seed, temperature=config.temperature, mixture=mixture,
                            with_ids=config.with_ids), batch_size=1),
        finish=finish,
        metadata={"rows_in": config.num_samples, "seed": config.seed, "temperature": config.temperature,
                  "sampler": sampler, "with_ids": config.with_ids, "block_rows": config.block_rows,
                  "training_fingerprint": manifest.fingerprint}), progress)
