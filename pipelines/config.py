"""Job configs: a YAML file, then `--set a.b=c` overrides, validated by a pydantic model.

Every job config model rejects unknown keys (`extra="forbid"`), so a typo in a
YAML file or an override is reported with the field's dotted path, before Ray starts.
"""
from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pipelines.errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be used; the message names the field."""


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last one silently, so a
    second `train:` block at the end of a config dropped every field of the first (YAML itself forbids it)."""

    def construct_mapping(self, node, deep=False):
        first: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be given again here
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # PyYAML's own error names it
                continue
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (first on line {first[key] + 1}); give "
                    "it once", key_node.start_mark)
            first.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep)


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with every key of a mapping once (`_UniqueKeyLoader`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error as one line: where (line, column) and what, without PyYAML's echo of the source."""
    mark = getattr(err, "problem_mark", None)
    if not isinstance(err, yaml.MarkedYAMLError) or mark is None:
        return str(err)
    return f"line {mark.line + 1}, column {mark.column + 1}: " + "; ".join(filter(None, [err.context, err.problem]))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.epochs=50` → (["train", "epochs"], 50); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key.path=value (e.g. train.epochs=50)")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({yaml_problem(err)})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line naming every bad field: `invalid config (digits.yaml): train.epochs: ...; model.x: unknown field`."""
    problems = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{field}: unknown field (check the spelling; see --help or configs/ for valid keys)")
        else:
            problems.append(f"{field}: {item['msg']}")
    return f"invalid config ({source}): " + "; ".join(problems)


def bundled_configs() -> list[str]:
    """File names of the example configs shipped with the package (configs/ of the repository)."""
    from importlib.resources import files

    return sorted(entry.name for entry in files("pipelines.configs").iterdir() if entry.name.endswith(".yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """`path` when it is a file; else, when its name is one of the shipped example configs (`digits.yaml`,
    `configs/digits.yaml` run outside a clone), that config inside the installed package."""
    from importlib.resources import as_file, files

    path = Path(path)
    if path.is_file():
        return path
    name = path.name if path.suffix == ".yaml" else f"{path.name}.yaml"
    if name in bundled_configs() and (path.parent.name in ("", "configs")):
        with as_file(files("pipelines.configs") / name) as bundled:
            return Path(bundled)
    raise ConfigError(f"config file {path} does not exist (the shipped examples: {', '.join(bundled_configs())})")


def load_yaml(path: str | Path) -> dict:
    path = resolve_config_path(path)
    try:
        data = safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level")
    return data


def build_config(model: type[M], data: dict, overrides: Iterable[str] = (), source: str = "config") -> M:
    data = apply_overrides(dict(data), overrides)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(model: type[M], path: str | Path | None, overrides: Iterable[str] = ()) -> M:
    data = load_yaml(path) if path else {}
    return build_config(model, data, overrides, source=str(path) if path else "command line")
