"""`vaepipe promote`: the version nightly scoring uses (`NAME@PROMOTED`)."""
from __future__ import annotations

from typing import Optional

from pipelines.storage.layout import storage_root
from pipelines.storage.registry import ModelRef, promote


def promote_model(reference: str, storage: Optional[str] = None) -> str:
    """Point the model's PROMOTED at the version `reference` names; returns `name@version`."""
    ref = ModelRef.parse(reference)
    version = promote(storage_root(storage), ref)
    return f"{ref.name}@{version}"
