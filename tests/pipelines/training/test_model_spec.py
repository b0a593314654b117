"""One owner for the model's hyperparameters: `vaepipe train` with a config that leaves the model section
out builds exactly the model a notebook gets from `ModelSpec.for_images` / `for_table` — same spec, same
parameter count, and (same seed, same batch) the same first training step."""
from __future__ import annotations

import pytest
import torch

from pipelines.config import load_config
from pipelines.datasets.catalog import load_manifest
from pipelines.datasets.preparation import PrepareConfig
from pipelines.jobs.prepare import prepare_dataset
from pipelines.datasets.local_rows import features, read_rows
from pipelines.storage.layout import dataset_uri
from pipelines.training.config import TrainJobConfig
from pipelines.training.model_spec import model_spec_for
from vae_core import VAE, ModelSpec


def first_step(spec: ModelSpec, x: torch.Tensor, seed: int = 0) -> tuple[int, float, float]:
    """(parameters, loss before the step, loss after one Adam step) of a fresh model on batch `x`."""
    torch.manual_seed(seed)
    model = VAE(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(seed + 1)
    loss = model(x).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.manual_seed(seed + 1)
    after = float(model(x).loss.detach())
    return sum(p.numel() for p in model.parameters()), float(loss.detach()), after


def notebook_spec(manifest) -> ModelSpec:
    """What a notebook user writes: the factory for the data's kind, with nothing but the data's shape."""
    if manifest.kind == "image":
        return ModelSpec.for_images(tuple(manifest.image.shape))
    zero_inflated = sum(c.zero_inflated for c in manifest.numeric)
    return ModelSpec.for_table(len(manifest.numeric) - zero_inflated, [len(c.levels) for c in manifest.categorical],
                               num_zero_inflated=zero_inflated)


@pytest.mark.parametrize("source", ["digits", "fair"])
def test_the_cli_config_and_the_notebook_spec_build_the_same_model_and_first_step(tmp_path, source):
    root = str(tmp_path / "store")
    prepare_dataset(PrepareConfig(name=source, source=source, storage=root))
    uri = dataset_uri(root, source)
    manifest = load_manifest(uri)
    config_file = tmp_path / "job.yaml"
    config_file.write_text(f"name: {source}\ndataset: {source}\n")  # every model field left to its default
    cli_spec = model_spec_for(manifest, load_config(TrainJobConfig, config_file).model)

    assert cli_spec == notebook_spec(manifest)
    x = torch.from_numpy(features(manifest, read_rows(uri, manifest, "train", limit=64))).float()
    x = x.reshape(len(x), *cli_spec.input_shape)
    assert first_step(cli_spec, x) == first_step(notebook_spec(manifest), x)


def test_a_config_value_overrides_only_its_own_field(tmp_path):
    root = str(tmp_path / "store")
    prepare_dataset(PrepareConfig(name="digits", source="digits", storage=root))
    manifest = load_manifest(dataset_uri(root, "digits"))
    config = TrainJobConfig(name="d", dataset="digits", model={"latent_dim": 5})
    assert model_spec_for(manifest, config.model) == ModelSpec.for_images((1, 8, 8), latent_dim=5)
