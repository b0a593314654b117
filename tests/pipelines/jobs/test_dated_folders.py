"""Input laid out by day, as a scheduled job writes it (`events/date=2026-12-01/part-0.csv`): the history
trains a model, and each new day's folder, prepared alone, is scored by `vaepipe nightly`. The folder's date
was a feature (one level per day), so the next day's folder — which has no such column — was refused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest
from pipelines.datasets.sources import date_partitions
from pipelines.storage.commit import is_complete, list_committed_parts
from pipelines.storage.layout import dataset_uri

DAYS = ("2026-12-01", "2026-12-02", "2026-12-03")


def write_day(root, day: str, rows: int = 300, seed: int = 0, folder: str = "date") -> None:
    rng = np.random.default_rng(seed)
    part = root / f"{folder}={day}"
    part.mkdir(parents=True)
    pd.DataFrame({"id": [f"{day}-{i}" for i in range(rows)], "amount": rng.lognormal(3, 1, rows),
                  "items": rng.integers(1, 9, rows), "region": rng.choice(["north", "south", "east"], rows)},
                 ).to_csv(part / "part-0.csv", index=False)


@pytest.mark.parametrize("values, dates", [
    (["2026-12-01", "2026-12-02"], True), ([20261201, 20261202], True), (["2026-12-01T02:00:00", None], True),
    (["north", "south"], False), ([2024, 2025], False), ([1.5, 2.5], False), (["2026-12-01", "later"], False),
    ([None, None], False), (["20261301"], False)])
def test_a_partition_is_a_date_when_every_value_is_one(values, dates):
    assert date_partitions([(("day", value), ("region", "north")) for value in values]) == (["day"] if dates else [])


@pytest.mark.slow  # trains a model: ~4 s
def test_a_new_days_folder_prepared_alone_is_scored_by_the_model_the_history_trained(tmp_path, capsys):
    history, storage = tmp_path / "events", str(tmp_path / "store")
    for seed, day in enumerate(DAYS):
        write_day(history, day, seed=seed)
    write_day(tmp_path / "incoming", "2026-12-04", seed=9)
    flags = ["--storage", storage]
    assert main(["prepare", str(history), "--name", "events", "--id-column", "id", *flags]) == 0
    assert "date=…: the date the rows belong to, not a feature" in capsys.readouterr().out
    assert load_manifest(dataset_uri(storage, "events")).feature_columns == ["amount", "items", "region"]
    (tmp_path / "train.yaml").write_text("name: events\ndataset: events\ntrain:\n  epochs: 3\n")
    assert main(["train", str(tmp_path / "train.yaml"), "--engine", "local", *flags]) == 0
    assert main(["promote", "events@1", *flags]) == 0

    # the next day, as a nightly job sees it: one dated folder, prepared as the dataset events-<date>
    assert main(["prepare", str(tmp_path / "incoming" / "date=2026-12-04"), "--name", "events-2026-12-04",
                 "--id-column", "id", *flags]) == 0
    (tmp_path / "nightly.yaml").write_text("model: events\ninput: events-{date}\n")
    capsys.readouterr()
    assert main(["nightly", str(tmp_path / "nightly.yaml"), "--date", "2026-12-04", "--engine", "local", *flags]) == 0
    scores = f"{storage}/scores/events-v1/events/2026-12-04"
    assert is_complete(scores)
    summary = json.loads((tmp_path / "store" / "scores" / "events-v1" / "events" / "2026-12-04" /
                          "_summary.json").read_text())
    assert summary["rows"] == 300 and list_committed_parts(scores)


def test_a_date_folder_named_as_a_column_is_kept_and_other_folders_are_features(tmp_path):
    history, storage = tmp_path / "events", str(tmp_path / "store")
    for seed, day in enumerate(("20261201", "20261202")):
        write_day(history, day, seed=seed, folder="dt")
    assert main(["prepare", str(history), "--name", "plain", "--id-column", "id", "--storage", storage]) == 0
    assert "dt" not in load_manifest(dataset_uri(storage, "plain")).feature_columns
    assert main(["prepare", str(history), "--name", "named", "--id-column", "id", "--categorical", "dt",
                 "--storage", storage]) == 0
    manifest = load_manifest(dataset_uri(storage, "named"))
    assert manifest.feature_columns[-1] == "dt"
    assert [c.levels for c in manifest.categorical if c.name == "dt"] == [["20261201", "20261202"]]
