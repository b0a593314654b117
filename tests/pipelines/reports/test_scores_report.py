"""The scoring report, written by `run_scoring` when it ends."""
from __future__ import annotations

import pytest

from pipelines.reports.page import INDEX, report_uri
from pipelines.reports.scores import report_id
from pipelines.score import ScoreJobConfig, run_scoring
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_scoring_labelled_images_leaves_histogram_top_anomalies_and_roc_pr(digits_zero_model, tmp_path):
    outcome = run_scoring(ScoreJobConfig(
        model=digits_zero_model["model"], input="digits", storage=digits_zero_model["storage"], split="test",
        date="2026-12-01", normal_label="0", compute={"actors": 1, "cpus_per_actor": 0.25}),
        progress=lambda _: None)
    index = f"{report_uri(digits_zero_model['storage'], report_id(outcome.output_uri))}/{INDEX}"
    page = check_report(index, tmp_path, {"histogram.png", "top-anomalies.png", "roc-pr.png"}).read_text()
    assert 'class="sortable"' in page and f"{outcome.summary['roc_auc']:.3f}" in page
