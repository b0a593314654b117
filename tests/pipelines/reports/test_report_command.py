"""`vaepipe report` and the jobs' report hook."""
from __future__ import annotations

import pytest

from pipelines.cli.main import main
from pipelines.reports.after_job import report_after_job
from pipelines.reports.training import build_training_report
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_report_model_writes_the_report_and_a_local_copy_to_open(digits_zero_model, tmp_path, capsys):
    assert main(["report", "model", digits_zero_model["model"], "--storage", digits_zero_model["storage"],
                 "--local-dir", str(tmp_path / "copy")]) == 0
    out = capsys.readouterr().out
    local = tmp_path / "copy" / "zeros-v1" / "index.html"
    assert f"open {local.as_uri()}" in out
    index = out.split("wrote Training report: zeros@1: ")[1].split()[0]
    check_report(index, tmp_path / "check", {"loss.png", "traversals.png"})


def test_report_of_an_unknown_run_is_a_user_error(digits_zero_model, capsys):
    assert main(["report", "run", "no-such-run", "--storage", digits_zero_model["storage"]]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_a_report_that_fails_after_a_job_is_a_warning_not_a_failure(digits_zero_model):
    with pytest.warns(UserWarning, match="report could not be written"):
        assert report_after_job(build_training_report, digits_zero_model["storage"], "zeros@99",
                                progress=lambda _: None) is None
