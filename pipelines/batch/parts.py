"""A batch verb's output as Parquet parts of its commit's attempt, each one recorded as its writer reports
it (`OutputCommit.record`) — from Ray Data's write tasks (`write_parts`) or from this process
(`write_local_parts`) — and errors from inside Ray tasks turned back into messages for people."""
from __future__ import annotations

from typing import Iterable, Optional

import pyarrow as pa

from pipelines.datasets.reader import arrow_table
from pipelines.errors import UserError


def _attempt_parquet_sink(path: str, filesystem, attempt_id: str):
    from ray.data import Datasink

    class AttemptParquetSink(Datasink):
        """One Parquet file per write task, `part-<attempt>-<task>.parquet` directly under `path`.

        A retried task rewrites its own file (never a second copy). Each task returns the name and
        size of what it wrote, and the driver keeps that list (`written`): the commit lists exactly
        these files, whatever else appears under the prefix."""

        def __init__(self):
            self.written: list[tuple[str, int]] = []

        def write(self, blocks, ctx) -> list[tuple[str, int]]:
            import pyarrow as pa
            import pyarrow.parquet as pq
            from ray.data.block import BlockAccessor

            tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
            tables = [table for table in tables if table.num_rows]
            if not tables:
                return []
            table = pa.concat_tables(tables, promote_options="default")
            name = f"part-{attempt_id}-{ctx.task_idx:06d}.parquet"
            # pyarrow reports an upload error only at close(): the `with` makes it raise here
            with filesystem.open_output_stream(f"{path}/{name}") as stream:
                pq.write_table(table, stream, compression="zstd")
                size = stream.tell()
            return [(name, size)]

        def on_write_complete(self, write_result) -> None:
            self.written = [item for task in write_result.write_returns for item in (task or [])]

    return AttemptParquetSink()


def write_parts(dataset, commit) -> None:
    """Run the dataset and write it as Parquet parts of `commit`'s attempt under its prefix, recording
    each part the writers report (`OutputCommit.record`).

    An error meant for a person raised inside a Ray task (bad rows, a schema mismatch, storage that
    went away) is re-raised here as itself, not as Ray's wrapped task error.
    """
    from pipelines.storage.objects import resolve

    location = resolve(commit.prefix_uri)
    sink = _attempt_parquet_sink(location.path, location.filesystem, commit.attempt_id)
    try:
        dataset.write_datasink(sink)
    except Exception as err:  # Ray wraps task errors in its own exception types
        for_people = error_for_people(err, commit.prefix_uri)
        if for_people is None:
            raise
        raise for_people from None
    commit.record([name for name, _ in sink.written], [size for _, size in sink.written])


# Rows per part written in this process: a part a reader can hold in memory, and few enough parts that a
# 2M-row output is not hundreds of small objects (Ray Data writes one part per write task instead).
LOCAL_ROWS_PER_PART = 1 << 20


def write_local_parts(batches: Iterable[dict], commit, rows_per_part: int = LOCAL_ROWS_PER_PART) -> None:
    """Write output batches computed in this process as Parquet parts of `commit`'s attempt
    (`part-<attempt>-<n>.parquet`, a new one every `rows_per_part` rows) and record each with the size written,
    as Ray Data's write tasks report theirs."""
    import pyarrow.parquet as pq

    from pipelines.storage.objects import resolve

    location = resolve(commit.prefix_uri)
    names, sizes = [], []
    stream = writer = None
    rows_in_part = 0
    try:
        for batch in batches:
            table = arrow_table(batch)
            if not table.num_rows:
                continue
            if writer is None:
                names.append(f"part-{commit.attempt_id}-{len(names):06d}.parquet")
                stream = location.filesystem.open_output_stream(f"{location.path}/{names[-1]}")
                writer = pq.ParquetWriter(stream, table.schema, compression="zstd")
            writer.write_table(table)
            rows_in_part += table.num_rows
            if rows_in_part >= rows_per_part:
                writer.close()
                sizes.append(stream.tell())
                # pyarrow reports an upload error only at close(): it raises here, before the part is recorded
                stream.close()
                stream = writer = None
                rows_in_part = 0
        if writer is not None:
            writer.close()
            sizes.append(stream.tell())
            stream.close()
            stream = writer = None
    finally:
        if stream is not None:  # an error mid-part: the part is left unrecorded, and the commit never lists it
            try:
                stream.close()
            except OSError:
                pass  # the error that got us here is the one to report
    commit.record(names, sizes)


def error_for_people(err: BaseException, prefix: str) -> Optional[UserError]:
    """What a person should read for an error raised inside a Ray task while writing under `prefix`: the
    UserError it wraps (its message alone, without Ray's traceback) or the storage failure; None otherwise."""
    cause = user_error_in(err)
    if cause is not None:
        return type(cause)(str(cause).strip().splitlines()[-1])
    return storage_error_in(err, prefix)


def storage_error_in(err: BaseException, prefix: str) -> Optional[UserError]:
    """A StorageError for an I/O failure of pyarrow or the network somewhere in a Ray task error's
    cause chain (the store went away, a bucket was removed), naming the output; None otherwise."""
    from pipelines.redaction import redact
    from pipelines.storage.objects import S3Settings, StorageError

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError):
            detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            where = f" at {S3Settings.from_env().endpoint_label}" if prefix.startswith("s3://") else ""
            return StorageError(f"cannot write {prefix}{where}: {redact(detail)}; nothing was committed -- "
                                "re-run the job when storage is reachable")
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def user_error_in(err: BaseException) -> Optional[UserError]:
    """The first UserError in an exception's cause chain (Ray nests task errors two or three deep)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, UserError):
            return err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def read_attempt_parts(commit, columns: Optional[list[str]] = None, limit: Optional[int] = None) -> pa.Table:
    """This attempt's recorded Parquet parts as one table, before the commit: what a summary is computed from.
    With `limit`, the first `limit` rows in part order (parts after those are not read)."""
    uris = [uri for uri in commit.recorded_uris if uri.endswith(".parquet")]
    if not uris:
        return pa.table({name: pa.array([], type=pa.float64()) for name in columns or ()})
    return read_parquet_parts(commit.prefix_uri, uris, columns, limit)


def read_committed_parts(prefix: str, columns: Optional[list[str]] = None, limit: Optional[int] = None) -> pa.Table:
    """The Parquet parts a committed output's `_SUCCESS` lists, as one table (`limit` as in read_attempt_parts)."""
    from pipelines.storage.commit import list_committed_parts

    return read_parquet_parts(prefix, list_committed_parts(prefix), columns, limit)


def read_parquet_parts(prefix: str, uris: list[str], columns: Optional[list[str]] = None,
                       limit: Optional[int] = None) -> pa.Table:
    import pyarrow.parquet as pq

    from pipelines.storage.objects import resolve

    location = resolve(prefix)
    tables, rows = [], 0
    for uri in uris:
        if limit is not None and rows >= limit:
            break
        tables.append(pq.read_table(resolve(uri).path, columns=columns, filesystem=location.filesystem))
        rows += tables[-1].num_rows
    table = pa.concat_tables(tables)
    return table if limit is None else table.slice(0, limit)
