"""What each latent dimension means, drawn from a factor × dimension mutual-information matrix: the heatmap (with
each dim's KL above it), the label of each dim's traversal row, and the per-factor table of MIG's terms.
Shared by the training report (MI on its validation rows) and the interpretation report (`vaepipe interpret`'s
summary)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.reports.page import html_table
from pipelines.reports.plotting import figure_png, pyplot


def dims_by_kl(kl: np.ndarray) -> np.ndarray:
    """Latent dims, most KL first (ties in index order): the order every figure of a model lists them in."""
    return np.argsort(-np.asarray(kl), kind="stable")


def dim_label(dim: int, mi: np.ndarray, entropy: np.ndarray, factors: Sequence[str], kl: float) -> str:
    """`z3 · pos_x` / `MI 1.92 nats (69%)` / `KL 3.10`: the factor the dim shares the most information with,
    that information in nats and as a share of the factor's entropy, and the dim's KL."""
    best = int(np.argmax(mi[dim]))
    share = mi[dim, best] / entropy[best] if entropy[best] > 0 else 0.0
    return f"z{dim} · {factors[best]}\nMI {mi[dim, best]:.2f} nats ({share:.0%})\nKL {kl:.2f}"


def mi_heatmap_png(mi: np.ndarray, entropy: np.ndarray, factors: Sequence[str], kl: np.ndarray,
                   kl_floor: float, title: str) -> bytes:
    """Top: each dim's KL (nats) with the active-unit floor. Below: I(z_j; factor_k) / H(factor_k) for every
    factor (rows) and dim (columns, most KL first), each cell annotated with the MI in nats."""
    plt = pyplot()
    order = dims_by_kl(kl)
    share = (mi / np.where(entropy > 0, entropy, 1.0)[None, :])[order].T  # [F, Z]
    figure, (bars, heat) = plt.subplots(2, 1, figsize=(max(6.0, 0.75 * len(order) + 2.5), 1.9 + 0.6 * len(factors)),
                                        height_ratios=[1, max(1.5, 0.5 * len(factors))], sharex=True,
                                        constrained_layout=True)
    positions = np.arange(len(order))
    bars.bar(positions, np.asarray(kl)[order], color=["tab:blue" if kl[j] > kl_floor else "lightgray" for j in order])
    bars.axhline(kl_floor, color="tab:red", linestyle=":", linewidth=1, label=f"active above {kl_floor:g} nats")
    bars.set_ylabel("KL (nats)")
    bars.legend(fontsize="small", loc="upper right")
    bars.grid(alpha=0.3, axis="y")
    image = heat.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for row in range(share.shape[0]):
        for col in range(share.shape[1]):
            heat.text(col, row, f"{mi[order[col], row]:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if share[row, col] < 0.6 else "black")
    heat.set_xticks(positions, [f"z{j}" for j in order])
    heat.set_yticks(np.arange(len(factors)), [f"{name} (H {h:.2f})" for name, h in zip(factors, entropy)])
    heat.set_xlabel("latent dimension (most KL first)")
    figure.colorbar(image, ax=heat, label="MI / H(factor)")
    bars.set_title(title)
    return figure_png(figure)


def factor_table_html(mi: np.ndarray, entropy: np.ndarray, factors: Sequence[str]) -> str:
    """Per factor: its entropy, the two dims that know the most about it, and MIG's term (their gap / H)."""
    lines = []
    for k, name in enumerate(factors):
        ranked = np.argsort(-mi[:, k], kind="stable")
        second = mi[ranked[1], k] if len(ranked) > 1 else 0.0
        lines.append({"factor": name, "H (nats)": float(entropy[k]), "best dim": f"z{ranked[0]}",
                      "MI (nats)": float(mi[ranked[0], k]),
                      "2nd dim": f"z{ranked[1]}" if len(ranked) > 1 else "",
                      "2nd MI (nats)": float(second),
                      "MIG term": float((mi[ranked[0], k] - second) / entropy[k]) if entropy[k] > 0 else float("nan")})
    return html_table(pd.DataFrame(lines), float_format="{:.3f}")
