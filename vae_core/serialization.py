"""Saving and loading models as safetensors weights + spec JSON.

Weights are never unpickled: torch.load on an untrusted file can run arbitrary
code, and the pipelines load models from shared object storage."""

from pathlib import Path

import safetensors.torch
import torch

from vae_core.models import VAE
from vae_core.spec import ModelSpec

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "spec.json"


def _state_dict(model: VAE) -> dict[str, torch.Tensor]:
    return {name: t.detach().contiguous() for name, t in model.state_dict().items()}


def _build_with_weights(spec: ModelSpec, read_weights, source: str) -> VAE:
    """Rebuild the model from its spec and load weights from read_weights(),
    turning both a non-safetensors payload and a weights/spec mismatch into a
    ValueError naming `source`."""
    try:
        state = read_weights()
    except Exception as error:  # safetensors raises its own SafetensorError (or OSError)
        raise ValueError(f"{source} is not a safetensors file ({error}); only safetensors weights "
                         f"are loaded, never pickles — re-save the model with vae_core.save_model") from error
    model = VAE(spec)
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(f"{source} does not match its spec: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    model.load_state_dict(state)
    return model


def save_model(model: VAE, directory) -> None:
    """Write directory/model.safetensors and directory/spec.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(_state_dict(model), directory / WEIGHTS_FILE)
    (directory / SPEC_FILE).write_text(model.spec.to_json())


def load_model(directory, map_location="cpu") -> VAE:
    """Rebuild the VAE saved by save_model in `directory`."""
    directory = Path(directory)
    spec = ModelSpec.from_json((directory / SPEC_FILE).read_text())
    weights = directory / WEIGHTS_FILE
    return _build_with_weights(spec, lambda: safetensors.torch.load_file(weights), str(weights)).to(map_location)


def model_to_bytes(model: VAE) -> tuple[bytes, str]:
    """(safetensors weights, spec JSON), for storing a model in object storage."""
    return safetensors.torch.save(_state_dict(model)), model.spec.to_json()


def model_from_bytes(weights: bytes, spec_json: str) -> VAE:
    """Inverse of model_to_bytes; the model is on CPU."""
    return _build_with_weights(ModelSpec.from_json(spec_json), lambda: safetensors.torch.load(weights),
                               "model weights bytes")
