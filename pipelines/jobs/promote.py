"""`vaepipe promote`: point an alias of a model at a version (`PROMOTED`, the one nightly scoring uses, unless
told otherwise), recorded in the alias's history, and moved in MLflow too when the version is tracked there."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from pipelines.storage.layout import CARD_FILE, model_version_uri, storage_root
from pipelines.storage.registry import PROMOTED, AliasRecord, ModelRef, move_alias, read_alias, read_card, \
    resolve_version, validate_alias


@dataclass
class Promotion:
    name: str
    version: int
    alias: str
    record: AliasRecord
    mlflow: Optional[str]  # what was done in MLflow (a warning when it could not be), None when not tracked

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"


def promote_model(reference: str, storage: Optional[str] = None, alias: str = PROMOTED, why: str = "",
                  progress: Callable[[str], None] = print) -> Promotion:
    """Point `alias` of the model at the version `reference` names: read where it points, then move it with a
    conditional write (`registry.move_alias`: of two concurrent promotions one wins, the other raises
    `AliasConflict` naming the winner). MLflow's alias follows when the version's card says it is tracked."""
    from pipelines.runtime.tracking import mirror_alias

    root = storage_root(storage)
    ref = ModelRef.parse(reference)
    validate_alias(alias)
    version = resolve_version(root, ref)
    record = move_alias(root, ref.name, alias, version, why, read_alias(root, ref.name, alias))
    card = read_card(f"{model_version_uri(root, ref.name, version)}/{CARD_FILE}")
    mirrored = mirror_alias(card, ref.name, alias, version)
    if mirrored:
        progress(mirrored)
    return Promotion(ref.name, version, alias, record, mirrored)
