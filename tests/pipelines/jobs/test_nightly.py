"""`vaepipe nightly`: the promoted model scores the schedule's date once; dated inputs, catch-up of missed
dates, a retry that takes over the lease of an attempt killed on another host, and drift alarms.

The dated inputs are days of the built-in `fair` table's test split (rows the session's `fair_model` never
trained on), prepared as datasets `<series>-<date>`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from pipelines.cli.main import main
from pipelines.storage.commit import LEASE, is_complete, list_committed_parts, read_success
from pipelines.storage.layout import REPORT_INDEX, report_uri, scores_report_id
from pipelines.storage.objects import exists, list_files, read_json
from pipelines.storage.registry import ModelRef, promote
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_nightly_scores_the_date_once_with_the_promoted_model(digits_zero_model, tmp_path, capsys):
    promote(digits_zero_model["storage"], ModelRef.parse(digits_zero_model["model"]))
    config = tmp_path / "nightly.yaml"
    config.write_text("model: zeros\ninput: digits\nsplit: test\ncompute:\n  actors: 2\n  cpus_per_actor: 0.25\n")
    argv = ["nightly", str(config), "--storage", digits_zero_model["storage"], "--date", "2026-11-25"]

    assert main(argv) == 0
    assert is_complete(f"{digits_zero_model['storage']}/scores/zeros-v1/digits/2026-11-25")
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out


# --- dated inputs of the fair table -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fair_days(fair_model, tmp_path_factory):
    """`prepare(name, shift=False)`: a day's input, the fair test split's rows (shifted: Gaussian noise of one
    standard deviation on the 4 numeric columns and one categorical column's values shuffled, 5 of 9), as the
    dataset `name`; returns its row count. The fair model is promoted."""

    from pipelines.datasets.preparation import PrepareConfig, assign_splits
    from pipelines.datasets.sources import load_builtin
    from pipelines.jobs.prepare import prepare_dataset

    storage = fair_model["storage"]
    promote(storage, ModelRef.parse(fair_model["model"]))
    source = load_builtin("fair")
    splits = assign_splits(source.row_ids, PrepareConfig(name="x", source="fair").split)
    test_rows = source.table[splits == "test"].reset_index(drop=True)
    labels = source.labels[splits == "test"]
    folder = tmp_path_factory.mktemp("fair-days")
    rng = np.random.default_rng(18)

    def prepare(name: str, shift: bool = False) -> int:
        rows = test_rows.copy()
        if shift:
            for column in ("age", "yrs_married", "children", "affairs"):
                # clipped at 0: all four are non-negative, and the model refuses a count it reads on a log scale
                # below -1 (a bad-input error, not drift)
                rows[column] = (rows[column] + rng.normal(scale=rows[column].std(), size=len(rows))).clip(lower=0)
            rows["occupation"] = rng.permutation(rows["occupation"].to_numpy())
        rows[source.label_name] = labels
        path = folder / f"{name}.parquet"
        rows.to_parquet(path, index=False)
        prepare_dataset(PrepareConfig(name=name, source=str(path), storage=storage, label_column=source.label_name))
        return len(rows)

    return prepare


def nightly_yaml(tmp_path, series: str, **extra) -> str:
    path = tmp_path / "nightly.yaml"
    lines = ["model: fair", f"input: {series}-{{date}}", "compute:", "  actors: 1", "  cpus_per_actor: 0.25",
             *[f"{key}: {value}" for key, value in extra.items()]]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def scores_prefix(fair_model, series: str, date: str) -> str:
    return f"{fair_model['storage']}/scores/fair-v{fair_model['version']}/{series}/{date}"


def test_catch_up_scores_each_missing_date_once_oldest_first_and_a_second_run_does_nothing(
        fair_model, fair_days, tmp_path, capsys):
    rows = {day: fair_days(f"events-{day}") for day in ("2026-03-01", "2026-03-02", "2026-03-03")}
    # dates and commits are the subject, not the engine: in this process (the other tests here score on Ray)
    config = nightly_yaml(tmp_path, "events", engine="local")
    storage = ["--storage", fair_model["storage"]]
    assert main(["nightly", config, "--date", "2026-03-02", *storage]) == 0  # one date already scored
    before = read_success(scores_prefix(fair_model, "events", "2026-03-02"))
    capsys.readouterr()

    # 2026-02-28 has no input; the run's date, 2026-03-03, is the last
    assert main(["nightly", config, "--date", "2026-03-03", "--since", "2026-02-28", *storage]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("  2026-")] == [
        ["2026-02-28", "missing"], ["2026-03-01", "scored"], ["2026-03-02", "already"], ["2026-03-03", "scored"]]
    scored = [line.strip() for line in out.splitlines() if line.strip().startswith("scoring ")]
    assert len(scored) == 2 and "events-2026-03-01" in scored[0] and "events-2026-03-03" in scored[1]
    for day, count in rows.items():
        prefix = scores_prefix(fair_model, "events", day)
        manifest = read_success(prefix)
        assert manifest["rows"] == manifest["rows_in"] == count
        # exactly the committed parts under the prefix: nothing written twice, nothing left behind
        assert [entry.uri for entry in list_files(prefix)] == list_committed_parts(prefix)
        assert manifest["date"] == day and manifest["input"].endswith(f"/datasets/events-{day}")
    assert read_success(scores_prefix(fair_model, "events", "2026-03-02"))["attempt_id"] == before["attempt_id"]
    committed = {day: read_success(scores_prefix(fair_model, "events", day))["attempt_id"] for day in rows}

    assert main(["nightly", config, "--date", "2026-03-03", "--since", "2026-02-28", *storage]) == 0
    again = capsys.readouterr().out
    assert "0 date(s) to score" in again and "scoring " not in again
    assert {day: read_success(scores_prefix(fair_model, "events", day))["attempt_id"] for day in rows} == committed


# --- a retry on another host takes over the lease of an attempt killed with SIGKILL -------------------------------

HEARTBEAT_S, MISSED = 2, 5  # the lease expires 10 s after its last renewal


class Nightly:
    """`vaepipe nightly` in its own process, as host `host`, its output lines timestamped as they come."""

    def __init__(self, argv: list[str], host: str):
        env = {**os.environ, "VAEPIPE_LEASE_HOST": host, "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *argv], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def wait(self) -> int:
        code = self.process.wait(timeout=300)
        self.reader.join(timeout=10)
        return code

    def first(self, text: str) -> tuple[float, str] | None:
        return next(((at, line) for at, line in self.lines if text in line), None)

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)


@pytest.mark.reliability("process fault")
def test_a_nightly_killed_holding_its_lease_is_taken_over_by_one_retry_on_another_host(
        fair_model, fair_days, tmp_path):
    day = "2026-04-01"
    rows = fair_days(f"leased-{day}")
    prefix = scores_prefix(fair_model, "leased", day)
    argv = ["nightly", nightly_yaml(tmp_path, "leased"), "--date", day, "--storage", fair_model["storage"],
            "--set", f"lease.heartbeat_seconds={HEARTBEAT_S}", "--set", f"lease.expires_after_heartbeats={MISSED}"]

    killed = Nightly(argv, host="killed-host")
    deadline = time.monotonic() + 120
    while not exists(f"{prefix}/{LEASE}"):
        assert killed.process.poll() is None and time.monotonic() < deadline, killed.output
        time.sleep(0.1)
    killed.process.send_signal(signal.SIGKILL)
    killed.wait()
    killed_at = time.monotonic()
    assert not is_complete(prefix)

    retries = [Nightly(argv, host="retry-host-a"), Nightly(argv, host="retry-host-b")]
    codes = [retry.wait() for retry in retries]
    (winner,) = [r for r, code in zip(retries, codes) if code == 0]
    (refused,) = [r for r, code in zip(retries, codes) if code != 0]

    took_over = winner.first("took over the lease of score@killed-host:")
    assert took_over is not None, winner.output
    # it waited for the lease's expiry (10 s after its last renewal, at most one heartbeat before the kill),
    # and not much longer
    waited = took_over[0] - killed_at
    assert HEARTBEAT_S * MISSED - HEARTBEAT_S - 1 <= waited <= HEARTBEAT_S * MISSED + 5, winner.output
    assert winner.first("waiting up to") is not None and refused.first("waiting up to") is not None
    assert codes.count(2) == 1 and "error: another job (holder score@retry-host-" in refused.output, refused.output
    manifest = read_success(prefix)
    assert manifest["holder"].startswith("score@retry-host-") and manifest["rows"] == manifest["rows_in"] == rows
    assert [entry.uri for entry in list_files(prefix)] == list_committed_parts(prefix)
    assert not exists(f"{prefix}/{LEASE}")


# --- drift alarms -----------------------------------------------------------------------------------------------


def test_a_shifted_day_raises_a_drift_alarm_and_fails_after_committing_and_a_plain_day_does_not(
        fair_model, fair_days, tmp_path, capsys):
    fair_days("drifting-2026-05-01")
    fair_days("drifting-2026-05-02", shift=True)
    config = nightly_yaml(tmp_path, "drifting", engine="local")  # the alarm is the subject, not the engine
    storage = ["--storage", fair_model["storage"], "--fail-on-drift"]

    assert main(["nightly", config, "--date", "2026-05-01", *storage]) == 0
    plain = read_json(f"{scores_prefix(fair_model, 'drifting', '2026-05-01')}/_summary.json")["drift"]
    assert plain["psi"] < 0.25 and plain["alarms"] == []
    capsys.readouterr()

    assert main(["nightly", config, "--date", "2026-05-02", *storage]) == 3
    err = capsys.readouterr().err
    prefix = scores_prefix(fair_model, "drifting", "2026-05-02")
    assert is_complete(prefix)  # committed before the non-zero exit
    shifted = read_success(prefix)["summary"]["drift"]
    assert shifted["psi"] > 0.25 > plain["psi"] and shifted["ks"] > plain["ks"]
    assert "drift alarm" in err and f"PSI {shifted['psi']:.3f} > 0.25" in err
    assert read_json(f"{prefix}/_summary.json")["drift"] == shifted

    # the report of the shifted day shows both days' history
    index = f"{report_uri(fair_model['storage'], scores_report_id(prefix))}/{REPORT_INDEX}"
    page = check_report(index, tmp_path / "report", {"histogram.png", "nightly-history.png"}).read_text()
    assert "2026-05-01" in page and "2026-05-02" in page and f"{shifted['psi']:.4f}" in page
    print(json.dumps({"plain": plain, "shifted": shifted}, indent=1))
