"""The sweep's results table as Tune's callbacks write it while a sweep runs (a whole sweep, killed and resumed,
runs in tests/pipelines/jobs/test_tune.py). Tune's own `Trial` objects, in the states Tune has them in when it
calls each hook; no Ray is started."""
from __future__ import annotations


def test_a_trial_reads_terminated_in_the_table_written_when_it_ends(tmp_path):
    from ray.tune.experiment import Trial

    from pipelines.training.sweep_table import TrialTable, read_table

    sweep_uri = str(tmp_path / "runs" / "d-sweep")
    table = TrialTable(sweep_uri, max_epochs=4, template_values={"latent_dim": 16, "lr": 1e-3})
    first, second = (Trial("vaepipe_trial", config={"latent_dim": dim}, stub=True, trial_id=f"t_0000{i}")
                     for i, dim in enumerate((4, 8)))
    first.set_status(Trial.RUNNING)
    for epoch, nll in ((1, 30.0), (2, 28.0)):
        table.on_trial_result(epoch, [first, second], first, {"epoch": epoch, "val_neg_elbo": nll,
                                                              "val_recon_nll": nll - 2, "val_kl": 2.0})
    # Tune calls on_trial_complete with the trial still RUNNING and marks it TERMINATED afterwards
    table.on_trial_complete(2, [first, second], first)
    assert first.status == Trial.RUNNING

    rows = read_table(sweep_uri).set_index("trial_id")
    assert rows.loc["t_00000", "status"] == "TERMINATED" and rows.loc["t_00001", "status"] == "PENDING"
    # two of four epochs, not by an error: ASHA stopped it
    assert rows.loc["t_00000", "stopped_early"] and rows.loc["t_00000", "best_epoch"] == 2
    assert rows.loc["t_00000", "latent_dim"] == 4 and rows.loc["t_00000", "lr"] == 1e-3
