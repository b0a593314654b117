"""The sweep figure: validation NLL (negative ELBO at β=1) against β and against latent size, and the
rate–distortion view (KL vs reconstruction NLL) of every trial. Takes the results table of
`sweep_results` and returns PNG bytes, so a report can embed it as it is."""
from __future__ import annotations

import io

from typing import Optional

import pandas as pd


def sweep_figure_png(table: pd.DataFrame, registered_trial: Optional[str] = None) -> bytes:
    """A 3-panel PNG of the trials' best validation metrics, and a fourth of MIG against β when the table has
    the trials' MIG (a dataset with factor columns); early-stopped trials are hollow, the registered trial
    (`registered_trial`, else the lowest validation −ELBO) is starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.training.sweep_table import MIG_COLUMN

    done = table[table["best_val_neg_elbo"].notna()]
    full, early = done[~done["stopped_early"]], done[done["stopped_early"]]
    best = done[done["trial_id"] == registered_trial] if registered_trial is not None else done.iloc[:0]
    if best.empty and len(done):
        best = done.loc[[done["best_val_neg_elbo"].idxmin()]]
    panels = [("beta", "β (KL weight in training)", "best_val_neg_elbo", "val NLL (−ELBO at β=1, nats)", True),
              ("latent_dim", "latent size", "best_val_neg_elbo", "val NLL (−ELBO at β=1, nats)", False),
              ("best_val_kl", "rate: KL(q(z|x) ‖ p(z)) (nats)", "best_val_recon_nll",
               "distortion: reconstruction NLL (nats)", False)]
    if MIG_COLUMN in done and done[MIG_COLUMN].notna().any():
        panels.append(("beta", "β (KL weight, or TC weight with β-TCVAE)", MIG_COLUMN,
                       "MIG of the best checkpoint (validation rows)", True))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4), constrained_layout=True)
    for axis, (x, x_label, y, y_label, log_x) in zip(axes, panels):
        if done[x].notna().any():
            axis.scatter(full[x], full[y], color="tab:blue", label="ran all epochs")
            axis.scatter(early[x], early[y], facecolors="none", edgecolors="tab:blue", label="stopped early")
            axis.scatter(best[x], best[y], marker="*", s=250, color="tab:red", label="best (registered)")
        else:
            axis.text(0.5, 0.5, f"{x} not searched", ha="center", va="center", transform=axis.transAxes)
        if log_x and (done[x].dropna() > 0).all() and done[x].notna().any():
            axis.set_xscale("log")
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle(f"sweep: {len(done)} trials with results, best val NLL "
                    f"{done['best_val_neg_elbo'].min():.2f} nats" if len(done) else "sweep: no results yet")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
