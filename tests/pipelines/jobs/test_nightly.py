"""`vaepipe nightly`: the promoted model scores one date; a finished date is not scored again."""
from __future__ import annotations

import pytest

from pipelines.cli.main import main
from pipelines.storage.commit import is_complete
from pipelines.storage.registry import ModelRef, promote

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_nightly_scores_the_date_once_with_the_promoted_model(digits_zero_model, tmp_path, capsys):
    promote(digits_zero_model["storage"], ModelRef.parse(digits_zero_model["model"]))
    config = tmp_path / "nightly.yaml"
    config.write_text("model: zeros\ninput: digits\nsplit: test\ncompute:\n  actors: 2\n  cpus_per_actor: 0.25\n")
    argv = ["nightly", str(config), "--storage", digits_zero_model["storage"], "--date", "2026-11-25"]

    assert main(argv) == 0
    assert is_complete(f"{digits_zero_model['storage']}/scores/zeros-v1/digits/2026-11-25")
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out
