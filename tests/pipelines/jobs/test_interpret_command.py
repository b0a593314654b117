"""`vaepipe interpret` as a command, without Ray: its help, its config, and refusals before any work."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.cli.main import main
from pipelines.jobs.interpret import InterpretJobConfig


def test_help_gives_examples_a_person_can_run(capsys):
    with pytest.raises(SystemExit) as done:
        main(["interpret", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert "vaepipe interpret --model shapes@latest --input shapes" in text
    assert "models/<name>/<version>/interpretations/" in text and "--metric-rows" in text


def test_interpretations_go_beside_the_model_version_only():
    with pytest.raises(ValidationError, match="output"):
        InterpretJobConfig(model="m@1", input="d", output="elsewhere")
    assert InterpretJobConfig(model="m@1", input="d").metric_rows == 10_000


def test_a_missing_model_is_one_error_line_and_nothing_starts(tmp_path, capsys):
    assert main(["interpret", "--model", "nobody@1", "--input", "shapes", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no registered versions of model 'nobody'")
