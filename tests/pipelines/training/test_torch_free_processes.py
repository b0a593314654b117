"""The modules Ray imports in Train's controller and in a Tune trial's actor import no torch: those processes only
build, fit and watch a trainer, and torch cost each of them ~2 s of CPU and ~180 MiB (docs/design.md, "Train's
controller imports no torch"). Those modules import Ray's pieces inside their functions:
tests/pipelines/jobs/test_train.py and test_tune.py look into a real controller and real trials' actors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "torch")[:3]))
"""


@pytest.mark.parametrize("module", [
    "pipelines.training.process_group",  # the backend config Train's controller unpickles
    "pipelines.training.trial",  # run_trial, unpickled by each Tune trial's actor
    "pipelines.training.trainer",  # the workers' entry point, pickled by the process that builds a trainer
    "vae_core",  # `from vae_core import ModelSpec` in the configs: names load on first use
])
def test_what_ray_unpickles_in_the_controller_and_a_trial_imports_no_torch(module):
    run = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [], module


def test_vae_core_gives_each_name_from_its_module_on_first_use():
    import vae_core
    from vae_core.models import VAE
    from vae_core.spec import ModelSpec

    assert vae_core.VAE is VAE and vae_core.ModelSpec is ModelSpec
    assert sorted(vae_core.__all__) == sorted(vae_core._WHERE) and set(vae_core.__all__) <= set(dir(vae_core))
    assert all(getattr(vae_core, name) is not None for name in vae_core.__all__)
    with pytest.raises(AttributeError, match="no attribute 'VAEs'"):
        vae_core.VAEs  # noqa: B018
