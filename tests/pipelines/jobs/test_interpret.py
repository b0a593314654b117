"""`vaepipe interpret` end to end on a tiny `shapes` set: a β-TCVAE trained by two DDP workers, its latent space
measured against the dataset's factors, committed beside the (unchanged) model version, read with its card,
and reported. On the session's Ray and SeaweedFS."""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.datasets.shapes import FACTOR_NAMES
from pipelines.jobs.interpret import InterpretJobConfig, run_interpretation
from pipelines.storage.commit import AlreadyComplete, list_committed_parts, read_success
from pipelines.storage.layout import CARD_FILE, interpretation_uri, model_version_uri
from pipelines.storage.objects import read_bytes, resolve
from tests.pipelines.reports.report_checks import check_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROWS = 1200
LATENT = 4


@pytest.fixture(scope="module")
def shapes_model(s3_store, ray_cluster) -> dict:
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.jobs.prepare import prepare_dataset
    from pipelines.jobs.train import run_training
    from pipelines.training.config import TrainJobConfig

    root = f"s3://{s3_store.bucket}/interpret-{uuid.uuid4().hex[:8]}"
    prepare_dataset(PrepareConfig(name="shapes", source="shapes", rows=ROWS, seed=1, storage=root))
    outcome = run_training(TrainJobConfig(
        name="shapes", dataset="shapes", storage=root, model={"latent_dim": LATENT, "hidden": [8, 16]},
        train={"epochs": 2, "batch_size": 64, "lr": 0.003, "objective": "beta_tc", "beta": 6.0},
        scaling={"num_workers": 2, "cpus_per_worker": 0.5}), progress=lambda _: None)
    return {"root": root, "model": outcome.model, "outcome": outcome}


@pytest.fixture(scope="module")
def interpreted(shapes_model) -> dict:
    root = shapes_model["root"]
    card_before = read_bytes(f"{model_version_uri(root, 'shapes', 1)}/{CARD_FILE}")
    outcome = run_interpretation(InterpretJobConfig(model=shapes_model["model"], input="shapes", storage=root,
                                                    metric_rows=800, compute={"actors": 2, "cpus_per_actor": 0.25}),
                                 progress=lambda _: None)
    return {**shapes_model, "outcome": outcome, "card_before": card_before}


def test_two_ddp_workers_train_beta_tc_with_finite_losses(shapes_model):
    from pipelines.storage.registry import read_card

    card = read_card(f"{model_version_uri(shapes_model['root'], 'shapes', 1)}/{CARD_FILE}")
    assert card["training"]["config"]["train"]["objective"] == "beta_tc"
    assert card["training"]["config"]["scaling"]["num_workers"] == 2
    history = card["training"]["history"]
    assert len(history) == 2 and all(np.isfinite(epoch["train_loss"]) for epoch in history)
    # β-TCVAE's loss is not the β-ELBO the model computes: the two differ on the same epoch
    assert all(epoch["train_loss"] != epoch["train_neg_elbo"] for epoch in history)


def test_the_interpretation_is_committed_beside_the_model_version_with_the_factor_scores(interpreted):
    outcome, root = interpreted["outcome"], interpreted["root"]
    assert outcome.output_uri == interpretation_uri(root, "shapes", 1, "shapes", None)
    assert outcome.output_uri.endswith("/models/shapes/1/interpretations/shapes/all")
    summary = outcome.summary
    assert summary["rows"] == ROWS and summary["latent_dim"] == LATENT
    assert summary["factors"]["columns"] == list(FACTOR_NAMES) and summary["factors"]["metric_rows"] == 800
    for score in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"):
        assert 0.0 <= summary[score] <= 1.0, score
    assert np.array(summary["factors"]["mi_nats"]).shape == (LATENT, len(FACTOR_NAMES))
    assert 0 <= summary["active_units"] <= LATENT
    assert read_success(outcome.output_uri)["factor_columns"] == list(FACTOR_NAMES)


def test_its_parts_hold_every_row_with_its_latents_and_factors(interpreted):
    location = resolve(interpreted["outcome"].output_uri)
    table = pa.concat_tables([pq.read_table(resolve(uri).path, filesystem=location.filesystem)
                              for uri in list_committed_parts(interpreted["outcome"].output_uri)])
    assert table.num_rows == ROWS == len(set(table["row_id"].to_pylist()))
    assert {"mu_0", f"logvar_{LATENT - 1}", *FACTOR_NAMES} <= set(table.column_names)


def test_the_card_is_read_with_its_interpretations_and_is_never_rewritten(interpreted):
    from pipelines.storage.registry import list_versions, read_interpretations

    root = interpreted["root"]
    assert read_bytes(f"{model_version_uri(root, 'shapes', 1)}/{CARD_FILE}") == interpreted["card_before"]
    assert list_versions(root, "shapes") == [1]
    found = read_interpretations(root, "shapes", 1)
    assert list(found) == ["shapes/all"] and found["shapes/all"]["mig"] == interpreted["outcome"].summary["mig"]


def test_a_second_run_finds_it_complete(interpreted):
    with pytest.raises(AlreadyComplete):
        run_interpretation(InterpretJobConfig(model="shapes@1", input="shapes", storage=interpreted["root"]),
                           progress=lambda _: None)


def test_the_reports_show_factor_labelled_traversals_and_the_mi_heatmap(interpreted, tmp_path):
    from pipelines.reports.interpretation import build_interpretation_report
    from pipelines.reports.page import write_report
    from pipelines.reports.training import build_training_report

    root = interpreted["root"]
    page = check_report(write_report(root, build_interpretation_report(root, interpreted["outcome"].output_uri)),
                        tmp_path / "interpretation", {"traversals.png", "factor-mi.png"}).read_text()
    assert "MIG" in page and "Latent dimensions and factors" in page
    training = check_report(write_report(root, build_training_report(root, "shapes@1")), tmp_path / "training",
                            {"traversals.png", "factor-mi.png"}).read_text()
    assert "interpretation shapes/all" in training and "β-TCVAE (α 1, β 6, γ 1)" in training


def test_a_dataset_without_factors_gets_the_active_units_only(interpreted, tmp_path):
    from pipelines.datasets.preparation import PrepareConfig
    from pipelines.datasets.shapes import render_shapes
    from pipelines.jobs.prepare import prepare_dataset

    folder = tmp_path / "pngs"
    folder.mkdir()
    for index, image in enumerate(render_shapes(40, seed=9)[0]):
        Image.fromarray(image[0]).save(folder / f"{index}.png")
    prepare_dataset(PrepareConfig(name="plain", source=str(folder), storage=interpreted["root"]))
    outcome = run_interpretation(InterpretJobConfig(model="shapes@1", input="plain", storage=interpreted["root"],
                                                    compute={"actors": 1, "cpus_per_actor": 0.25}),
                                 progress=lambda _: None)
    assert outcome.summary["rows"] == 40 and outcome.summary["factors"] is None and outcome.summary["mig"] is None
    assert len(outcome.summary["kl_per_dim"]) == LATENT
