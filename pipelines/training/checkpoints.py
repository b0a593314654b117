"""Training checkpoints as plain files: weights in safetensors, optimizer tensors loadable with
`torch.load(weights_only=True)`, and the loop's state as JSON — nothing that unpickles code."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from vae_core import VAE, load_model, save_model

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"


def save_checkpoint(directory: str | Path, model: VAE, optimizer: torch.optim.Optimizer, state: dict) -> None:
    directory = Path(directory)
    save_model(model, directory)
    torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)
    (directory / STATE_FILE).write_text(json.dumps(state))


def load_checkpoint_state(directory: str | Path) -> dict:
    """The loop's state (epoch, history) alone, without loading weights."""
    return json.loads((Path(directory) / STATE_FILE).read_text())


def load_checkpoint(directory: str | Path) -> tuple[VAE, dict, dict]:
    """(model, optimizer state dict, loop state) from a checkpoint directory."""
    directory = Path(directory)
    model = load_model(directory)
    optimizer_state = torch.load(directory / OPTIMIZER_FILE, weights_only=True, map_location="cpu")
    return model, optimizer_state, load_checkpoint_state(directory)
