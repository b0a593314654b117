"""Where every kind of output lives under one storage root (see DESIGN.md, "Storage layout")."""
from __future__ import annotations

import os

from pipelines.naming import validate_name

DEFAULT_STORAGE_ROOT = "s3://vaepipe"


def storage_root(explicit: str | None = None) -> str:
    """The root URI jobs read and write: the explicit value, else $VAEPIPE_STORAGE, else s3://vaepipe.

    Checked before any job uses it: no `..` or credentials in it, no system directory."""
    from pipelines.storage import check_output_location

    given = explicit or os.environ.get("VAEPIPE_STORAGE") or DEFAULT_STORAGE_ROOT
    root = given.rstrip("/") or "/"  # "/" itself must stay "/", not become "" (the current directory)
    check_output_location(root)
    return root


def dataset_uri(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/datasets/{validate_name(name, 'dataset name')}"


def model_uri(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/models/{validate_name(name, 'model name')}"


def runs_uri(root: str) -> str:
    return f"{root.rstrip('/')}/runs"


def run_uri(root: str, run_id: str) -> str:
    return f"{runs_uri(root)}/{validate_name(run_id, 'run id')}"
