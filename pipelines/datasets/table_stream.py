"""A CSV/Parquet source prepared in bounded memory: three passes over its files, each read in batches.

1. `profile_file`: the file's rows, its columns and what their values look like (the roles are decided from
   all files' profiles), and a 128-bit hash of each id (ids must be unique across files);
2. `summarize_file`: each batch cleaned as `clean_tabular` cleans a whole table, and the train split's
   statistics as summaries that merge (`column_stats`), with what is wrong with the data (first row, count);
3. `write_files`: each batch cleaned again, now with the imputed values, and the rows of a run of files written
   as Parquet shards of `rows_per_shard` rows under the commit's attempt (small files share a shard).

Each pass is a function of one file (`FileJob`) whose result is small (counts, summaries, shard records), so a
job runs the files on Ray tasks or one after another in this process (`jobs.prepare`), and memory stays at a
batch and a shard per file being read, whatever the source's size. The driver holds 16 bytes per row to check
ids (when the source has an id column) and at most `column_stats.SAMPLE_ROWS` train values per column whose
quantiles or median are needed. The statistics, roles, splits, ids and errors are those of the in-memory path
for the same rows: a row's id is its id column's value, else its position in the source (files in order).
A file is the unit of parallelism: a CSV cannot be split at a byte offset safely (quoted newlines), and a
row's position needs the rows of the files before it.
"""
from __future__ import annotations

import hashlib
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.datasets.column_stats import SAMPLE_ROWS, NumericSummary
from pipelines.datasets.column_values import grouped_number_pattern
from pipelines.datasets.manifest import SPLITS, ShardInfo
from pipelines.datasets.preparation import (
    ColumnProfile, PrepareConfig, add_problems, arrow_column, assign_splits, clean_tabular, row_units,
)
from pipelines.datasets.sources import (
    Partition, SourceError, SourceTable, check_column_names, default_delimiter, table_format,
)

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 16 << 20
# the header is read before the rows: a 16 MiB first block parsed only for its names cost a block's parse per
# file and pass
CSV_HEADER_PROBE_BYTES = 1 << 20
# two keys for pandas' 64-bit hash of the ids: 128 bits, so that two different ids share a hash with a
# probability below 1e-20 for a billion rows
_ID_HASH_KEYS = ("vaepipe-ids-key1", "vaepipe-ids-key2")


@dataclass(frozen=True)
class FileJob:
    source: str  # the source as given: its filesystem reads `path`
    path: str
    offset: int = 0  # rows in the files before this one (known after the first pass)
    version: Optional[tuple] = None  # (size, modified ns) the first pass read (`file_version`); later passes check it
    delimiter: Optional[str] = None  # a CSV's (default: `sources.default_delimiter`)
    encoding: str = "utf-8"  # a CSV's
    decimal: str = "."  # a CSV's decimal mark
    thousands: Optional[str] = None  # a CSV's thousands separator
    missing: tuple[str, ...] = ()  # a CSV's texts for a missing value, besides pyarrow's
    partition: Partition = ()  # the columns its Hive-style folders give (`sources.hive_partitions`)

    @classmethod
    def of(cls, config: PrepareConfig, path: str, offset: int = 0, version: Optional[tuple] = None,
           partition: Partition = ()) -> FileJob:
        return cls(config.source, path, offset, version, config.delimiter, config.encoding, config.decimal,
                   config.thousands, tuple(config.missing), partition)


@dataclass
class FileProfile:
    version: tuple  # `file_version` before the first pass read the file
    rows: int
    columns: list[str]
    profiles: dict[str, ColumnProfile]
    id_hashes: Optional[np.ndarray]  # [rows, 2] uint64, when the source has an id column
    label_type: Optional[pa.DataType]


@dataclass
class FilePlan:
    """What the second and third pass need to know about the whole source."""

    config: PrepareConfig
    numeric: list[str]
    categorical: list[str]
    label_type: Optional[pa.DataType] = None
    sample_rate: float = 1.0  # share of train rows whose values are kept for quantiles and medians
    sampled: frozenset = frozenset()  # the numeric columns that need them (quantile transform, median imputed)


@dataclass
class FileSummary:
    kept: int = 0
    split_rows: dict = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    numeric: dict = field(default_factory=dict)  # column -> NumericSummary of its valid train values
    invalid_train: Counter = field(default_factory=Counter)  # column -> train rows to impute
    invalid: Counter = field(default_factory=Counter)  # column -> rows to impute, any split
    whole: dict = field(default_factory=dict)  # column -> every finite value is a whole number (any split)
    finite: Counter = field(default_factory=Counter)  # column -> finite values (any split)
    levels: dict = field(default_factory=dict)  # column -> set of levels of the rows kept
    train_counts: dict = field(default_factory=dict)  # column -> Counter of levels in the train rows kept
    problems: dict = field(default_factory=dict)

    def merge(self, other: FileSummary) -> FileSummary:
        merged = FileSummary(kept=self.kept + other.kept,
                             split_rows={s: self.split_rows[s] + other.split_rows[s] for s in SPLITS},
                             invalid_train=self.invalid_train + other.invalid_train,
                             invalid=self.invalid + other.invalid, finite=self.finite + other.finite,
                             problems=dict(self.problems))
        for column in {*self.numeric, *other.numeric}:
            parts = [s.numeric[column] for s in (self, other) if column in s.numeric]
            merged.numeric[column] = parts[0] if len(parts) == 1 else parts[0].merge(parts[1])
            merged.whole[column] = self.whole.get(column, True) and other.whole.get(column, True)
        for column in {*self.levels, *other.levels}:
            merged.levels[column] = self.levels.get(column, set()) | other.levels.get(column, set())
            merged.train_counts[column] = self.train_counts.get(column, Counter()) + other.train_counts.get(
                column, Counter())
        add_problems(merged.problems, other.problems)
        return merged


def _filesystem(source: str):
    from pipelines.storage.objects import resolve

    return resolve(source).filesystem


def file_version(job: FileJob) -> tuple:
    """The file's size and modification time (ns; None where the store keeps none)."""
    info = _filesystem(job.source).get_file_info(job.path)
    return info.size, info.mtime_ns


def _check_unchanged(job: FileJob) -> None:
    # each pass reads the file again: statistics of one version and rows of another would make a dataset whose
    # manifest does not describe its shards, and a rewrite need not change the row count
    if job.version is not None and file_version(job) != job.version:
        raise SourceError(f"{job.path} changed while it was being prepared (its size or modification time is "
                          "not what the first pass read); prepare it again once nothing writes to it")


def read_batches(job: FileJob) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of a bounded size; CSV columns as text (numbers are parsed by
    `clean_tabular`, so that an error names its row), Parquet columns as typed. A job that carries the
    `version` an earlier pass read fails with SourceError if the file is another one now, before or after."""
    _check_unchanged(job)
    for frame in _read_batches(job):
        yield _with_partition(frame, job)
    _check_unchanged(job)


def _with_partition(frame: pd.DataFrame, job: FileJob) -> pd.DataFrame:
    """The batch with its file's partition columns after the file's own, as pyarrow and Ray Data add them."""
    for name, value in job.partition:
        if name in frame.columns:
            raise SourceError(f"{job.path}: column {name!r} is both in the file and in its partition folder "
                              f"{name}=…; rename one of them")
        frame[name] = pd.Series(value, index=frame.index, dtype=object if value is None or isinstance(value, str)
                                else type(value))
    return frame


def _read_batches(job: FileJob) -> Iterator[pd.DataFrame]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fs = _filesystem(job.source)
    try:
        if table_format(job.path) == "csv":
            # serial: a file is already the unit of parallelism, a serial read of 1M rows took as long here
            # (0.7 s), and the threaded reader once misread a row across a block boundary of an intact file
            # (30M-row prepare, third pass; not reproduced in 100 reads of that file)
            options = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False, encoding=job.encoding)
            parse = pacsv.ParseOptions(delimiter=job.delimiter or default_delimiter(job.path))
            names = _csv_header(fs, job.path, options, parse)
            # the stream decompresses by the file's suffix (.gz, .bz2, .zst)
            with fs.open_input_stream(job.path) as stream:
                convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True)
                convert.null_values = [*convert.null_values, *job.missing]
                reader = pacsv.open_csv(stream, read_options=options, parse_options=parse, convert_options=convert)
                for batch in reader:
                    if job.thousands:
                        batch = _without_thousands(batch, job.thousands, job.decimal)
                    yield (_decimal_points(batch) if job.decimal == "," else batch).to_pandas()
            return
        with fs.open_input_file(job.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=BATCH_ROWS):
                yield (_missing_as_null(batch, job.missing) if job.missing else batch).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        if isinstance(err, SourceError):
            raise
        # any parser failure is a property of the user's file: name it, never a traceback
        why = str(err).strip().splitlines()[0]
        if "invalid UTF8" in why or isinstance(err, UnicodeDecodeError):
            why += (f"; the file is not {job.encoding} text: save it as UTF-8, or pass --encoding with its encoding "
                    "(e.g. latin-1, cp1252)")
        raise SourceError(f"cannot read {job.path}: {why}") from None


def _missing_as_null(batch: pa.RecordBatch, missing: tuple[str, ...]) -> pa.RecordBatch:
    """A Parquet batch's text values that are one of `missing` as nulls, as the CSV reader's null_values reads
    them: --missing means the same for both."""
    import pyarrow.compute as pc

    marks = pa.array(missing, pa.string())
    return pa.RecordBatch.from_arrays(
        [pc.if_else(pc.is_in(column, value_set=marks.cast(column.type)), pa.scalar(None, column.type), column)
         if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else column
         for column in batch.columns], schema=batch.schema)


def _without_thousands(batch: pa.RecordBatch, separator: str, decimal: str) -> pa.RecordBatch:
    """Numbers grouped by `separator` ("1,234,567.5") without it, by Arrow, in every column; other text (a
    name with a comma, "0,126") is left as it is."""
    import pyarrow.compute as pc

    pattern = grouped_number_pattern(separator, decimal)
    return pa.RecordBatch.from_arrays(
        [pc.if_else(pc.match_substring_regex(column, pattern), pc.replace_substring(column, separator, ""), column)
         for column in batch.columns], schema=batch.schema)


def _decimal_points(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Numbers written with a decimal comma ("-0,126", "3,5e-2") rewritten with a point, by Arrow, in every
    column; text that is not such a number (a name with a comma in it) is left as it is."""
    import pyarrow.compute as pc

    return pa.RecordBatch.from_arrays(
        [pc.replace_substring_regex(column, pattern=r"^\s*([+-]?\d*),(\d+(?:[eE][+-]?\d+)?)\s*$",
                                    replacement=r"\1.\2") for column in batch.columns],
        schema=batch.schema)


def _check_delimiter(job: FileJob) -> None:
    """A CSV separated by something else than the delimiter reads as one column named like 'a;b;c' (or fails on
    the first row with a comma in it): refused naming the separator its header uses — a semicolon is what
    spreadsheets write where the comma is the decimal mark — instead of modelling each line as one text value."""
    if job.delimiter is not None or table_format(job.path) != "csv":
        return
    try:
        with _filesystem(job.source).open_input_stream(job.path) as stream:
            header = stream.read(CSV_HEADER_PROBE_BYTES).decode(job.encoding, errors="replace").splitlines()
    except (pa.ArrowException, OSError) as err:  # not the compression its name says (the reads name it as such)
        raise SourceError(f"cannot read {job.path}: {str(err).strip().splitlines()[0]}") from None
    expected = default_delimiter(job.path)
    if not header or expected in header[0]:
        return
    for separator in (";", "\t", "|", ","):
        if separator in header[0]:
            raise SourceError(f"{job.path}: the header {header[0][:80]!r} has no {expected!r} but {separator!r}: the "
                              f"file looks separated by {separator!r}; pass --delimiter {separator!r}")


def _csv_header(fs, path: str, options, parse) -> list[str]:
    """The CSV's column names, as pyarrow reads them: from a small first block (opening the reader parses one
    block), or from a block as large as the reads when the header does not fit in the small one."""
    import pyarrow.csv as pacsv

    def names(block_size: int) -> list[str]:
        with fs.open_input_stream(path) as stream:
            return pacsv.open_csv(stream, parse_options=parse, read_options=pacsv.ReadOptions(
                block_size=block_size, use_threads=False, encoding=options.encoding)).schema.names

    if CSV_HEADER_PROBE_BYTES < options.block_size:
        try:
            return names(CSV_HEADER_PROBE_BYTES)
        except pa.ArrowInvalid:
            pass  # a header wider than the probe (or no header: the full read says so)
    return names(options.block_size)


def _row_ids(frame: pd.DataFrame, id_column: Optional[str], start: int) -> np.ndarray:
    if id_column:
        return frame[id_column].astype(str).to_numpy(dtype=object)
    return np.array([str(i) for i in range(start, start + len(frame))], dtype=object)


def _features(frame: pd.DataFrame, config: PrepareConfig) -> pd.DataFrame:
    return frame.drop(columns=[c for c in (config.id_column, config.label_column) if c])


def profile_file(job: FileJob, config: PrepareConfig) -> FileProfile:
    version = file_version(job)
    _check_delimiter(job)  # the first pass only: it reads the file's first block once more
    rows, columns, profiles, hashes, label_type = 0, None, {}, [], None
    for frame in read_batches(job):
        if columns is None:
            columns = list(frame.columns)
            check_column_names(columns, job.path)
            if not set(c for c in (config.id_column, config.label_column) if c) <= set(columns):
                break  # the driver names the missing column, once, for the whole source
        for name, series in _features(frame, config).items():
            profile = ColumnProfile.of(series)
            profiles[name] = profiles[name].merge(profile) if name in profiles else profile
        if config.id_column:
            ids = frame[config.id_column].astype(str).to_numpy(dtype=object)
            hashes.append(np.stack([pd.util.hash_array(ids, hash_key=key) for key in _ID_HASH_KEYS], axis=1))
        if config.label_column:
            batch_type = arrow_column(frame[config.label_column].to_numpy()).type
            label_type = batch_type if label_type is None else pa.unify_schemas(
                [pa.schema([("label", label_type)]), pa.schema([("label", batch_type)])],
                promote_options="permissive").field("label").type
        rows += len(frame)
    if columns is None:
        raise SourceError(f"cannot read {job.path}: it has no header row")
    return FileProfile(version, rows, columns, profiles, np.concatenate(hashes) if hashes else None, label_type)


def duplicate_id_hashes(profiles: list[FileProfile]) -> tuple[set[tuple[int, int]], int]:
    """The hashes of ids that appear more than once, and how many rows repeat an id of an earlier row."""
    hashes = np.concatenate([p.id_hashes for p in profiles if p.id_hashes is not None])
    # sorted by the first hash, then only the rows whose first hash repeats compared whole: a few arrays of
    # 8 bytes a row, where np.unique(axis=0) would copy and sort the pairs
    order = np.argsort(hashes[:, 0])
    first = hashes[order, 0]
    ties = np.flatnonzero(first[1:] == first[:-1])
    candidates = hashes[np.unique(np.concatenate([order[ties], order[ties + 1]]))]
    unique, counts = np.unique(candidates, axis=0, return_counts=True)
    return {tuple(int(v) for v in row) for row in unique[counts > 1]}, int(np.sum(counts - 1))


def first_duplicate_id(jobs: list[FileJob], config: PrepareConfig, duplicates: set[tuple[int, int]]) -> str:
    """The first id that repeats an earlier one, read again from the files (only when there is one)."""
    seen = set()
    for job in jobs:
        for frame in read_batches(job):
            ids = frame[config.id_column].astype(str).to_numpy(dtype=object)
            pairs = np.stack([pd.util.hash_array(ids, hash_key=key) for key in _ID_HASH_KEYS], axis=1)
            for row_id, pair in zip(ids, map(tuple, pairs.tolist())):
                if pair in duplicates:
                    if pair in seen:
                        return row_id
                    seen.add(pair)
    raise AssertionError("duplicate id hashes without a duplicate id")  # pragma: no cover


def _blocks(job: FileJob, plan: FilePlan, count: Optional[Callable[[int], None]]
            ) -> Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame, SourceTable]]:
    """(row ids, splits, the batch, the batch's features as a SourceTable) per batch of the file; `count` hears
    the rows of each batch done (the job's progress)."""
    config, start = plan.config, job.offset
    for frame in read_batches(job):
        ids = _row_ids(frame, config.id_column, start)
        start += len(frame)
        splits = assign_splits(ids, config.split)
        block = SourceTable("tabular", config.source, ids, table=_features(frame, config).reset_index(drop=True))
        yield ids, splits, frame, block
        if count is not None:  # the consumer is done with the batch
            count(len(frame))


def summarize_file(job: FileJob, plan: FilePlan, count: Optional[Callable[[int], None]] = None) -> FileSummary:
    config, summary, problems = plan.config, FileSummary(), {}
    # the kept values of each sampled column, joined once at the end: merging them batch by batch copied
    # the growing sample at every batch (quadratic in the batches of a file)
    samples: dict[str, list[np.ndarray]] = {column: [] for column in plan.sampled}
    for ids, splits, _, block in _blocks(job, plan, count):
        table, keep = clean_tabular(block, plan.numeric, plan.categorical, splits, config.impute, fill={},
                                    problems=problems)
        train = (splits == "train") & keep
        sampled = row_units(ids, "sample") < plan.sample_rate if plan.sample_rate < 1 else None
        part = FileSummary(kept=int(keep.sum()), split_rows={s: int(np.sum(splits[keep] == s)) for s in SPLITS})
        for column in plan.numeric:
            values = table[column].to_numpy()
            finite = np.isfinite(values)
            chosen = train & finite
            rate = plan.sample_rate if column in plan.sampled else 0.0  # 0: only the moments, no values kept
            if column in plan.sampled:
                samples[column].append(values[chosen] if sampled is None else values[chosen & sampled])
            part.numeric[column] = NumericSummary.of(values[chosen], sample=np.empty(0), sample_rate=rate)
            part.invalid_train[column] = int(np.sum(train & ~finite))
            part.invalid[column] = int(np.sum(~finite))
            part.finite[column] = int(finite.sum())
            part.whole[column] = bool(np.all(np.mod(values[finite], 1) == 0))
        for column in plan.categorical:
            values = table[column].to_numpy()
            part.levels[column] = set(values[keep].tolist())
            part.train_counts[column] = Counter(values[train].tolist())
        summary = summary.merge(part)
    for column, pieces in samples.items():
        if column in summary.numeric:
            summary.numeric[column].sample = np.concatenate([summary.numeric[column].sample, *pieces])
    summary.problems = problems
    return summary


@dataclass(frozen=True)
class ShardTarget:
    prefix: str  # the dataset's URI
    names: tuple[str, ...]  # the shard names a run of files writes, in order
    rows_per_shard: int


# Parquet writes a list column (an image tensor) with a definition and a repetition level per value, all of a
# row group at once: a 5,000-row group of 64x64 RGB images (60 MB) took ~650 MB to write, 256-row groups
# ~170 MB (measured, pyarrow 26). Row groups of a list column are cut to about this many value bytes.
NESTED_ROW_GROUP_BYTES = 8 * 2**20


def row_group_rows(table: pa.Table) -> Optional[int]:
    """Rows per Parquet row group: the whole shard for flat columns, fewer where a column is a list."""
    def nested(kind: pa.DataType) -> bool:
        kind = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
        return pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind)

    if table.num_rows == 0 or not any(nested(field.type) for field in table.schema):
        return None
    return max(1, NESTED_ROW_GROUP_BYTES * table.num_rows // max(1, table.nbytes))


def encode_shard(table: pa.Table, name: str) -> tuple[bytes, ShardInfo]:
    """A shard's Parquet bytes and the manifest's record of them (rows, size, SHA-256)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=row_group_rows(table))
    data = buffer.getvalue()
    return data, ShardInfo(key=name, rows=table.num_rows, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _shard(table: pa.Table, prefix: str, name: str) -> ShardInfo:
    from pipelines.storage.objects import join_uri, write_bytes

    data, shard = encode_shard(table, name)
    write_bytes(join_uri(prefix, name), data)
    return shard


def write_files(jobs: Sequence[FileJob], target: ShardTarget, plan: FilePlan, fill: dict[str, float],
                count: Optional[Callable[[int], None]] = None) -> list[ShardInfo]:
    """The rows of consecutive files (`shard_groups`) written as the shards `target` names, in order."""
    config, pending, shards = plan.config, [], []
    for job in jobs:
        for ids, splits, frame, block in _blocks(job, plan, count):
            table, keep = clean_tabular(block, plan.numeric, plan.categorical, splits, config.impute, fill=fill,
                                        problems={})
            columns = {"row_id": pa.array(ids[keep].astype(str).tolist(), type=pa.string()),
                       "split": pa.array(splits[keep].tolist(), type=pa.string())}
            if config.label_column:
                columns[config.label_column] = arrow_column(
                    frame[config.label_column].to_numpy()[keep]).cast(plan.label_type)
            for column in table.columns:
                columns[column] = arrow_column(table[column].to_numpy()[keep])
            pending.append(pa.table(columns))
            while sum(t.num_rows for t in pending) >= target.rows_per_shard:
                rows = pa.concat_tables(pending)
                shards.append(_shard(rows.slice(0, target.rows_per_shard), target.prefix,
                                     target.names[len(shards)]))
                pending = [rows.slice(target.rows_per_shard)]
    rest = pa.concat_tables(pending) if pending else None
    if rest is not None and rest.num_rows:
        shards.append(_shard(rest, target.prefix, target.names[len(shards)]))
    if len(shards) != len(target.names):  # the rows kept changed between the passes: a file changed
        paths = jobs[0].path + (f" (or one of the {len(jobs) - 1} files after it)" if len(jobs) > 1 else "")
        raise SourceError(f"{paths} changed while it was being prepared ({len(shards)} shards written, "
                          f"{len(target.names)} expected); prepare it again")
    return shards


def shard_groups(kept: list[int], rows_per_shard: int) -> list[tuple[list[int], int]]:
    """The write pass's work: runs of consecutive files (their indexes), each with the shards it writes. Small
    files share one shard, as many as fit in it; a file of a shard or more is a run of its own. A source of
    thousands of small files (a streaming sink's) was a shard per file, and every read of the dataset paid for
    each."""
    groups, run, rows = [], [], 0
    for index, kept_rows in enumerate(kept):
        if run and rows + kept_rows > rows_per_shard:
            groups.append((run, math.ceil(rows / rows_per_shard)))
            run, rows = [], 0
        run.append(index)
        rows += kept_rows
    if run:
        groups.append((run, math.ceil(rows / rows_per_shard)))
    return groups


def sample_rate(train_rows: int) -> float:
    """The share of train rows whose values are kept for quantiles and medians: all up to SAMPLE_ROWS."""
    return 1.0 if train_rows <= SAMPLE_ROWS else SAMPLE_ROWS / train_rows
