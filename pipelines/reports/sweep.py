"""The sweep report of runs/<sweep>/: validation NLL against β and latent size, the rate–distortion
scatter (`pipelines.sweep_plots`), and every trial in a table sortable by any column."""
from __future__ import annotations

from pipelines.reports.page import Figure, Report, Section, html_table

TABLE_COLUMNS = ("trial_id", "status", "epochs", "stopped_early", "latent_dim", "beta", "lr", "hidden",
                 "best_val_neg_elbo", "best_val_recon_nll", "best_val_kl", "best_epoch", "error")


def build_sweep_report(root: str, sweep_id: str) -> Report:
    """The report of a sweep's results table (readable while the sweep runs; final once it registered a model)."""
    from pipelines.layout import run_uri
    from pipelines.storage import exists, read_json
    from pipelines.sweep_plots import sweep_figure_png
    from pipelines.sweep_results import TABLE_FILE, read_table
    from pipelines.tune import REGISTERED_FILE, SweepError

    sweep = run_uri(root, sweep_id)
    if not exists(f"{sweep}/{TABLE_FILE}"):
        raise SweepError(f"no sweep results at {sweep}/{TABLE_FILE}: {sweep_id} is not a sweep id, or none of "
                         "its trials has reported yet (sweep ids are printed by `vaepipe tune`)")
    table = read_table(sweep)
    registered = read_json(f"{sweep}/{REGISTERED_FILE}") if exists(f"{sweep}/{REGISTERED_FILE}") else None
    done = table[table["best_val_neg_elbo"].notna()]
    facts = {"sweep": f"{sweep_id} ({sweep})", "trials": f"{len(table)} ({len(done)} with results, "
             f"{int(table['stopped_early'].sum())} stopped early)",
             "registered": (f"{registered['model']} (trial {registered['trial_id']})" if registered
                            else "nothing yet: the sweep is running or did not finish")}
    if len(done):
        facts["best val −ELBO"] = f"{done['best_val_neg_elbo'].min():.3f} nats"
    sections = [
        Section("Validation NLL and rate–distortion", "", [Figure(
            "sweep.png", sweep_figure_png(table),
            "Each trial's best validation negative ELBO (at β = 1, so trials with different β compare) against β "
            "and latent size, and its KL (rate) against reconstruction NLL (distortion).")]),
        Section("Trials", "Click a column header to sort.",
                tables=[html_table(table[[c for c in TABLE_COLUMNS if c in table.columns]]
                                   .sort_values("best_val_neg_elbo", na_position="last"), sortable=True)]),
    ]
    return Report(sweep_id, f"Sweep report: {sweep_id}", facts, sections, f"vaepipe report sweep {sweep_id}")
