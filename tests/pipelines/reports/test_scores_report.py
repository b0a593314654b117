"""The scoring report, written by `vaepipe score` when the job ends."""
from __future__ import annotations

import pytest

from pipelines.cli.main import main
from pipelines.storage.commit import read_success
from pipelines.storage.layout import REPORT_INDEX as INDEX
from pipelines.storage.layout import output_root, report_uri, scores_report_id, scores_uri
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_scoring_labelled_images_leaves_histogram_top_anomalies_and_roc_pr(digits_zero_model, tmp_path):
    storage = digits_zero_model["storage"]
    assert main(["score", "--model", digits_zero_model["model"], "--input", "digits", "--storage", storage,
                 "--split", "test", "--date", "2026-12-01", "--normal-label", "0", "--actors", "1",
                 "--cpus-per-actor", "0.25"]) == 0
    model = digits_zero_model["model"].replace("@", "-v")
    prefix = scores_uri(output_root(storage, "scores"), model, "digits", "2026-12-01")
    index = f"{report_uri(storage, scores_report_id(prefix))}/{INDEX}"
    page = check_report(index, tmp_path, {"histogram.png", "top-anomalies.png", "roc-pr.png"}).read_text()
    assert 'class="sortable"' in page and f"{read_success(prefix)['summary']['roc_auc']:.3f}" in page
