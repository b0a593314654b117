"""The generation report of tabular samples, written by `vaepipe generate` when the job ends."""
from __future__ import annotations

import pytest

from pipelines.cli.main import main
from pipelines.storage.layout import REPORT_INDEX as INDEX
from pipelines.storage.layout import output_root, report_uri, samples_report_id, samples_uri
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_generating_rows_leaves_column_distributions_and_correlation_difference(fair_model, tmp_path):
    storage = fair_model["storage"]
    assert main(["generate", "--model", fair_model["model"], "--storage", storage, "--num-samples", "1000",
                 "--run", "report-test", "--actors", "1", "--cpus-per-actor", "0.25"]) == 0
    prefix = samples_uri(output_root(storage, "samples"), fair_model["model"].replace("@", "-v"), "report-test")
    index = f"{report_uri(storage, samples_report_id(prefix))}/{INDEX}"
    page = check_report(index, tmp_path, {"columns.png", "correlation-difference.png"}).read_text()
    assert "Mean |difference|" in page
    assert "quality (SDMetrics)" in page and "DCR closer to training" in page and "gmm (" in page
