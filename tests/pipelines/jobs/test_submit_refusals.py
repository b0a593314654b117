"""What `vaepipe submit` refuses before it contacts a cluster (no Ray needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.reliability("bad input")
def test_a_config_on_s3_is_refused_up_front_with_how_to_pass_it(capsys):
    code = main(["submit", "train", "s3://bucket/configs/digits.yaml", "--address", "http://127.0.0.1:9",
                 "--working-dir", str(ROOT)])

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: config s3://bucket/configs/digits.yaml: a job reads its config from a file "
                          "shipped with the working dir")
    assert "aws s3 cp s3://bucket/configs/digits.yaml configs/" in err and len(err.strip().splitlines()) == 1


@pytest.mark.reliability("bad input")
def test_a_submission_id_that_is_not_a_plain_name_is_refused(capsys):
    code = main(["submit", "prepare", "digits", "--submission-id", "../x", "--address", "http://127.0.0.1:9",
                 "--working-dir", str(ROOT)])

    assert code == 2
    assert "error: --submission-id '../x' contains '/'" in capsys.readouterr().err
