"""`vaepipe prepare`: turn a source into Parquet shards + `_manifest.json` on storage.

The steps are `datasets.preparation`'s. Built-in samples, image folders and rows given in memory are prepared
in memory; CSV/Parquet files are read in batches, three passes of one task per file (`datasets.table_stream`),
on Ray or in this process (`engine`), so that a source larger than memory prepares in bounded memory. The
result is written through an `OutputCommit`, so a failed or interrupted prepare never leaves a dataset that
looks complete, and the source is checked whole before anything is written.
"""
from __future__ import annotations

from datetime import datetime, timezone
from contextlib import nullcontext
from collections import Counter
from functools import partial, reduce
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

import pyarrow as pa

from pipelines.datasets.manifest import SPLITS, DatasetManifest, SplitRule
from pipelines.datasets.preparation import (
    PrepareConfig, build_arrow_table, categorical_stats_from, check_user_columns, column_roles_from,
    default_rows_per_shard, is_builtin_source, load_source, numeric_stats_from, raise_problems, reads_table_files,
    text_levels_dtype, transform_options,
)
from pipelines.datasets.sources import (ImageFolder, SourceError, SourceTable, date_partitions, hive_partitions,
                                       table_files, without_partitions)
from pipelines.datasets import table_stream as stream
from pipelines.runtime.engine import EngineChoice, attached_cluster
from pipelines.storage.layout import MANIFEST_FILE, dataset_uri, storage_root


def prepare_dataset(config: PrepareConfig, progress: Callable[[str], None] = lambda _: None,
                    source: Optional[SourceTable] = None, manifest_fields: Optional[dict] = None) -> DatasetManifest:
    """Load, check, split and shard the source; commit shards + manifest under datasets/<name>/.

    `source` gives the rows directly (arrays built in a notebook or a benchmark, `vaepipe augment`'s real and
    generated rows); `config.source` then only names where they came from. `manifest_fields` go into the
    manifest as well (`augmentation`).
    """
    from pipelines.storage.objects import check_access

    root = storage_root(config.storage)
    target = dataset_uri(root, config.name)
    check_access(target, write=True)  # where it writes: a read-only or unauthorized root fails here, before reading
    if source is None and reads_table_files(config):
        return prepare_table_files(config, target, progress)
    if source is None and not is_builtin_source(config):
        return prepare_image_folder(config, target, progress)
    if source is None:
        progress(f"reading {config.source}")
        source = load_source(config)
    arrow, fields = build_arrow_table(source, config)
    rows_per_shard = config.rows_per_shard or default_rows_per_shard(arrow.num_rows)
    shards = (arrow.slice(start, rows_per_shard) for start in range(0, arrow.num_rows, rows_per_shard))
    return commit_shards(config, target, source.kind, source.description, shards, lambda: fields, progress,
                         manifest_fields)


def commit_shards(config: PrepareConfig, target: str, kind: str, description: str, shards: Iterable[pa.Table],
                  fields: Callable[[], dict], progress: Callable[[str], None],
                  manifest_fields: Optional[dict] = None) -> DatasetManifest:
    """Write each table of `shards` as a shard, then the manifest — its fields from `fields()`, called once the
    shards are written — and commit them together."""
    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.objects import write_json

    written, schema = [], {}
    with OutputCommit(target, job="prepare", overwrite=config.overwrite) as commit:
        for index, table in enumerate(shards):
            data, shard = stream.encode_shard(table, commit.part_name(index))
            commit.write(shard.key, data)
            written.append(shard)
            schema = {f.name: str(f.type) for f in table.schema}
            progress(f"wrote {shard.key} ({shard.rows} rows)")
        rows = sum(shard.rows for shard in written)
        manifest = DatasetManifest(
            name=config.name, kind=kind, source=description, rows=rows, split=SplitRule(fractions=config.split),
            impute=config.impute, arrow_schema=schema, shards=written,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields(), **(manifest_fields or {}),
        )
        manifest = manifest.model_copy(update={"fingerprint": manifest.compute_fingerprint()})
        write_json(f"{target}/{MANIFEST_FILE}", manifest.model_dump(mode="json"))
        commit.commit(expected_rows=rows, metadata={"fingerprint": manifest.fingerprint})
    return manifest


# A shard of images in memory at a time: its pixels, their Arrow copy and the encoded Parquet.
IMAGE_SHARD_BYTES = 32 * 2**20


def prepare_image_folder(config: PrepareConfig, target: str, progress: Callable[[str], None]) -> DatasetManifest:
    """An image folder a shard at a time, so that a folder larger than memory prepares in bounded memory. Two
    passes: every image is decoded and checked first (a damaged file, a bomb, a size that differs), so a bad
    one fails before anything is written — an existing dataset it would overwrite is left as it was — then
    each shard's images are read again, turned into rows and written."""
    from pipelines.runtime.job_progress import RowReport

    folder = ImageFolder.scan(config.source, config.follow_symlinks)
    step = 256
    check = RowReport(folder.rows, lambda line: progress(f"checking images: {line}"), what="images")
    first = None
    for start in range(0, folder.rows, step):
        _, first = folder.read(slice(start, start + step), config.image_shape, first)
        check.add(min(step, folder.rows - start))
    check.close()
    image_bytes = int(np.prod(first[1]))
    rows_per_shard = config.rows_per_shard or min(default_rows_per_shard(folder.rows),
                                                  max(step, IMAGE_SHARD_BYTES // image_bytes))
    fields: dict = {}
    split_rows: Counter = Counter()

    def shards() -> Iterator[pa.Table]:
        for start in range(0, folder.rows, rows_per_shard):
            rows = slice(start, start + rows_per_shard)
            table, shard_fields = build_arrow_table(folder.source(rows, folder.read(rows, config.image_shape,
                                                                                     first)[0]), config)
            split_rows.update(shard_fields.pop("split_rows"))
            fields.update(shard_fields)
            yield table

    return commit_shards(config, target, "image", folder.uri, shards(),
                         lambda: {**fields, "split_rows": {split: split_rows[split] for split in SPLITS}}, progress)


def choose_prepare_engine(config: PrepareConfig) -> EngineChoice:
    """Ray when asked, or (auto) when attached to a Ray cluster; else this process. Both keep memory bounded,
    and on one machine this process reads as fast as one Ray task, without Ray's start-up."""
    if config.engine != "auto":
        return EngineChoice(config.engine, "asked for")
    cluster = attached_cluster(config.ray.address)
    if cluster:
        return EngineChoice("ray", f"auto: {cluster}; one task per file")
    return EngineChoice("local", "auto: not attached to a Ray cluster; one file after another in this process")


def _call(function: Callable, board, *args):
    """`function(*args)` in a Ray task, the rows it reports counted on the job's progress board."""
    if board is None:
        return function(*args)
    import ray

    sent = []
    result = function(*args, count=lambda rows: sent.append(board.add_rows.remote(rows)))
    # the counts land on the board before the task ends: the driver's last look at the board, when the pass
    # is done, then sees every row (unwaited, the pass's 100 % line was missing once under load)
    ray.get(sent)
    return result


def _each_file(function: Callable, calls: list[tuple], on_ray: bool, progress: Callable[[str], None], what: str,
               prefix: str, rows: Optional[int] = None) -> list:
    """`function(*call)` for every call, in order: on Ray tasks (one CPU each) or one after another here. With
    `rows` (the pass's total), the function takes `count` and the rows done are reported as a batch job's."""
    from pipelines.runtime.job_progress import RowReport, row_progress

    def say(line: str) -> None:
        progress(f"{what}: {line}")

    if not on_ray:
        report, results = RowReport(rows, say) if rows else None, []
        for call in calls:
            results.append(function(*call, **({"count": report.add} if report else {})))
            if report is None:
                say(f"{len(results)}/{len(calls)} file(s)")
        if report is not None:
            report.close()
        return results
    import ray

    from pipelines.batch.parts import error_for_people
    from pipelines.runtime.job_progress import current_board

    # SPREAD: the files are read on every node of a cluster, not packed onto the first one with free CPUs
    task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_call)
    with row_progress(rows, say) if rows else nullcontext():
        refs = [task.remote(function, current_board() if rows else None, *call) for call in calls]
        pending, done = list(refs), 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready)  # the first failure stops the pass, not the last
                done += 1
                say(f"{done}/{len(calls)} file(s)")
            return ray.get(refs)
        except Exception as err:  # Ray wraps task errors in its own exception types
            for ref in pending:
                ray.cancel(ref)
            for_people = error_for_people(err, prefix)
            if for_people is None:
                raise
            raise for_people from None


def prepare_table_files(config: PrepareConfig, target: str, progress: Callable[[str], None]) -> DatasetManifest:
    """Prepare CSV/Parquet files in bounded memory (`datasets.table_stream`): the same checks, statistics,
    splits and manifest as in memory, the shards written by the tasks that read the files."""
    import numpy as np
    import pandas as pd

    from pipelines.runtime.ray_session import ray_session
    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.objects import write_json

    files = table_files(config.source, config.follow_symlinks)
    partitions = hive_partitions(config.source, files)
    named = {*(config.columns or ()), *config.categorical, *config.numeric, config.id_column, config.label_column}
    dates = [name for name in date_partitions(partitions) if name not in named]
    if dates:
        # a nightly input is one day's folder: prepared alone it has no such column, and a model that learned the
        # dates as a feature would refuse it (or see every new date as unseen)
        partitions = without_partitions(partitions, dates)
        progress(f"partition folder(s) {', '.join(f'{name}=…' for name in dates)}: the date the rows belong to, "
                 f"not a feature — left out (name {dates[0]!r} with --columns or --categorical to model it)")
    if config.id_column is not None and config.id_column == config.label_column:
        raise SourceError(f"column {config.id_column!r} is given as both the id column and the label column; "
                          "a row id cannot also be what the row is labelled with")
    choice = choose_prepare_engine(config)
    progress(choice.line)
    on_ray = choice.engine == "ray"
    each = partial(_each_file, on_ray=on_ray, progress=progress, prefix=target)
    with ray_session(config.ray, trains=False) if on_ray else nullcontext():
        jobs = [stream.FileJob.of(config, path, partition=partition) for path, partition in zip(files, partitions)]
        profiles = each(partial(stream.profile_file, config=config), [(job,) for job in jobs], what="profiled")
        columns = profiles[0].columns
        for path, profile in zip(files, profiles):
            # by name, in any order, as pandas.concat, pyarrow.dataset and Ray Data read files together
            if set(profile.columns) != set(columns):
                lacks, adds = sorted(set(columns) - set(profile.columns)), sorted(set(profile.columns) - set(columns))
                differs = "; ".join(filter(None, [lacks and f"it lacks {lacks}", adds and f"it adds {adds}"]))
                raise SourceError(f"{path} has columns {profile.columns} but {files[0]} has {columns} ({differs}); "
                                  "every file of one dataset must have the same columns")
        for column, role in ((config.id_column, "id"), (config.label_column, "label")):
            if column is not None and column not in columns:
                raise SourceError(f"{role} column {column!r} is not in {config.source} (columns: {columns})")
        rows = sum(profile.rows for profile in profiles)
        if rows == 0:
            raise SourceError(f"{config.source}: the dataset is empty (0 rows)")
        features = [c for c in columns if c not in (config.id_column, config.label_column)]
        check_user_columns(SourceTable("tabular", config.source, np.empty(0, dtype=object),
                                       table=pd.DataFrame(columns=features), label_name=config.label_column))
        if config.id_column:
            duplicates, repeated = stream.duplicate_id_hashes(profiles)
            if duplicates:
                raise SourceError(f"{config.source}: id {stream.first_duplicate_id(jobs, config, duplicates)!r} "
                                  f"appears more than once ({repeated} duplicate ids); ids must be unique")
        merged = {c: reduce(lambda a, b: a.merge(b), [p.profiles[c] for p in profiles]) for c in features}
        numeric, categorical = column_roles_from(merged, config)
        options = transform_options(numeric, config, config.source)
        offsets = np.concatenate([[0], np.cumsum([p.rows for p in profiles])[:-1]]).astype(int).tolist()
        jobs = [stream.FileJob.of(config, path, offset, profile.version, partition)
                for path, offset, profile, partition in zip(files, offsets, profiles, partitions)]
        label_types = [p.label_type for p in profiles if p.label_type is not None]
        plan = stream.FilePlan(config, numeric, categorical,
                               label_type=pa.unify_schemas([pa.schema([("label", t)]) for t in label_types],
                                                           promote_options="permissive").field("label").type
                               if label_types else None,
                               sample_rate=stream.sample_rate(int(rows * config.split["train"])),
                               sampled=frozenset(c for c in numeric if options[c].get("transform") == "quantile"
                                                 or config.impute == "median"))
        summaries = each(partial(stream.summarize_file, plan=plan), [(job,) for job in jobs], what="statistics",
                         rows=rows)
        total = reduce(lambda a, b: a.merge(b), summaries)
        raise_problems(total.problems, config.source)
        if total.split_rows["train"] == 0:
            raise SourceError(f"{config.source}: no rows left in the train split")
        if total.kept == 0:
            raise SourceError(f"{config.source}: no rows left after dropping rows with missing values")
        fill, numeric_columns = {}, []
        for column in numeric:
            summary = total.numeric[column]
            if config.impute in ("mean", "median") and total.invalid[column]:
                if summary.count == 0:
                    raise SourceError(f"{config.source}: column {column!r} has no valid train values to impute from")
                fill[column] = summary.values.mean if config.impute == "mean" else summary.median()
                summary = summary.with_copies(fill[column], total.invalid_train[column])
            if merged[column].typed_numeric:
                dtype = merged[column].dtype
            else:  # CSV text: whole numbers are int64, as the in-memory path infers them
                whole = total.whole[column] and (column not in fill or float(fill[column]).is_integer())
                finite = total.finite[column] + (total.invalid[column] if column in fill else 0)
                dtype = "int64" if finite and whole else "float64"
            if summary.count == 0:
                raise SourceError(f"{config.source}: column {column!r} has no valid train values")
            gaps = config.impute == "keep" and bool(total.invalid[column])
            numeric_columns.append(numeric_stats_from(column, summary, dtype, gaps=gaps, **options[column]))
        # CSV text: a code column (1, 2, 3) has the dtype read_csv gives it, so generated rows write 2, not "2"
        categorical_columns = [categorical_stats_from(
            c, total.levels[c], total.train_counts[c],
            (not merged[c].typed_numeric and merged[c].kind == "text" and text_levels_dtype(total.levels[c]))
            or merged[c].dtype)
            for c in categorical]
        rows_per_shard = config.rows_per_shard or default_rows_per_shard(total.kept)
        schema = {"row_id": "string", "split": "string"}
        if config.label_column:
            schema[config.label_column] = str(plan.label_type)
        schema.update({c: "double" for c in numeric} | {c: "string" for c in categorical})
        with OutputCommit(target, job="prepare", overwrite=config.overwrite) as commit:
            groups = stream.shard_groups([s.kept for s in summaries], rows_per_shard)
            starts = np.concatenate([[0], np.cumsum([count for _, count in groups])[:-1]]).astype(int).tolist()
            calls = [([jobs[i] for i in run], stream.ShardTarget(
                target, tuple(commit.part_name(start + k) for k in range(count)), rows_per_shard))
                for (run, count), start in zip(groups, starts)]
            written = each(partial(stream.write_files, plan=plan, fill=fill), calls, what="written", rows=rows)
            shards = [shard for file_shards in written for shard in file_shards]
            commit.record([s.key for s in shards], [s.size for s in shards])
            manifest = DatasetManifest(
                name=config.name, kind="tabular", source=config.source, rows=total.kept,
                split=SplitRule(fractions=config.split), impute=config.impute, arrow_schema=schema, shards=shards,
                created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), numeric=numeric_columns,
                categorical=categorical_columns, column_order=[c for c in features if c in {*numeric, *categorical}],
                split_rows=total.split_rows, **({"label_column": config.label_column} if config.label_column else {}))
            manifest = manifest.model_copy(update={"fingerprint": manifest.compute_fingerprint()})
            write_json(f"{target}/{MANIFEST_FILE}", manifest.model_dump(mode="json"))
            commit.commit(expected_rows=total.kept, metadata={"fingerprint": manifest.fingerprint})
    return manifest
