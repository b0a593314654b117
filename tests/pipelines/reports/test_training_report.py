"""Training reports, written by `run_training` when it ends (image and tabular models)."""
from __future__ import annotations

import pytest

from pipelines.storage.layout import REPORT_INDEX as INDEX, report_uri
from pipelines.storage.layout import training_report_id as report_id
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

IMAGE_FIGURES = {"loss.png", "reconstructions.png", "prior-samples.png", "traversals.png", "latent-projection.png"}
TABLE_FIGURES = {"loss.png", "prior-columns.png", "prior-correlation-difference.png", "latent-projection.png"}


def test_training_an_image_model_leaves_its_report(digits_zero_model, tmp_path):
    index = f"{report_uri(digits_zero_model['storage'], report_id('zeros', 1))}/{INDEX}"
    page = check_report(index, tmp_path, IMAGE_FIGURES).read_text()
    assert "Latent traversals" in page and "zeros@1" in page


def test_training_a_table_model_leaves_its_report_with_reconstructed_rows(fair_model, tmp_path):
    report = report_id("fair", fair_model["version"])
    index = f"{report_uri(fair_model['storage'], report)}/{INDEX}"
    page = check_report(index, tmp_path, TABLE_FIGURES).read_text()
    assert "<td>reconstruction</td>" in page and "traversals.png" not in page
