"""Tracking is off by default and says in one line what is missing when it is asked for (no server needed;
the real MLflow server tests are in test_tracking_mlflow.py)."""
from __future__ import annotations

import sys

import pytest

from pipelines.cli.main import main
from pipelines.runtime.tracking import (ENV_TRACKING_URI, TrackingConfig, TrackingError, card_tags, finite_numbers,
                                        flatten, tracking_for)
from pipelines.training.config import TrainJobConfig


def test_tracking_is_off_unless_a_job_config_asks_for_it():
    config = TrainJobConfig(name="digits", dataset="digits")
    assert config.tracking.mlflow is None and tracking_for(config.tracking, "digits") is None


def test_without_mlflow_installed_a_tracked_job_names_the_extra_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets where it is not installed

    code = main(["train", "configs/digits.yaml", "--set", "tracking.mlflow.experiment=digits"])

    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "MLflow is not installed here: pip install 'vaepipe[tracking]'" in err


def test_tracking_without_a_server_says_where_to_name_one(monkeypatch):
    monkeypatch.delenv(ENV_TRACKING_URI, raising=False)
    with pytest.raises(TrackingError, match="set tracking.mlflow.tracking_uri .* or \\$MLFLOW_TRACKING_URI"):
        tracking_for(TrackingConfig(mlflow={}), "digits")
    monkeypatch.setenv(ENV_TRACKING_URI, "http://mlflow.internal:5000")
    tracking = tracking_for(TrackingConfig(mlflow={}), "digits")
    assert (tracking.tracking_uri, tracking.experiment) == ("http://mlflow.internal:5000", "digits")


@pytest.mark.reliability("security")
def test_credentials_in_the_tracking_uri_are_refused_and_not_echoed(capsys):
    code = main(["train", "configs/digits.yaml", "--set", "tracking.mlflow.tracking_uri=http://bob:s3cret@ml:5000"])

    err = capsys.readouterr().err
    assert code == 2 and "tracking.mlflow.tracking_uri" in err and "MLFLOW_TRACKING_PASSWORD" in err
    assert "s3cret" not in err


def test_a_card_becomes_scalar_tags_and_metrics_only_finite_numbers():
    card = {"spec": {"latent_dim": 16, "hidden": [32, 64]}, "metrics": {"val_neg_elbo": 25.5, "epoch": 15},
            "dataset": {"name": "digits", "manifest": {"rows": 1797}},
            "calibration": {"threshold": 16.8, "val_quantiles": [1.0, 2.0]}, "weights": "ignored"}
    assert card_tags(card) == {"card.spec.latent_dim": "16", "card.metrics.val_neg_elbo": "25.5",
                               "card.metrics.epoch": "15", "card.dataset.name": "digits",
                               "card.calibration.threshold": "16.8"}
    assert flatten({"a": {"b": 1, "c": [1]}}) == {"a.b": 1, "a.c": [1]}
    assert finite_numbers({"rows": 10, "rate": float("nan"), "ok": True, "q": {"p50": 0.5}}) == {"rows": 10.0,
                                                                                               "q.p50": 0.5}
