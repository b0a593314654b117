"""The generation report of tabular samples, written by `run_generation` when it ends."""
from __future__ import annotations

import pytest

from pipelines.generate import GenerateJobConfig, run_generation
from pipelines.reports.page import INDEX, report_uri
from pipelines.reports.samples import report_id
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_generating_rows_leaves_column_distributions_and_correlation_difference(fair_model, tmp_path):
    outcome = run_generation(GenerateJobConfig(
        model=fair_model["model"], storage=fair_model["storage"], num_samples=1000,
        compute={"actors": 1, "cpus_per_actor": 0.25}), progress=lambda _: None)
    index = f"{report_uri(fair_model['storage'], report_id(outcome.output_uri))}/{INDEX}"
    page = check_report(index, tmp_path, {"columns.png", "correlation-difference.png"}).read_text()
    assert "Mean |difference|" in page
