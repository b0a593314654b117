"""The sweep report, from a results table written by the sweep's own writer (a real sweep runs in
tests/pipelines/test_tune.py, which checks that it ends with this report)."""
from __future__ import annotations

import pytest

from pipelines.storage.layout import run_uri
from pipelines.reports.page import write_report
from pipelines.reports.sweep import build_sweep_report
from pipelines.errors import SweepError
from tests.pipelines.reports.report_checks import check_report


def results(trial: str, beta: float, latent_dim: int, nll: float, epochs: int) -> dict:
    # imported here: sweep_table imports Ray Tune (2 CPU-s), which each `make test-fast` worker paid to collect
    from pipelines.training.sweep_table import trial_row

    metrics = {"epoch": epochs, "val_neg_elbo": nll, "val_recon_nll": nll - 5, "val_kl": 5.0}
    return trial_row(trial, "TERMINATED", {"beta": beta, "latent_dim": latent_dim, "lr": 1e-3, "hidden": [16]},
                     metrics, metrics, max_epochs=4)


def test_sweep_report_has_the_figure_and_a_sortable_trial_table(s3_prefix, tmp_path):
    from pipelines.training.sweep_table import write_table

    write_table(run_uri(s3_prefix, "d-sweep"), [results("t1", 0.5, 4, 40.0, 4), results("t2", 2.0, 8, 35.0, 2),
                                               results("t3", 1.0, 16, 38.0, 4)])
    page = check_report(write_report(s3_prefix, build_sweep_report(s3_prefix, "d-sweep")), tmp_path,
                        {"sweep.png"}).read_text()
    assert page.count("<tr>") == 4 and 'class="sortable"' in page
    assert page.index("<td>t2</td>") < page.index("<td>t3</td>") < page.index("<td>t1</td>")  # best NLL first


def test_sweep_report_of_a_run_without_results_says_what_a_sweep_id_is(s3_prefix):
    with pytest.raises(SweepError, match="not a sweep id"):
        build_sweep_report(s3_prefix, "not-a-sweep")
