"""What a user gets from `pip install vaepipe`: every package (the example configs included), and a `vaepipe`
that runs and finds its demo config outside a clone of the repository."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(init.parent.relative_to(ROOT).parts) for top in ("pipelines", "vae_core", "vaepipe")
               for init in (ROOT / top).rglob("__init__.py")}
    assert listed == folders | {"pipelines.configs"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_installed_wheel_runs_the_demo_command_and_finds_its_config_outside_the_checkout(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("vaepipe-*.whl")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=240)
    assert installed.returncode == 0, installed.stderr
    # the wheel's code first; its dependencies from this environment
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=outside, env=env, capture_output=True, text=True,
                              timeout=120)

    help_text = run("-m", "pipelines.cli", "demo", "--help")
    assert help_text.returncode == 0 and "digits" in help_text.stdout, help_text.stderr
    found = run("-c", "import pipelines; from pipelines.cli.demo import DEMO_CONFIG; "
                      "from pipelines.config import load_yaml, resolve_config_path; "
                      "print(pipelines.__file__); print(resolve_config_path(DEMO_CONFIG)); "
                      "print(load_yaml(DEMO_CONFIG)['name'])")
    assert found.returncode == 0, found.stderr
    package_file, config_path, name = found.stdout.strip().splitlines()
    assert package_file.startswith(str(site)) and config_path.startswith(str(site)), found.stdout
    assert name == "digits"
    notebook_api = run("-c", "import vaepipe; print(vaepipe.__file__, vaepipe.VAEDetector.__name__)")
    assert notebook_api.returncode == 0 and notebook_api.stdout.startswith(str(site)), notebook_api.stderr
