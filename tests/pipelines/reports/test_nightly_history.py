"""The scores report's nightly history: every committed date of one model and input up to the report's own,
read from each date's `_summary.json` -- no Ray: the outputs are committed here as a scoring run commits them."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipelines.reports.scores import drift_section, history_png, nightly_history
from pipelines.storage.commit import OutputCommit
from pipelines.storage.layout import SUMMARY_FILE, output_root, scores_uri
from pipelines.storage.objects import write_json


def commit_scores(root: str, date: str, anomaly_rate: float, psi: float | None, commit: bool = True) -> str:
    """A scores output of `date` as `run_scoring` leaves it: a part, `_summary.json`, `_SUCCESS`."""
    prefix = scores_uri(output_root(root, "scores"), "fair-v1", "events", date)
    drift = None if psi is None else {"psi": psi, "psi_bins": 10, "ks": psi / 2, "anomaly_rate": anomaly_rate,
                                      "expected_anomaly_rate": 0.05, "anomaly_rate_ratio": anomaly_rate / 0.05,
                                      "validation_rows": 600, "alarms": ["PSI > 0.25"] if psi > 0.25 else [],
                                      "limits": {"psi_alarm": 0.25}}
    summary = {"rows": 100, "anomalies": int(100 * anomaly_rate), "anomaly_rate": anomaly_rate,
               **({"drift": drift} if drift else {})}
    with OutputCommit(prefix, job="score") as out:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"anomaly_score": [1.0] * 100}), buffer)
        out.write(out.part_name(0), buffer.getvalue())
        write_json(f"{prefix}/{SUMMARY_FILE}", summary)
        if commit:
            out.commit(expected_rows=100, metadata={"summary": summary})
    return prefix


def test_the_history_lists_committed_dates_up_to_the_reports_own_oldest_first(tmp_path):
    root = str(tmp_path)
    commit_scores(root, "2026-03-01", 0.05, None)  # scored before drift was measured
    commit_scores(root, "2026-03-02", 0.06, 0.04)
    commit_scores(root, "2026-03-03", 0.04, 0.02, commit=False)  # a run that did not commit
    own = commit_scores(root, "2026-03-04", 0.20, 0.61)
    commit_scores(root, "2026-03-05", 0.05, 0.03)  # after the report's date

    history = nightly_history(own)
    assert history["date"].tolist() == ["2026-03-01", "2026-03-02", "2026-03-04"]
    assert history["anomaly rate"].tolist() == [0.05, 0.06, 0.20]
    assert history["PSI"].isna().tolist() == [True, False, False] and history["PSI"].iloc[-1] == 0.61
    assert history["alarms"].tolist() == ["", "", "PSI > 0.25"]
    assert nightly_history(own, limit=2)["date"].tolist() == ["2026-03-02", "2026-03-04"]


def test_the_history_figure_and_section(tmp_path):
    root = str(tmp_path)
    commit_scores(root, "2026-03-01", 0.05, 0.03)
    own = commit_scores(root, "2026-03-02", 0.20, 0.61)
    history = nightly_history(own)
    with Image.open(io.BytesIO(history_png(history, 0.25))) as picture:
        picture.verify()
    summary = {"drift": {"psi": 0.61, "psi_bins": 10, "ks": 0.3, "anomaly_rate": 0.2, "expected_anomaly_rate": 0.05,
                         "anomaly_rate_ratio": 4.0, "validation_rows": 600, "alarms": ["PSI 0.610 > 0.25"],
                         "limits": {"psi_alarm": 0.25}}}
    section = drift_section(summary, history)
    assert [f.name for f in section.figures] == ["nightly-history.png"]
    assert "PSI 0.610 over 10 bins" in section.text and "Alarms: PSI 0.610 > 0.25." in section.text
    assert "2026-03-01" in section.tables[0] and "0.6100" in section.tables[0]
    assert drift_section(summary, history.iloc[-1:]).figures == []  # one date: nothing to plot yet
    assert "Not measured" in drift_section({}, history).text
