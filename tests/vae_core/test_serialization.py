import io
import os
import pickle

import pytest
import torch

from vae_core import VAE, ModelSpec, load_model, model_from_bytes, model_to_bytes, save_model


def _trained_looking(spec):
    """A model whose weights (and learned stds) differ from any fresh init."""
    torch.manual_seed(0)
    model = VAE(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _deterministic_outputs(model, x):
    with torch.no_grad():
        mu, logvar = model.encode(x)
        params = model.decode(mu)
        return mu, logvar, params, model.likelihood.log_prob(params, x.flatten(1))


SPECS = [ModelSpec.for_table(3, [2, 3], latent_dim=2, hidden=(16,)), ModelSpec.for_images((1, 8, 8), hidden=(4, 8)),
         ModelSpec.for_images((1, 8, 8), hidden=(4, 8), pixels="gaussian")]


@pytest.mark.parametrize("spec", SPECS, ids=["mlp", "conv", "conv-gaussian"])
def test_save_and_load_directory_reproduces_outputs_bit_for_bit(spec, tmp_path):
    model = _trained_looking(spec)
    save_model(model, tmp_path / "m")
    torch.manual_seed(99)  # the loaded model's fresh init must not matter
    loaded = load_model(tmp_path / "m")
    x = torch.rand(5, *spec.input_shape)
    assert loaded.spec == spec
    for a, b in zip(_deterministic_outputs(model, x), _deterministic_outputs(loaded, x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("spec", SPECS, ids=["mlp", "conv", "conv-gaussian"])
def test_bytes_round_trip_reproduces_outputs_bit_for_bit(spec):
    model = _trained_looking(spec)
    weights, spec_json = model_to_bytes(model)
    torch.manual_seed(99)
    loaded = model_from_bytes(weights, spec_json)
    x = torch.rand(5, *spec.input_shape)
    for a, b in zip(_deterministic_outputs(model, x), _deterministic_outputs(loaded, x)):
        assert torch.equal(a, b)


def test_save_writes_safetensors_and_spec_json(tmp_path):
    save_model(VAE(SPECS[0]), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "spec.json"]
    assert ModelSpec.from_json((tmp_path / "spec.json").read_text()) == SPECS[0]


class _WritesMarker:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _torch_saved_state_dict(model) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.reliability("security")
def test_model_from_bytes_refuses_a_torch_pickle():
    model = VAE(SPECS[0])
    with pytest.raises(ValueError, match="is not a safetensors file"):
        model_from_bytes(_torch_saved_state_dict(model), model.spec.to_json())


@pytest.mark.reliability("security")
def test_model_from_bytes_refuses_a_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="is not a safetensors file"):
        model_from_bytes(pickle.dumps(_WritesMarker(marker)), SPECS[0].to_json())
    assert not marker.exists()


@pytest.mark.reliability("security")
def test_load_model_refuses_a_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    save_model(VAE(SPECS[0]), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(pickle.dumps(_WritesMarker(marker)))
    with pytest.raises(ValueError, match="model.safetensors is not a safetensors file"):
        load_model(tmp_path / "m")
    assert not marker.exists()


def test_weights_for_another_spec_are_rejected_naming_the_mismatch():
    weights, _ = model_to_bytes(VAE(SPECS[0]))
    other = ModelSpec.for_table(3, [2, 3], latent_dim=2, hidden=(16, 16))
    with pytest.raises(ValueError, match="does not match its spec"):
        model_from_bytes(weights, other.to_json())
