"""`vaepipe generate`: new rows from a registered model, in the dataset's original schema, written to
samples/<model>/<run>/ as Parquet parts (+ `samples.png`, a grid, for images), `_summary.json` and `_SUCCESS`.

Where z comes from (`sampler`): the N(0, I) prior, or a Gaussian mixture fitted to the posterior means of
(up to `MIXTURE_ROWS`) training rows — the aggregate posterior, pythae's GMM sampler. A VAE's aggregate
posterior does not fill the prior, so prior draws land where the decoder saw no data; on five real tables
the mixture raised the mean SDMetrics overall score from 0.916 to 0.920 and TSTR from 0.647 to 0.688
(`benchmarks/synthesis.py --ablation`), so tables default to it. Images keep the prior (not measured).
Third, `interpolate`: z on the segment between a training row's posterior mean and one of its 5 nearest
neighbours' of the same level (SMOTE in latent space, `vae_core.interpolate_latents`), decoded at that level —
rows that stay among the class's real rows, what `vaepipe augment` wants when a class has few of them.

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

A conditional model (`model.condition_on`) generates the levels it is asked for: `condition` (every row at
those levels), `per_class` (N rows of every level of its one condition) or `conditions_file` (a CSV with a column
per condition and an optional `num_rows` column, like SDV's `sample_from_conditions`). Row i takes the request
that covers position i, so the rows are the same at any scale; they carry each condition's level as a column
(a table's categorical condition is the column itself). Without a request row i takes level i mod K.

From embeddings (`from_embeddings`: an output of `vaepipe embed` made with the same model): every row's
latent mean μ is decoded to the decoder's mean — at `radius` 0 the row as the model reconstructs it, above 0
from z = μ + radius·ε, a point in the row's neighbourhood — and keeps the embedded row's `row_id`. ε of the
row at position i of the embeddings (their committed part order) comes from block i // block_rows seeded
with (seed, block), so the rows do not depend on how the work is split.
"""
from __future__ import annotations

import io
from typing import Callable, Literal, NamedTuple, Optional

import numpy as np
from pydantic import Field, model_validator

from pipelines.batch.config import BatchJobConfig
from pipelines.batch.model_actors import ModelActor, ModelWork
from pipelines.batch.run import BatchOutcome, BatchPlan, open_model, run_batch
from pipelines.errors import BatchJobError
from pipelines.naming import validate_name
from pipelines.storage.layout import GRID_FILE, output_root, samples_uri

SAMPLE_ID = "sample_id"
REQUESTS = ("condition", "per_class", "conditions_file", "class_counts")  # the ways to ask a conditional model
GRID_SAMPLES = 64
MIXTURE_ROWS = 20_000   # training rows whose posterior means the mixture sampler is fitted to
QUALITY_ROWS = 2_000    # rows of each side the summary's quality and privacy figures compare
MIXTURE_FILE = "latent_mixture.json"
Sampler = Literal["auto", "prior", "gmm", "interpolate"]


class GenerateJobConfig(BatchJobConfig):
    output: str = Field("samples", description="output root: a folder under the storage root or a full URI")
    num_samples: Optional[int] = Field(None, ge=1, description="rows to generate (not with from_embeddings: one "
                                                               "row per embedded row)")
    from_embeddings: Optional[str] = Field(
        None, description="decode the latent means of an output of `vaepipe embed` (a folder under the storage "
                          "root, e.g. embeddings/digits-v1/digits, or a full URI) made with the same model")
    radius: float = Field(0.0, ge=0, description="from_embeddings: decode z = μ + radius·ε, ε ~ N(0, I) (0: the "
                                                 "decoder's mean of μ itself)")
    temperature: float = Field(1.0, ge=0, description="z ~ N(0, temperature² I); < 1 gives more typical rows")
    seed: int = Field(0, ge=0)
    run: Optional[str] = Field(None, description="output folder name (default: from the sampler, seed, N and "
                                                 "temperature, so the same request lands in the same place)")
    block_rows: int = Field(8192, ge=1, description="rows per seeded block: the unit of work of one actor call")
    sampler: Sampler = Field(
        "auto", description="where z comes from: prior (N(0, temperature² I)), gmm (a Gaussian mixture fitted to "
                            "the training rows' posterior means), interpolate (between a training row's posterior "
                            "mean and one of its 5 nearest same-level neighbours': SMOTE in latent space), auto "
                            "(gmm for tables, prior for images)")
    with_ids: bool = Field(False, description="add a sample_id column numbering the rows 0..N-1 (tables otherwise "
                                              "have exactly the source's columns)")
    condition: Optional[dict[str, str]] = Field(
        None, description="a conditional model: every row at these levels, e.g. {label: '3'}")
    per_class: Optional[int] = Field(
        None, ge=1, description="a conditional model with one condition: this many rows of every level (instead "
                                "of num_samples)")
    conditions_file: Optional[str] = Field(
        None, description="a conditional model: a local CSV with one column per condition and an optional "
                          "num_rows column (default 1): the rows to generate, request by request")
    class_counts: Optional[dict[str, int]] = Field(
        None, description="a conditional model with one condition: rows per level, e.g. {'3': 40, '8': 10} "
                          "(what `vaepipe augment` asks for; levels with 0 rows may be left out)")

    @model_validator(mode="after")
    def _rows_from_one_place(self):
        requests = [name for name in REQUESTS if getattr(self, name) is not None]
        if len(requests) > 1:
            raise ValueError(f"give one of {', '.join(REQUESTS)}, not {' and '.join(requests)}")
        if self.class_counts is not None and (not self.class_counts or min(self.class_counts.values()) < 0
                                              or sum(self.class_counts.values()) == 0):
            raise ValueError("class_counts must give each level a row count >= 0, and at least one row in all")
        if requests and self.from_embeddings is not None:
            raise ValueError(f"{requests[0]} chooses the levels of sampled rows; from_embeddings decodes embedded rows")
        if requests and requests[0] != "condition":
            if self.num_samples is not None:
                raise ValueError(f"{requests[0]} sets the number of rows: leave num_samples out")
            return self
        if (self.num_samples is None) == (self.from_embeddings is None):
            raise ValueError("give num_samples (rows drawn from the sampler) or from_embeddings (one row per embedded "
                             "row), not both" if self.num_samples else "num_samples is required (or from_embeddings)")
        if self.sampler == "interpolate" and self.temperature != 1.0:
            raise ValueError("temperature scales z drawn from the prior or the mixture; interpolate places z between "
                             "two training rows' latents: leave temperature out")
        if self.radius and self.from_embeddings is None:
            raise ValueError("radius applies to from_embeddings: a neighbourhood of each embedded row")
        if self.from_embeddings is not None and (self.with_ids or self.sampler not in ("auto", "prior")
                                                 or self.temperature != 1.0):
            raise ValueError("from_embeddings decodes the embedded rows' latents (each keeps its row_id): "
                             "sampler, temperature and with_ids are for sampled rows; leave them out")
        return self

    def run_name(self, sampler: str) -> str:
        if self.from_embeddings is not None:
            source = self.from_embeddings.rstrip("/").rsplit("/", 1)[-1]
            default = f"decoded-{source}-r{self.radius:g}-seed{self.seed}"
        elif self.per_class is not None:
            default = f"{sampler}-seed{self.seed}-perclass{self.per_class}-t{self.temperature:g}"
        elif self.conditions_file is not None or self.condition is not None or self.class_counts is not None:
            import hashlib

            asked = self.conditions_file or sorted((self.condition or self.class_counts).items())
            default = (f"{sampler}-seed{self.seed}-n{self.num_samples or 'file'}-t{self.temperature:g}-"
                       f"c{hashlib.sha256(repr(asked).encode()).hexdigest()[:8]}")
        else:
            default = f"{sampler}-seed{self.seed}-n{self.num_samples}-t{self.temperature:g}"
        return validate_name(self.run or default, "run")


class ConditionRequests:
    """The levels each generated row is asked for: request r's one-hots cover rows ends[r-1] .. ends[r]-1."""

    def __init__(self, one_hots: np.ndarray, counts: list[int]):
        self.one_hots, self.ends = one_hots.astype(np.float32), np.cumsum(counts)

    @property
    def rows(self) -> int:
        return int(self.ends[-1])

    def at(self, start: int, rows: int) -> np.ndarray:
        """One-hots [rows, C] of rows start .. start+rows-1."""
        return self.one_hots[np.searchsorted(self.ends, np.arange(start, start + rows), side="right")]


def condition_requests(config: GenerateJobConfig, manifest) -> Optional[ConditionRequests]:
    """The levels asked for (`condition`, `per_class`, `conditions_file`), or None: none asked (a conditional
    model then takes level i mod K at row i). Unknown conditions and levels are refused by name."""
    from pipelines.datasets.conditions import ConditionError, requested_conditions

    if config.condition is not None:
        return ConditionRequests(requested_conditions(manifest, [config.condition]), [config.num_samples])
    if config.per_class is not None or config.class_counts is not None:
        asked = "per_class" if config.per_class is not None else "class_counts"
        if len(manifest.condition or []) != 1:
            raise ConditionError(f"{asked} needs a model with exactly one condition; this one has "
                                 f"{[c.name for c in manifest.condition or []] or 'none'} (use condition or "
                                 "conditions_file)")
        (column,) = manifest.condition
        counts = ({level: config.per_class for level in column.levels} if config.per_class is not None
                  else {level: n for level, n in config.class_counts.items() if n > 0})
        requests = [{column.name: level} for level in counts]
        return ConditionRequests(requested_conditions(manifest, requests), list(counts.values()))
    if config.conditions_file is not None:
        requests, counts = read_conditions_file(config.conditions_file)
        return ConditionRequests(requested_conditions(manifest, requests), counts)
    return None


def read_conditions_file(path: str) -> tuple[list[dict], list[int]]:
    """(the levels of each request, its row count) from a CSV of condition columns and an optional num_rows."""
    import pandas as pd

    from pipelines.datasets.conditions import ConditionError

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise ConditionError(f"conditions file {path}: cannot read it as CSV ({type(error).__name__}: {error})") \
            from None
    if frame.empty:
        raise ConditionError(f"conditions file {path} has no rows")
    counts = [1] * len(frame)
    if "num_rows" in frame.columns:
        texts = list(frame.pop("num_rows"))
        for row, text in enumerate(texts):
            if not text.strip().isdigit() or int(text) < 1:
                raise ConditionError(f"conditions file {path}, row {row + 1}, column num_rows: {text!r} is not a "
                                     "positive whole number")
        counts = [int(text) for text in texts]
    return frame.to_dict("records"), counts


def sample_blocks(num_samples: int, block_rows: int) -> list[dict]:
    """(block, start, rows) covering 0..num_samples-1 in fixed-size blocks."""
    return [{"block": b, "start": start, "rows": min(block_rows, num_samples - start)}
            for b, start in enumerate(range(0, num_samples, block_rows))]


def block_seed(seed: int, block: int) -> int:
    return int(np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class GenerateActor(ModelActor):
    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, seed: int, temperature: float,
                 loaded: Optional[tuple] = None, mixture=None, with_ids: bool = False, requests=None,
                 anchors: Optional[LatentAnchors] = None):
        super().__init__(root, reference, use_gpu, loaded)
        self.seed = seed
        self.temperature = temperature
        self.mixture = mixture  # a fitted sklearn GaussianMixture over z, or None: the prior
        self.with_ids = with_ids
        self.requests = requests  # ConditionRequests of a conditional model, or None
        self.anchors = anchors  # the interpolate sampler's LatentAnchors, or None

    def __call__(self, batch: dict) -> dict:
        columns: dict[str, list] = {}
        for block, start, rows in zip(batch["block"], batch["start"], batch["rows"]):
            for name, values in self.generate(int(block), int(start), int(rows)).items():
                columns.setdefault(name, []).append(values)
        return {name: np.concatenate(parts) for name, parts in columns.items()}

    def generate(self, block: int, start: int, rows: int) -> dict:
        import torch

        from pipelines.training.tabular_synthesis import sample_mixture
        from vae_core import decode_latents, interpolate_latents, sample_prior

        generator = torch.Generator(device=self.device).manual_seed(block_seed(self.seed, block))
        ids = {SAMPLE_ID: np.arange(start, start + rows, dtype=np.int64)} if self.with_ids else {}
        mode = "mean" if self.manifest.kind == "image" else "sample"
        condition = None
        if self.manifest.condition:
            condition = (self.requests.at(start, rows) if self.requests is not None
                         else self.model.default_condition(start + rows)[start:].numpy())
        given = None if condition is None else torch.from_numpy(condition)
        if self.anchors is not None:
            z = interpolate_latents(
                torch.from_numpy(self.anchors.mu), rows, torch.Generator().manual_seed(block_seed(self.seed, block)),
                None if self.anchors.conditions is None else torch.from_numpy(self.anchors.conditions), given)
            x = decode_latents(self.model, z, generator, mode=mode, condition=given)
        elif self.mixture is None:
            x = sample_prior(self.model, rows, self.temperature, generator, mode=mode, condition=given)
        else:
            z = sample_mixture(self.mixture, rows, block_seed(self.seed, block), self.temperature)
            x = decode_latents(self.model, torch.from_numpy(z).float(), generator, mode=mode, condition=given)
        return {**ids, **decoded_rows(self.manifest, x, condition)}


def decoded_rows(manifest, x, condition: Optional[np.ndarray] = None) -> dict:
    """Decoded model inputs [n, ...] as output columns: uint8 pixels, or the source's table columns — and, for a
    conditional model, each row's condition (one-hots [n, C]) as its column: a label column added, a table's
    categorical condition written with the level the row was generated for."""
    import torch

    from pipelines.datasets.conditions import condition_values
    from pipelines.datasets.features import features_to_table

    given = condition_values(manifest, condition) if condition is not None else {}
    if manifest.kind == "image":
        pixels = torch.round(x.float().clamp(0, 1) * manifest.image.max_value).to(torch.uint8)
        return {manifest.image.column: pixels.cpu().numpy(), **given}
    table = features_to_table(manifest, x.float().cpu().numpy())
    columns = {name: table[name].to_numpy() for name in table.columns}
    return {**columns, **given}


class DecodeActor(ModelActor):
    """Embedded rows (position, row_id, mu_*) → decoded rows with their row_id (`from_embeddings`)."""

    def __init__(self, root: Optional[str], reference: Optional[str], use_gpu: bool, seed: int, radius: float,
                 block_rows: int, loaded: Optional[tuple] = None):
        super().__init__(root, reference, use_gpu, loaded)
        self.seed, self.radius, self.block_rows = seed, radius, block_rows

    def __call__(self, batch: dict) -> dict:
        import torch

        from vae_core import decode_latents

        latent = self.model.spec.latent_dim
        z = np.stack([np.asarray(batch[f"mu_{i}"], dtype=np.float32) for i in range(latent)], axis=1)
        if self.radius > 0:
            z = z + self.radius * self.noise(np.asarray(batch[POSITION], dtype=np.int64), latent)
        # the decoder's mean: no draw whose seed would depend on how the rows were batched
        x = decode_latents(self.model, torch.from_numpy(z).to(self.device), None, mode="mean")
        return {"row_id": batch["row_id"], **decoded_rows(self.manifest, x)}

    def noise(self, positions: np.ndarray, latent: int) -> np.ndarray:
        """ε of each position: row i % block_rows of block i // block_rows's seeded draws."""
        blocks = positions // self.block_rows
        eps = np.empty((len(positions), latent), dtype=np.float32)
        for block in np.unique(blocks):
            draws = np.random.default_rng(block_seed(self.seed, int(block))).standard_normal((self.block_rows, latent))
            here = blocks == block
            eps[here] = draws[positions[here] % self.block_rows]
        return eps


POSITION = "position"  # an embedded row's place in the embeddings' committed part order (the decode input only)


def embedded_rows(root: str, model, source: str):
    """The latent means and row ids of an embeddings output made with `model`, with each row's position."""
    import pyarrow as pa

    from pipelines.batch.parts import read_committed_parts
    from pipelines.storage.commit import read_success

    prefix = output_root(root, source)
    committed = read_success(prefix)
    made_with = committed.get("model")
    if made_with != model.reference:
        raise BatchJobError(f"embeddings at {prefix} were made with {made_with or 'an unknown model'}, not "
                            f"{model.reference}: latents of another model decode to nothing meaningful (run "
                            f"`vaepipe embed --model {model.reference} ...` first)")
    latent = int(model.card["spec"]["latent_dim"])
    table = read_committed_parts(prefix, ["row_id", *(f"mu_{i}" for i in range(latent))])
    return prefix, table.append_column(POSITION, pa.array(np.arange(len(table), dtype=np.int64)))


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
    if config.from_embeddings is not None:
        return "embeddings"
    if config.sampler in ("gmm", "interpolate") and not stored:
        raise BatchJobError(f"--sampler {config.sampler} needs the training rows' latents, but {model.reference} was "
                            f"trained on rows kept nowhere on storage ({model.card['dataset']['uri']}); use --sampler "
                            "prior")
    if config.sampler != "auto":
        return config.sampler
    return "gmm" if kind == "tabular" and stored else "prior"


def training_features(root: str, model):
    """The registered model and the model inputs of up to MIXTURE_ROWS rows of its training split, read in this
    process: what the gmm and interpolate samplers are fitted on."""
    from pipelines.datasets.local_rows import features, read_rows
    from pipelines.storage.registry import load_registered

    vae, _ = load_registered(root, model.reference)
    manifest = model.training_manifest
    rows = read_rows(model.card["dataset"]["uri"], manifest, "train", limit=MIXTURE_ROWS)
    return vae, features(manifest, rows)


def fit_mixture(root: str, model, seed: int):
    """The mixture sampler: a Gaussian mixture fitted to the posterior means of the training rows."""
    import torch

    from pipelines.training.tabular_synthesis import fit_latent_mixture

    vae, x = training_features(root, model)
    return fit_latent_mixture(vae, torch.from_numpy(x), seed=seed)


class LatentAnchors(NamedTuple):
    """What the interpolate sampler draws between: training rows' posterior means [N, latent_dim] and, for a
    conditional model, their condition one-hots [N, C] (zeros where a row's level is unknown)."""
    mu: np.ndarray
    conditions: Optional[np.ndarray]


def fit_anchors(root: str, model, requests: Optional[ConditionRequests], rows_asked: int) -> LatentAnchors:
    """The interpolate sampler's anchors: the posterior means of the training rows (`training_features`). Every
    level asked for (by `requests`, or without any, each level in turn over `rows_asked` rows) must have an
    anchor, or the request is refused naming the level."""
    import torch

    from pipelines.datasets.conditions import condition_values
    from vae_core import encode

    vae, x = training_features(root, model)
    manifest = model.training_manifest
    conditions = x[:, x.shape[1] - manifest.condition_dim:] if manifest.condition else None
    if manifest.condition:
        asked = (requests.one_hots if requests is not None
                 else vae.default_condition(min(rows_asked, 100_000)).numpy())  # levels cycle: a prefix has them all
        for request in np.unique(asked, axis=0):
            if not ((conditions @ request) == request.sum()).any():
                values = condition_values(manifest, request[None])
                ends = np.cumsum([len(column.levels) for column in manifest.condition])
                asked = ", ".join(f"{column.name}={values[column.name][0]}"  # the columns the request sets
                                  for column, end in zip(manifest.condition, ends)
                                  if request[end - len(column.levels):end].any())
                raise BatchJobError(f"--sampler interpolate draws between training rows of the levels asked for, but "
                                    f"no training row of {model.reference} (of the {len(x):,} read) has {asked}; use "
                                    "--sampler prior or gmm")
    mu = encode(vae, torch.from_numpy(x)).mu.float().numpy()
    return LatentAnchors(mu, None if conditions is None else conditions.astype(np.float32))


def mixture_json(mixture) -> bytes:
    import json

    return json.dumps({"weights": mixture.weights_.tolist(), "means": mixture.means_.tolist(),
                       "covariances": mixture.covariances_.tolist()}).encode()


def synthesis_quality(model, synthetic) -> dict:
    """How close the generated rows are to real rows the model did not train on (the dataset's test split, or
    val when test is empty): SDMetrics' column shapes, column-pair trends and overall, and DCR — the share of
    generated rows closer to a training row than to a holdout row (about 0.5: no sign of copying)."""
    from pipelines.datasets.features import as_stored
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
    synthetic = as_stored(manifest, synthetic[columns])
    scores = quality_scores(holdout, synthetic, categorical)
    # NaN (no related pair) is stored as null: JSON has no NaN, and readers other than Python's refuse it
    return {"quality": {**{name: None if np.isnan(value) else round(value, 4) for name, value in scores.items()},
                        "dcr_closer_to_training": round(dcr_closer_to_training_share(
                            synthetic, train, holdout, categorical), 4),
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
    from pipelines.storage.commit import refuse_if_complete
    from pipelines.storage.layout import SUMMARY_FILE
    from pipelines.storage.objects import write_json

    root, model = open_model(config)
    manifest = model.training_manifest
    if config.with_ids and SAMPLE_ID in manifest.feature_columns:
        raise BatchJobError(f"model {model.reference} has a feature column named {SAMPLE_ID!r}, the column "
                            "--with-ids numbers rows with; generate without --with-ids")
    dataset = training_dataset(model)
    sampler = sampler_of(config, model, dataset)
    if config.sampler == "auto" and sampler == "prior" and manifest.kind == "tabular":
        progress(f"sampler prior: {model.reference}'s training rows are not on storage (the mixture sampler needs them)")
    # the levels asked for, and whether the output exists, are checked before anything slow (the mixture fit)
    requests = None if sampler == "embeddings" else condition_requests(config, manifest)
    prefix = samples_uri(output_root(root, config.output), model.slug, config.run_name(sampler))
    refuse_if_complete(prefix, config.overwrite)
    mixture = anchors = None
    if sampler == "interpolate":
        progress(f"encoding up to {MIXTURE_ROWS:,} training rows of {model.card['dataset']['uri']} to interpolate "
                 "between")
        anchors = fit_anchors(root, model, requests, config.num_samples or 0)
    if sampler == "gmm":
        progress(f"fitting the latent mixture to up to {MIXTURE_ROWS:,} training rows of "
                 f"{model.card['dataset']['uri']}")
        mixture = fit_mixture(root, model, config.seed)
    if sampler == "embeddings":
        if manifest.condition:
            raise BatchJobError(f"{model.reference} is a conditional model: decoding embeddings would need each "
                                "row's condition, which embeddings do not keep; generate with --condition instead")
        rows, work, description, extra = decode_plan(config, root, model)
    else:
        rows = requests.rows if requests is not None else config.num_samples
        work, description, extra = sample_plan(config, rows, mixture, sampler, requests, anchors)
        description = f"generating {rows} {manifest.kind} rows from {model.reference} {description}"

    def finish(commit) -> dict:
        summary: dict = {"sampler": sampler, "seed": config.seed, **extra}
        if mixture is not None:
            commit.write(MIXTURE_FILE, mixture_json(mixture))
            summary["mixture_components"] = len(mixture.weights_)
        if anchors is not None:
            summary["anchors"] = len(anchors.mu)
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
                from pipelines.metrics.synthesis_quality import pair_trends_text
                progress(f"quality against the {quality['compared_with']}: overall {quality['overall']:.3f} "
                         f"(column shapes {quality['column_shapes']:.3f}, pair trends "
                         f"{pair_trends_text(quality['column_pair_trends'])}); "
                         f"{quality['dcr_closer_to_training']:.0%} of "
                         "rows closer to a training row than to a holdout row")
        write_json(f"{commit.prefix_uri}/{SUMMARY_FILE}", summary)
        return {"summary": summary}

    return run_batch("generate", config, model, BatchPlan(
        prefix=prefix,
        rows=rows, description=description, work=work, finish=finish,
        metadata={"rows_in": rows, "seed": config.seed, "sampler": sampler, "block_rows": config.block_rows,
                  "training_fingerprint": manifest.fingerprint, **extra}), progress)


def sample_plan(config: GenerateJobConfig, rows: int, mixture, sampler: str,
                requests: Optional[ConditionRequests] = None,
                anchors: Optional[LatentAnchors] = None) -> tuple[ModelWork, str, dict]:
    """Rows drawn from the sampler: (the work, how it is described, `_SUCCESS` fields)."""
    blocks = sample_blocks(rows, config.block_rows)

    def ray_blocks(_actors: int):
        import ray.data

        # one Ray block per sample block, so every actor gets blocks to work on
        return ray.data.from_items(blocks, override_num_blocks=len(blocks))

    def local_blocks(_rows: int):
        return ({key: np.asarray([value]) for key, value in block.items()} for block in blocks)

    work = ModelWork(GenerateActor, ray_blocks, local_blocks, dict(
        seed=config.seed, temperature=config.temperature, mixture=mixture, with_ids=config.with_ids,
        requests=requests, anchors=anchors), batch_size=1)
    asked = {name: getattr(config, name) for name in REQUESTS if getattr(config, name) is not None}
    return (work, f"(sampler {sampler}, seed {config.seed}, temperature {config.temperature:g}"
                  + "".join(f", {name} {value}" for name, value in asked.items()) + f") in {len(blocks)} block(s)",
            {"temperature": config.temperature, "with_ids": config.with_ids, **asked})


def decode_plan(config: GenerateJobConfig, root: str, model) -> tuple[int, ModelWork, str, dict]:
    """Rows decoded from an embeddings output: (rows, the work, how it is described, `_SUCCESS` fields)."""
    prefix, table = embedded_rows(root, model, config.from_embeddings)
    if len(table) == 0:
        raise BatchJobError(f"embeddings at {prefix} hold no rows: nothing to decode")

    def ray_rows(actors: int):
        import ray.data

        return ray.data.from_arrow(table).repartition(max(actors, -(-len(table) // config.block_rows)))

    def local_rows(batch_rows: int):
        for start in range(0, len(table), batch_rows):
            part = table.slice(start, batch_rows)
            yield {name: part[name].to_numpy(zero_copy_only=False) for name in part.column_names}

    work = ModelWork(DecodeActor, ray_rows, local_rows,
                     dict(seed=config.seed, radius=config.radius, block_rows=config.block_rows))
    description = (f"decoding the latent means of {len(table)} rows of {prefix} with {model.reference}"
                   + (f" (z = μ + {config.radius:g}·ε, seed {config.seed})" if config.radius else ""))
    return len(table), work, description, {"from_embeddings": prefix, "radius": config.radius}
