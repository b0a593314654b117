"""The structure the code promises (docs/design.md, "Layers"): imports point down — checked by import-linter
with the contracts in pyproject.toml, which must also catch an upward import — and importing the package
changes nothing in the process's environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """`lint-imports` over the packages in `project` (their code is read from there, not from the install)."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)


def copy_of_the_code(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    for package in ("pipelines", "vae_core", "configs"):
        shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def test_the_import_contracts_hold():
    checked = lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


@pytest.mark.parametrize("module, upward, contract", [
    ("pipelines/storage/objects.py", "from pipelines.cli.main import main", "is layered"),
    ("pipelines/reports/scores.py", "from pipelines.jobs.score import run_scoring", "never run a verb"),
    ("vae_core/models.py", "import pyarrow", "torch only"),
    ("pipelines/training/loop.py", "from pipelines.batch.model_actors import ModelActor", "is layered"),
    ("pipelines/storage/layout.py", "from pipelines.storage.commit import OutputCommit", "no import cycles"),
], ids=["storage-imports-cli", "report-imports-a-verb", "science-imports-pyarrow", "training-imports-batch",
        "a-cycle-inside-storage"])
def test_an_upward_import_breaks_a_contract(tmp_path, module, upward, contract):
    project = copy_of_the_code(tmp_path)
    source = project / module
    source.write_text(source.read_text() + f"\n\ndef _added_by_the_test():\n    {upward}\n")
    checked = lint_imports(project)
    assert checked.returncode != 0, checked.stdout
    broken = [line for line in checked.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken) or contract in checked.stdout.split("Broken contracts")[-1], \
        checked.stdout


def test_importing_every_module_changes_no_environment_variable():
    """No module sets Ray's (or anyone's) variables when it is imported: a job sets them when it starts its
    Ray session (`runtime.ray_session.configure_ray_environment`)."""
    probe = """
import importlib, json, os, pkgutil
# the libraries' own import-time settings (Ray sets RAY_CLIENT_MODE) are theirs, not ours
import ray, ray.data, ray.train, ray.tune, torch, pyarrow, boto3, pandas, sklearn
import pipelines, vae_core
before = dict(os.environ)
for package in (pipelines, vae_core):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
after = dict(os.environ)
print(json.dumps({k: [before.get(k), after.get(k)] for k in set(before) | set(after) if before.get(k) != after.get(k)}))
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}
