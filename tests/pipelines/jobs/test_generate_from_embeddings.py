"""`vaepipe generate --from-embeddings`: what `vaepipe embed` wrote turned back into data by the same model, in
this process (no Ray) — one row per embedded row with its row_id, each row its own reconstruction, the same
rows however the work is batched, and embeddings of another model refused by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def embedded_digits(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert main(["prepare", "digits", "--storage", str(store)]) == 0
    for epochs in (15, 1):  # digits@1 and digits@2: two models with latent spaces of their own
        assert main(["train", str(ROOT / "configs" / "digits.yaml"), "--storage", str(store), "--engine", "local",
                     "--set", f"train.epochs={epochs}"]) == 0
    assert main(["embed", "--model", "digits@1", "--input", "digits", "--split", "test", "--storage", str(store),
                 "--engine", "local"]) == 0
    return store


def rows_of(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(part) for part in sorted(folder.glob("*.parquet"))]).sort_by("row_id")


def generate(store: Path, *extra: str) -> int:
    return main(["generate", "--model", "digits@1", "--from-embeddings", "embeddings/digits-v1/digits",
                 "--storage", str(store), "--engine", "local", *extra])


def test_every_embedded_row_decodes_to_its_own_reconstruction_with_its_row_id(embedded_digits):
    import torch

    from pipelines.datasets.features import image_features
    from pipelines.datasets.manifest import DatasetManifest
    from pipelines.datasets.sources import load_builtin
    from pipelines.storage.registry import load_registered
    from vae_core import decode_latents, encode

    assert generate(embedded_digits) == 0
    embedded = rows_of(embedded_digits / "embeddings" / "digits-v1" / "digits")
    decoded = rows_of(embedded_digits / "samples" / "digits-v1" / "decoded-digits-r0-seed0")
    assert decoded["row_id"].to_pylist() == embedded["row_id"].to_pylist()
    pixels = np.stack(decoded["image"].to_numpy(zero_copy_only=False)).reshape(len(decoded), -1)
    assert pixels.dtype == np.uint8  # the source's pixel type
    images = pixels.astype(float)
    source = load_builtin("digits")
    originals_uint8 = dict(zip(source.row_ids.tolist(), source.images))
    originals = {row_id: image.reshape(-1).astype(float) for row_id, image in originals_uint8.items()}
    real = np.stack([originals[row_id] for row_id in decoded["row_id"].to_pylist()])
    # each decoded row is its own row's reconstruction by the model: encode the original, decode the mean
    vae, card = load_registered(str(embedded_digits), "digits@1")
    manifest = DatasetManifest.model_validate(card["dataset"]["manifest"])
    with torch.no_grad():
        x = torch.from_numpy(image_features(manifest, np.stack([originals_uint8[r] for r in decoded["row_id"].to_pylist()])))
        reconstructed = decode_latents(vae, encode(vae, x).mu, None, mode="mean")
    expected = torch.round(reconstructed.clamp(0, 1) * 255).numpy().reshape(len(decoded), -1)
    assert np.abs(expected - images).max() <= 1
    # and not just any digit: among the 195 originals the closest is its own far more often than chance (1/195)
    distances = ((images[:, None, :] - real[None, :, :]) ** 2).sum(axis=2)
    assert float((distances.argmin(axis=1) == np.arange(len(real))).mean()) > 0.15


def test_a_neighbourhood_is_the_same_rows_however_the_work_is_batched(embedded_digits):
    assert generate(embedded_digits, "--radius", "0.5", "--seed", "3", "--run", "small-batches",
                    "--batch-size", "7") == 0
    assert generate(embedded_digits, "--radius", "0.5", "--seed", "3", "--run", "one-batch") == 0
    samples = embedded_digits / "samples" / "digits-v1"
    small, one = rows_of(samples / "small-batches"), rows_of(samples / "one-batch")
    assert small.equals(one)
    assert generate(embedded_digits, "--seed", "3", "--run", "no-radius") == 0
    assert not rows_of(samples / "no-radius")["image"].equals(one["image"])  # the radius moved the rows


def test_embeddings_of_another_model_are_refused_naming_both(embedded_digits, capsys):
    assert main(["generate", "--model", "digits@2", "--from-embeddings", "embeddings/digits-v1/digits",
                 "--storage", str(embedded_digits), "--engine", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "digits@1" in err[-1] and "digits@2" in err[-1]
    assert not (embedded_digits / "samples" / "digits-v2").exists()


def test_num_samples_and_from_embeddings_together_are_refused(embedded_digits, capsys):
    assert generate(embedded_digits, "--num-samples", "5") == 2
    assert "num_samples" in capsys.readouterr().err
