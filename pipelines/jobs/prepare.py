"""`vaepipe prepare`: turn a source into Parquet shards + `_manifest.json` on storage.

The steps are `datasets.preparation`'s; this reads the source and writes the result through an
`OutputCommit`, so a failed or interrupted prepare never leaves a dataset that looks complete.
"""
from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone
from typing import Callable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.datasets.manifest import DatasetManifest, ShardInfo, SplitRule
from pipelines.datasets.preparation import PrepareConfig, build_arrow_table, default_rows_per_shard, load_source
from pipelines.datasets.sources import SourceTable
from pipelines.storage.layout import MANIFEST_FILE, dataset_uri, storage_root


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def prepare_dataset(config: PrepareConfig, progress: Callable[[str], None] = lambda _: None,
                    source: Optional[SourceTable] = None, manifest_fields: Optional[dict] = None) -> DatasetManifest:
    """Load, check, split and shard the source; commit shards + manifest under datasets/<name>/.

    `source` gives the rows directly (arrays built in a notebook or a benchmark, `vaepipe augment`'s real and
    generated rows); `config.source` then only names where they came from. `manifest_fields` go into the
    manifest as well (`augmentation`).
    """
    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.objects import check_access, write_json

    root = storage_root(config.storage)
    target = dataset_uri(root, config.name)
    check_access(target, write=True)  # where it writes: a read-only or unauthorized root fails here, before reading
    if source is None:
        progress(f"reading {config.source}")
        source = load_source(config)
    arrow, fields = build_arrow_table(source, config)
    rows_per_shard = config.rows_per_shard or default_rows_per_shard(arrow.num_rows)
    shards = []
    with OutputCommit(target, job="prepare", overwrite=config.overwrite) as commit:
        for index, start in enumerate(range(0, arrow.num_rows, rows_per_shard)):
            data = _parquet_bytes(arrow.slice(start, rows_per_shard))
            name = commit.part_name(index)
            commit.write(name, data)
            shards.append(ShardInfo(key=name, rows=min(rows_per_shard, arrow.num_rows - start),
                                    size=len(data), sha256=hashlib.sha256(data).hexdigest()))
            progress(f"wrote {shards[-1].key} ({shards[-1].rows} rows)")
        manifest = DatasetManifest(
            name=config.name, kind=source.kind, source=source.description, rows=arrow.num_rows,
            split=SplitRule(fractions=config.split), impute=config.impute,
            arrow_schema={f.name: str(f.type) for f in arrow.schema}, shards=shards,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields, **(manifest_fields or {}),
        )
        manifest = manifest.model_copy(update={"fingerprint": manifest.compute_fingerprint()})
        write_json(f"{target}/{MANIFEST_FILE}", manifest.model_dump(mode="json"))
        commit.commit(expected_rows=arrow.num_rows, metadata={"fingerprint": manifest.fingerprint})
    return manifest
