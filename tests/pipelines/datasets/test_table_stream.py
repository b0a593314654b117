"""CSV/Parquet sources prepare block by block (bounded memory) into what the in-memory path makes of the same
rows: roles, statistics, levels, splits, errors. Real tables shipped in packages (statsmodels' Fair survey,
scikit-learn's breast cancer), split into several files and read in small batches, so that every statistic is
merged across batches and files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipelines.datasets import column_stats, table_stream
from pipelines.datasets.column_stats import Moments, NumericSummary
from pipelines.datasets.manifest import MISSING_LEVEL
from pipelines.datasets.preparation import PrepareConfig, prepare_in_memory, text_levels_dtype
from pipelines.datasets.sources import SourceError, SourceTable
from pipelines.jobs.prepare import prepare_dataset
from pipelines.storage.commit import read_success


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of a few hundred rows, so that a file of a few thousand is many blocks."""
    monkeypatch.setattr(table_stream, "BATCH_ROWS", 300)
    monkeypatch.setattr(table_stream, "CSV_BLOCK_BYTES", 8 << 10)


def _fair() -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.fair.load_pandas().data
    raw.insert(0, "respondent", [f"r{i:05d}" for i in range(len(raw))])
    raw["occupation"] = raw["occupation"].astype(int).map(lambda v: f"occ{v}")
    return raw


def _events() -> pd.DataFrame:
    """A generated table of the column kinds real event tables have: timestamps with a time zone, dates,
    durations and booleans beside numbers and text."""
    rng = np.random.default_rng(0)
    n = 3000
    moments = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, 10**8, n)), unit="s")
    return pd.DataFrame({"at": moments.tz_convert("America/New_York"), "day": [m.date() for m in moments],
                         "took": pd.to_timedelta(rng.exponential(300, n).round(), unit="s"),
                         "paid": rng.random(n) < 0.3, "amount": rng.lognormal(3, 1, n),
                         "channel": rng.choice(["web", "shop", "phone"], n)})


FAIR_FEATURES = ["respondent", "rate_marriage", "age", "yrs_married", "children", "religious", "educ", "occupation",
                 "occupation_husb"]


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    data.columns = [c.replace(" ", "_") for c in data.columns]
    return data


def _write(frame: pd.DataFrame, folder: Path, fmt: str, files: int = 3) -> str:
    folder.mkdir(parents=True)
    for index, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        piece = frame.iloc[part]
        if fmt == "csv":
            piece.to_csv(folder / f"part-{index}.csv", index=False)
        else:
            pq.write_table(pa.Table.from_pandas(piece, preserve_index=False), folder / f"part-{index}.parquet")
    return str(folder)


def _read_whole(folder: str, fmt: str) -> pd.DataFrame:
    """The source read whole, as the in-memory loader read files: CSV columns as text, Parquet typed."""
    frames = []
    for path in sorted(Path(folder).iterdir()):
        if fmt == "csv":
            names = pacsv.read_csv(path).column_names
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True))
        else:
            table = pq.read_table(path)
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True)


def _in_memory(config: PrepareConfig, fmt: str):
    whole = _read_whole(config.source, fmt)
    ids = (whole.pop(config.id_column).astype(str).to_numpy(dtype=object) if config.id_column
           else np.array([str(i) for i in range(len(whole))], dtype=object))
    labels = whole.pop(config.label_column).to_numpy() if config.label_column else None
    source = SourceTable("tabular", config.source, ids, labels=labels, table=whole, label_name=config.label_column)
    return prepare_in_memory(source, config)


def _same(streamed, expected, path=""):
    """Equal, floats to 1e-9 relative (sums merged in another order differ in the last bits)."""
    if isinstance(expected, float) and isinstance(streamed, float):
        # math, not pytest.approx: a column's rows are compared one value at a time (approx cost most of the test)
        both_nan = math.isnan(streamed) and math.isnan(expected)
        assert both_nan or math.isclose(streamed, expected, rel_tol=1e-9, abs_tol=1e-12), (path, streamed, expected)
    elif isinstance(expected, dict):
        assert set(streamed) == set(expected), path
        for key in expected:
            _same(streamed[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(streamed) == len(expected), path
        for index, (a, b) in enumerate(zip(streamed, expected)):
            _same(a, b, f"{path}[{index}]")
    else:
        assert streamed == expected, path


def _dataset_rows(root: str, name: str) -> pa.Table:
    prefix = f"{root}/datasets/{name}"
    parts = [pq.read_table(f"{prefix}/{part['key']}") for part in read_success(prefix)["parts"]]
    return pa.concat_tables(parts).sort_by("row_id")


CASES = {
    # real tables, with holes punched in them where imputation is tested
    "fair-csv-median": (_fair, "csv", dict(id_column="respondent", label_column="affairs", impute="median")),
    "fair-parquet-mean-quantile": (_fair, "parquet", dict(id_column="respondent", impute="mean",
                                                          transform="quantile")),
    # no id column: row numbers are the ids, and the respondent column (an identifier) is left out
    "fair-parquet-keep-quantile": (_fair, "parquet", dict(id_column="respondent", impute="keep", transform="quantile")),
    "fair-csv-keep": (_fair, "csv", dict(id_column="respondent", impute="keep")),
    "fair-csv-drop": (_fair, "csv", dict(label_column="affairs", impute="drop", categorical=["children"],
                                         columns=[c for c in FAIR_FEATURES if c != "respondent"])),
    "breast_cancer-csv": (_breast_cancer, "csv", dict(label_column="target")),
    "events-parquet": (_events, "parquet", dict()),
    "breast_cancer-parquet-quantile": (_breast_cancer, "parquet", dict(transform="quantile",
                                                                       columns=["mean_radius", "worst_area"])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_prefix_prepared_block_by_block_matches_the_in_memory_dataset(case, tmp_path, small_batches):
    load, fmt, options = CASES[case]
    frame = load()
    if options.get("impute") in ("mean", "median", "drop", "keep"):
        rng = np.random.default_rng(0)
        for column in ("age", "yrs_married", "occupation"):
            frame[column] = frame[column].astype(object)
            frame.loc[rng.choice(len(frame), 40, replace=False), column] = None
    source = _write(frame, tmp_path / "source", fmt)
    root = str(tmp_path / "store")
    config = PrepareConfig(name="streamed", source=source, storage=root, rows_per_shard=1000, engine="local",
                           **options)
    streamed = prepare_dataset(config, progress=lambda _: None)
    expected, rows = _in_memory(config, fmt)
    if fmt == "csv":  # files only: a code column read as CSV text has read_csv's dtype (a DataFrame's text stays)
        expected = expected.model_copy(update={"categorical": [
            column.model_copy(update={"dtype": text_levels_dtype(column.levels) or column.dtype})
            for column in expected.categorical]})

    ignore = {"shards", "created_at", "fingerprint"}
    _same(streamed.model_dump(mode="json", exclude=ignore), expected.model_dump(mode="json", exclude=ignore))
    written = _dataset_rows(root, "streamed")
    assert written.num_rows == rows.num_rows == streamed.rows
    assert written.schema.names == rows.schema.names
    expected_rows = rows.sort_by("row_id")
    if options.get("impute") == "keep":  # the holes stay: NaN in the numeric columns, the gap's level in the other
        assert [c.name for c in streamed.numeric if c.gaps] == ["age", "yrs_married"]
        assert np.isnan(written.column("age").to_numpy()).sum() == 40
        assert written.column("occupation").to_pylist().count(MISSING_LEVEL) == 40
    for column in written.schema.names:
        # an imputed mean is a merged sum: equal to the last bits
        _same(written.column(column).to_pylist(), expected_rows.column(column).to_pylist(), column)
    # shards never span files: each of the 3 files ends with a shard of its own
    assert all(shard.rows <= 1000 for shard in streamed.shards)
    assert math.ceil(streamed.rows / 1000) <= len(streamed.shards) <= math.ceil(streamed.rows / 1000) + 2


def test_a_source_of_many_small_files_shares_full_shards_and_holds_the_same_rows(tmp_path):
    """90 files of 6 rows (a streaming sink's output) made 90 shards of 6 rows; now 9 of 60 rows each."""
    frame = _fair().iloc[:540]
    sink = tmp_path / "sink"
    sink.mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(frame)), 90)):
        frame.iloc[part].to_csv(sink / f"part-{index:04d}.csv", index=False)
    root = str(tmp_path / "store")
    made = {name: prepare_dataset(PrepareConfig(name=name, source=source, storage=root, rows_per_shard=64,
                                                engine="local", id_column="respondent"), progress=lambda _: None)
            for name, source in (("sink", str(sink)), ("three", _write(frame, tmp_path / "three", "csv")))}
    shards = [shard.rows for shard in made["sink"].shards]
    # as many 6-row files as fit in 64 rows share a shard: 10 files, 60 rows
    assert shards == [60] * 9
    ignore = {"shards", "created_at", "fingerprint", "source", "name"}
    _same(made["sink"].model_dump(mode="json", exclude=ignore), made["three"].model_dump(mode="json", exclude=ignore))
    sink_rows, three_rows = (_dataset_rows(root, name).sort_by("row_id") for name in ("sink", "three"))
    assert sink_rows.equals(three_rows)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_with_the_same_columns_in_another_order_are_read_by_name(tmp_path, fmt):
    """Two exports of one table with their columns in another order were refused; read by name, as
    pandas.concat and pyarrow.dataset read them, they make the dataset one order makes."""
    frame = _fair().iloc[:1200]
    source = _write(frame, tmp_path / "source", fmt, files=2)
    part = next(Path(source).glob("part-1.*"))
    shuffled = frame.iloc[600:][list(reversed(frame.columns))]
    shuffled.to_csv(part, index=False) if fmt == "csv" else shuffled.to_parquet(part, index=False)
    root = str(tmp_path / "store")
    made = {name: prepare_dataset(PrepareConfig(name=name, source=folder, storage=root, engine="local",
                                                id_column="respondent"), progress=lambda _: None)
            for name, folder in (("mixed", source), ("plain", _write(frame, tmp_path / "plain", fmt, files=2)))}
    ignore = {"shards", "created_at", "fingerprint", "source", "name"}
    _same(made["mixed"].model_dump(mode="json", exclude=ignore), made["plain"].model_dump(mode="json", exclude=ignore))
    assert _dataset_rows(root, "mixed").equals(_dataset_rows(root, "plain"))
    frame.iloc[600:].drop(columns=["age"]).to_csv(part, index=False) if fmt == "csv" else \
        frame.iloc[600:].drop(columns=["age"]).to_parquet(part, index=False)
    with pytest.raises(SourceError, match=r"part-1.*it lacks \['age'\]"):
        prepare_dataset(PrepareConfig(name="short", source=source, storage=root, engine="local",
                                      id_column="respondent"))


@pytest.mark.parametrize("fault", ["duplicate id", "not a number", "missing value"])
def test_a_bad_row_in_a_later_file_is_named_with_the_whole_source_count(fault, tmp_path, small_batches):
    frame = _fair().iloc[:3000].copy()
    frame["age"] = frame["age"].astype(object)
    if fault == "duplicate id":
        frame.loc[[2500, 2900], "respondent"] = ["r00007", "r00011"]
    elif fault == "not a number":
        frame.loc[[2100, 2700], "age"] = "unknown"
    else:
        frame.loc[[2200, 2800], "age"] = None
    source = _write(frame, tmp_path / "source", "csv")
    config = PrepareConfig(name="bad", source=source, storage=str(tmp_path / "store"), id_column="respondent",
                           engine="local")
    with pytest.raises(SourceError) as streamed:
        prepare_dataset(config, progress=lambda _: None)
    with pytest.raises(SourceError) as expected:
        _in_memory(config, "csv")
    assert str(streamed.value) == str(expected.value)
    assert {"duplicate id": "id 'r00007' appears more than once (2 duplicate ids)",
            "not a number": "row 'r02100' has non-numeric value 'unknown' (2 such rows)",
            "missing value": "has 2 NaN/inf value(s), first at row 'r02200'"}[fault] in str(streamed.value)
    assert not (tmp_path / "store" / "datasets" / "bad").exists()  # checked whole before anything is written


@pytest.mark.reliability("concurrency")
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("rewritten_before", ["summarize_file", "write_files"])
def test_a_file_rewritten_between_passes_with_as_many_rows_is_refused_and_nothing_is_committed(
        fmt, rewritten_before, tmp_path, monkeypatch):
    # another job overwrites a file of the source while prepare reads it three times: same rows, other values
    frame = _fair().iloc[:1500]
    source = _write(frame, tmp_path / "source", fmt)
    changed = next(path for path in sorted(Path(source).iterdir()) if path.stem == "part-1")
    edited = frame.iloc[500:1000].assign(age=frame["age"].iloc[500:1000] + 40)

    rewritten = []

    def rewrite_then(original):
        def run(job, *args, **kwargs):
            paths = [one.path for one in (job if isinstance(job, list) else [job])]
            if any(path.endswith(changed.name) for path in paths) and not rewritten:
                rewritten.append(changed)
                if fmt == "csv":
                    edited.to_csv(changed, index=False)
                else:
                    pq.write_table(pa.Table.from_pandas(edited, preserve_index=False), changed)
            return original(job, *args, **kwargs)
        return run

    monkeypatch.setattr(table_stream, rewritten_before, rewrite_then(getattr(table_stream, rewritten_before)))
    storage = str(tmp_path / "store")
    config = PrepareConfig(name="moving", source=source, storage=storage, id_column="respondent", engine="local")
    with pytest.raises(SourceError, match=rf"{changed}.* changed while it was being prepared"):
        prepare_dataset(config, progress=lambda _: None)
    assert not (Path(storage) / "datasets" / "moving" / "_SUCCESS").exists()
    assert not (Path(storage) / "datasets" / "moving" / "_manifest.json").exists()


def test_summaries_of_pieces_merge_into_the_summary_of_the_whole():
    rng = np.random.default_rng(3)
    # far from zero with a small spread: raw power sums would cancel, central moments do not
    values = np.concatenate([1e9 + rng.normal(size=5000), np.zeros(700)])
    pieces = np.array_split(rng.permutation(values), 7)
    merged = NumericSummary.of(pieces[0])
    for piece in pieces[1:]:
        merged = merged.merge(NumericSummary.of(piece))
    whole = NumericSummary.of(values)
    # (the log of values near 1e9 varies below float resolution: log moments are checked on another column)
    skewed = rng.lognormal(2, 1, 4000)
    merged_log = NumericSummary.of(skewed[:1000]).merge(NumericSummary.of(skewed[1000:]))
    pairs = [(merged.values, whole.values), (merged.nonzero, whole.nonzero),
             (merged_log.log_values, NumericSummary.of(skewed).log_values)]
    for a, b in pairs:
        assert a.n == b.n and a.mean == pytest.approx(b.mean, rel=1e-12)
        assert a.std() == pytest.approx(b.std(), rel=1e-9) and a.skewness() == pytest.approx(b.skewness(), abs=1e-6)
    assert (merged.min, merged.max, merged.zeros, merged.integer) == (whole.min, whole.max, whole.zeros, whole.integer)
    assert np.array_equal(np.sort(merged.sample), np.sort(whole.sample))
    # imputation adds copies of one value: the same as summarizing the filled column
    filled = whole.with_copies(2.5, 300)
    direct = NumericSummary.of(np.concatenate([values, np.full(300, 2.5)]))
    assert filled.values.std() == pytest.approx(direct.values.std(), rel=1e-9)
    assert filled.values.skewness() == pytest.approx(direct.values.skewness(), rel=1e-9)
    assert Moments().merge(Moments.of(values[:3])) == Moments.of(values[:3])


def test_a_large_train_split_keeps_a_uniform_sample_for_quantiles_and_medians(tmp_path, monkeypatch):
    monkeypatch.setattr(column_stats, "SAMPLE_ROWS", 2_000)
    monkeypatch.setattr(table_stream, "SAMPLE_ROWS", 2_000)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, 20_000), "score": rng.normal(50, 10, 20_000)})
    frame.loc[rng.choice(20_000, 500, replace=False), "amount"] = np.nan
    source = _write(frame, tmp_path / "source", "parquet")
    config = PrepareConfig(name="sampled", source=source, storage=str(tmp_path / "store"), transform="quantile",
                           impute="median", engine="local")
    streamed = prepare_dataset(config, progress=lambda _: None)
    expected, _ = _in_memory(config, "parquet")
    for got, exact in zip(streamed.numeric, expected.numeric):
        assert got.mean == pytest.approx(exact.mean, rel=0.02)
        # a 2,000-value sample of 16,000 train values: each quantile within a few percent of the exact one
        inner = slice(50, -50)  # the extreme quantiles of a heavy tail move most
        assert np.allclose(got.quantiles[inner], exact.quantiles[inner], rtol=0.1, atol=0.5)
        assert math.isclose(got.min, exact.min) and math.isclose(got.max, exact.max)


def test_on_ray_one_task_per_file_writes_what_this_process_writes(tmp_path, s3_prefix, ray_cluster):
    frame = _fair()
    source = _write(frame, tmp_path / "source", "csv", files=4)
    manifests = {}
    for engine in ("ray", "local"):
        config = PrepareConfig(name=f"by-{engine}", source=source, storage=s3_prefix, id_column="respondent",
                               label_column="affairs", rows_per_shard=700, engine=engine)
        lines: list[str] = []
        manifests[engine] = prepare_dataset(config, progress=lines.append)
        assert lines[0].startswith(f"engine: {engine}"), lines
        # the rows of each pass whose total is known, as a batch job reports them; on Ray also file by file
        for what in ("statistics", "written"):
            assert any(line.startswith(f"{what}: 6,366 / 6,366 rows (100 %)") for line in lines), lines
        assert ("written: 4/4 file(s)" in lines) == (engine == "ray"), lines
    ignore = {"name", "shards", "created_at", "fingerprint"}
    assert manifests["ray"].model_dump(exclude=ignore) == manifests["local"].model_dump(exclude=ignore)
    assert [s.rows for s in manifests["ray"].shards] == [s.rows for s in manifests["local"].shards]
    assert _dataset_rows(s3_prefix, "by-ray").equals(_dataset_rows(s3_prefix, "by-local"))


def test_a_csv_header_wider_than_the_header_probe_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(table_stream, "CSV_HEADER_PROBE_BYTES", 256)
    names = [f"a_rather_long_column_name_{i:03d}" for i in range(40)]  # ~1.2 KB of header
    path = tmp_path / "wide.csv"
    pd.DataFrame([list(range(40))] * 3, columns=names).to_csv(path, index=False)
    (frame,) = table_stream.read_batches(table_stream.FileJob(str(tmp_path), str(path)))
    assert list(frame.columns) == names and len(frame) == 3
    assert frame[names[-1]].tolist() == ["39"] * 3  # CSV columns come as text


def test_timestamps_of_files_in_other_units_are_one_column_in_microseconds(tmp_path):
    """One file stores a timestamp column in microseconds, the next in nanoseconds: the same instants are
    the same numbers in the dataset (they were each file's own unit, 1000x apart)."""
    moments = pd.date_range("2024-01-01", periods=200, freq="D")
    source = tmp_path / "source"
    source.mkdir()
    for index, unit in enumerate(("us", "ns")):
        pd.DataFrame({"at": moments.as_unit(unit), "a": np.arange(200.0)}).to_parquet(source / f"part-{index}.parquet")
    root = str(tmp_path / "store")
    manifest = prepare_dataset(PrepareConfig(name="units", source=str(source), storage=root, engine="local"),
                               progress=lambda _: None)
    written = _dataset_rows(root, "units").to_pandas()
    expected = (moments.as_unit("us").asi8.astype(float))
    for file_rows in (written[written["row_id"].astype(int) < 200], written[written["row_id"].astype(int) >= 200]):
        assert sorted(file_rows["at"]) == sorted(expected[file_rows["row_id"].astype(int) % 200])
    at = next(column for column in manifest.numeric if column.name == "at")
    assert (at.dtype, at.min, at.max) == ("datetime64[ns]", expected.min(), expected.max())
