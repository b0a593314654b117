"""The sweep report of runs/<sweep>/: validation NLL against β and latent size, the rate–distortion
scatter (`pipelines.reports.sweep_figure`), and every trial in a table sortable by any column."""
from __future__ import annotations

from pipelines.errors import SweepError
from pipelines.reports.page import Figure, Report, Section, html_table


def build_sweep_report(root: str, sweep_id: str) -> Report:
    """The report of a sweep's results table (readable while the sweep runs; final once it registered a model)."""
    from pipelines.reports.sweep_figure import sweep_figure_png
    from pipelines.storage.layout import REGISTERED_FILE, SWEEP_TABLE, run_uri
    from pipelines.storage.objects import exists, read_json
    from pipelines.training.sweep_table import display_columns, read_table

    sweep = run_uri(root, sweep_id)
    if not exists(f"{sweep}/{SWEEP_TABLE}"):
        raise SweepError(f"no sweep results at {sweep}/{SWEEP_TABLE}: {sweep_id} is not a sweep id, or none of "
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
    if "mig" in table and table["mig"].notna().any():
        facts["best MIG"] = f"{table['mig'].max():.3f} (trial {table.loc[table['mig'].idxmax(), 'trial_id']})"
    sections = [
        Section("Validation NLL and rate–distortion", "", [Figure(
            "sweep.png", sweep_figure_png(table, registered["trial_id"] if registered else None),
            "Each trial's best validation negative ELBO (at β = 1, so trials with different β compare) against β "
            "and latent size, and its KL (rate) against reconstruction NLL (distortion)"
            + ("; on a dataset with factor columns, the MIG of each trial's best checkpoint on the validation rows "
               "against β." if "mig" in table else "."))]),
        Section("Trials", "Click a column header to sort.",
                tables=[html_table(table[[c for c in (*display_columns(), "error") if c in table.columns]]
                                   .sort_values("best_val_neg_elbo", na_position="last"), sortable=True)]),
    ]
    return Report(sweep_id, f"Sweep report: {sweep_id}", facts, sections, f"vaepipe report sweep {sweep_id}")


def write_sweep_figure(sweep_uri: str, table, registered_trial: str | None = None) -> str:
    """The sweep figure beside the sweep's results table (runs/<sweep>/sweep.png); its URI."""
    from pipelines.reports.sweep_figure import sweep_figure_png
    from pipelines.storage.layout import SWEEP_FIGURE
    from pipelines.storage.objects import write_bytes

    uri = f"{sweep_uri}/{SWEEP_FIGURE}"
    write_bytes(uri, sweep_figure_png(table, registered_trial))
    return uri
