"""`FusedAdam` (pipelines.training.optimizer): the weights torch.optim.Adam(fused=True) gives, bit for bit, through
its lean step, across a checkpoint's state dict, and through torch's own step wherever the lean one does not
apply."""
from __future__ import annotations

import copy

import pytest
import torch

from pipelines.training.optimizer import FusedAdam


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.SiLU(), torch.nn.Linear(16, 3))


def train(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 1,
          skip_last_layer_from: int | None = None) -> None:
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = torch.randn(8, 6, generator=generator)
        out = net[1](net[0](x))
        # from a step on, the last layer takes no part: its parameters get no gradient
        loss = out.pow(2).mean() if skip_last_layer_from is not None and step >= skip_last_layer_from \
            else net(x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_lean_step_gives_torchs_fused_adam_weights_bit_for_bit(weight_decay):
    ours, theirs = model(), model()
    lean = FusedAdam(ours.parameters(), lr=3e-3, weight_decay=weight_decay)
    train(ours, lean, 50)
    train(theirs, torch.optim.Adam(theirs.parameters(), lr=3e-3, weight_decay=weight_decay, fused=True), 50)
    assert lean.lean_steps == 50  # the first step too: it creates Adam's state as torch's first step does
    assert same_weights(ours, theirs)


def test_a_resumed_optimizer_continues_as_torchs_does_and_its_state_dict_is_adams():
    ours, theirs = model(), model()
    lean = FusedAdam(ours.parameters(), lr=1e-2)
    reference = torch.optim.Adam(theirs.parameters(), lr=1e-2, fused=True)
    train(ours, lean, 10)
    train(theirs, reference, 10)
    # a checkpoint written by one loads into the other (the resume path), and both go on alike
    resumed, resumed_reference = copy.deepcopy(ours), copy.deepcopy(theirs)
    lean_again = FusedAdam(resumed.parameters(), lr=1e-2)
    lean_again.load_state_dict(reference.state_dict())
    reference_again = torch.optim.Adam(resumed_reference.parameters(), lr=1e-2, fused=True)
    reference_again.load_state_dict(lean.state_dict())
    train(resumed, lean_again, 10, seed=2)
    train(resumed_reference, reference_again, 10, seed=2)
    assert lean_again.lean_steps == 10 and same_weights(resumed, resumed_reference)


def test_parameters_without_a_gradient_and_a_changed_learning_rate_follow_torch():
    ours, theirs = model(), model()
    lean = FusedAdam(ours.parameters(), lr=3e-3)
    reference = torch.optim.Adam(theirs.parameters(), lr=3e-3, fused=True)
    train(ours, lean, 20, skip_last_layer_from=10)
    train(theirs, reference, 20, skip_last_layer_from=10)
    assert lean.lean_steps == 10  # steps 1-10; from step 11 the last layer has no gradient: torch's step
    assert same_weights(ours, theirs)
    for optimizer in (lean, reference):
        optimizer.param_groups[0]["lr"] = 1e-4  # as a schedule would
    train(ours, lean, 5, seed=3)
    train(theirs, reference, 5, seed=3)
    assert lean.lean_steps == 15 and same_weights(ours, theirs)


def test_step_hooks_run_once_per_step_on_either_path():
    net = model()
    optimizer = FusedAdam(net.parameters())
    calls = []
    optimizer.register_step_post_hook(lambda *_: calls.append(1))
    train(net, optimizer, 3, skip_last_layer_from=2)  # two lean steps, the third (a layer without gradient) torch's
    assert optimizer.lean_steps == 2 and len(calls) == 3


def test_torchs_global_hooks_and_the_profilers_range_are_there_for_the_lean_step_too():
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    net = model()
    optimizer = FusedAdam(net.parameters())
    train(net, optimizer, 1)
    calls = []
    handle = register_optimizer_step_pre_hook(lambda *_: calls.append(1))
    try:
        train(net, optimizer, 2)
    finally:
        handle.remove()
    train(net, optimizer, 1)  # no hook now
    assert calls == [1, 1] and optimizer.lean_steps == 4
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        train(net, optimizer, 2)
    names = [event.name for event in profile.events()]
    assert names.count("Optimizer.step#FusedAdam.step") == 2 and optimizer.lean_steps == 6


def test_a_deep_copied_model_and_optimizer_go_on_like_the_originals():
    net = model()
    optimizer = FusedAdam(net.parameters(), lr=3e-3)
    train(net, optimizer, 5)
    net_copy, optimizer_copy = copy.deepcopy((net, optimizer))  # pickling goes through the same __setstate__
    train(net, optimizer, 5, seed=4)
    train(net_copy, optimizer_copy, 5, seed=4)
    assert optimizer_copy.lean_steps == 5 and same_weights(net, net_copy)


def test_a_state_dict_saved_to_bytes_restores_each_parameters_step_count():
    import io

    ours, theirs = model(), model()
    lean = FusedAdam(ours.parameters(), lr=3e-3)
    reference = torch.optim.Adam(theirs.parameters(), lr=3e-3, fused=True)
    # the last layer misses steps 6-8: its step count falls behind the first layer's, as in torch's state
    train(ours, lean, 8, skip_last_layer_from=5)
    train(theirs, reference, 8, skip_last_layer_from=5)
    buffer = io.BytesIO()
    torch.save(lean.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    assert [float(entry["step"]) for entry in saved["state"].values()] == \
        [float(entry["step"]) for entry in reference.state_dict()["state"].values()] == [8.0, 8.0, 5.0, 5.0]
    restored = FusedAdam(ours.parameters(), lr=3e-3)
    restored.load_state_dict(saved)
    train(ours, restored, 5, seed=5)
    train(theirs, reference, 5, seed=5)
    assert restored.lean_steps == 5 and same_weights(ours, theirs)


def test_training_saving_and_loading_import_no_compiler_and_match_torch_after_it_loads():
    """torch's optimizer methods import `torch._dynamo` on first call (~2.5 CPU-s in each process that trains);
    these never compile, so they do not. Once the compiler is loaded (torch's own Adam below steps), the same
    weights come out."""
    import subprocess
    import sys
    from pathlib import Path

    probe = """
import copy, io, sys, torch
sys.path.insert(0, sys.argv[1])
from test_optimizer import model, same_weights, train
from pipelines.training.optimizer import FusedAdam
ours, theirs = model(), model()
lean = FusedAdam(ours.parameters(), lr=3e-3)
train(ours, lean, 5)
buffer = io.BytesIO()
torch.save(lean.state_dict(), buffer)
buffer.seek(0)
again = FusedAdam(ours.parameters(), lr=3e-3)
again.load_state_dict(torch.load(buffer))
train(ours, again, 5, seed=2)
assert "torch._dynamo" not in sys.modules, "a FusedAdam imported torch._dynamo"
reference = torch.optim.Adam(theirs.parameters(), lr=3e-3, fused=True)
train(theirs, reference, 5)
train(theirs, reference, 5, seed=2)
assert "torch._dynamo" in sys.modules  # torch's own step loads it
assert same_weights(ours, theirs)
after = FusedAdam(ours.parameters(), lr=3e-3)  # with the compiler loaded: torch's wrapped methods
after.load_state_dict(copy.deepcopy(reference.state_dict()))
train(ours, after, 5, seed=3)
train(theirs, reference, 5, seed=3)
assert same_weights(ours, theirs) and after.lean_steps == 5
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", probe, str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
