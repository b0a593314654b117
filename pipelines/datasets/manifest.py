"""`_manifest.json`: what a prepared dataset is, read by every later job.

It records the schema and role of every column, the split rule, the
preprocessing statistics (computed on the train split only), and a checksum per
shard, so a job can refuse a dataset that changed under it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "_manifest.json"
SPLITS = ("train", "val", "test")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericColumn(_Frozen):
    name: str
    dtype: str
    mean: float
    std: float
    min: float
    max: float
    integer: bool = False


class CategoricalColumn(_Frozen):
    name: str
    dtype: str
    levels: list[str]
    train_counts: list[int]


class ImageSpec(_Frozen):
    column: str = "image"
    shape: tuple[int, int, int]
    max_value: int = 255


class ShardInfo(_Frozen):
    key: str
    rows: int
    size: int
    sha256: str


class SplitRule(_Frozen):
    method: Literal["hash_of_row_id"] = "hash_of_row_id"
    fractions: dict[str, float]
    seed: str = "vaepipe"


class DatasetManifest(_Frozen):
    format_version: int = 1
    name: str
    kind: Literal["image", "tabular"]
    source: str
    rows: int
    split_rows: dict[str, int]
    split: SplitRule
    id_column: str = "row_id"
    label_column: Optional[str] = None
    numeric: list[NumericColumn] = Field(default_factory=list)
    categorical: list[CategoricalColumn] = Field(default_factory=list)
    image: Optional[ImageSpec] = None
    impute: str = "error"
    arrow_schema: dict[str, str]
    shards: list[ShardInfo]
    fingerprint: str = ""
    created_at: str

    @property
    def feature_columns(self) -> list[str]:
        if self.kind == "image":
            return [self.image.column]
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def feature_dim(self) -> int:
        if self.kind == "image":
            c, h, w = self.image.shape
            return c * h * w
        return len(self.numeric) + sum(len(c.levels) for c in self.categorical)

    def compute_fingerprint(self) -> str:
        """Stable over what determines the data: schema, roles, split and shard contents."""
        payload = self.model_dump(exclude={"fingerprint", "created_at", "source"})
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]
