"""Figure helpers the reports share: headless matplotlib (Agg) to PNG bytes, and images laid out in a
labelled table (rows × columns) as one picture."""
from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend: no display, safe inside jobs and Ray workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def histogram(axis, values: np.ndarray, bins: np.ndarray, density: bool = False, **style) -> None:
    """`axis.hist(values, bins, density)` drawn as one filled step patch, not one rectangle per bar: the same
    picture for a fraction of the drawing (matplotlib lays out and renders each bar as its own artist)."""
    counts, _ = np.histogram(values, bins=bins, density=density)
    axis.stairs(counts, bins, fill=True, **style)


def figure_png(figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open figure alive otherwise)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot().close(figure)
    return buffer.getvalue()


def image_table_png(images: np.ndarray, row_labels: Sequence[str], column_labels: Optional[Sequence[str]] = None,
                    title: str = "") -> bytes:
    """Images [R, C, channels, H, W] with values in [0, 1] as one PNG: a row label left of each row and
    an optional label above each column, 1-pixel white gaps between images."""
    plt = pyplot()
    rows, cols, channels, h, w = images.shape
    canvas = np.ones(((h + 1) * rows - 1, (w + 1) * cols - 1, channels), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[r, c].transpose(1, 2, 0)
    cell = max(0.45, min(1.2, 9.0 / cols))  # inches per image: small images still get a readable size
    figure, axis = plt.subplots(figsize=(1.6 + cell * cols, 0.6 + cell * rows), constrained_layout=True)
    axis.imshow(np.clip(canvas[:, :, 0] if channels == 1 else canvas, 0, 1), cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
    axis.set_yticks([r * (h + 1) + h / 2 for r in range(rows)], list(row_labels))
    if column_labels is not None:
        axis.set_xticks([c * (w + 1) + w / 2 for c in range(cols)], list(column_labels), fontsize="small")
        axis.xaxis.tick_top()
    else:
        axis.set_xticks([])
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    if title:
        axis.set_title(title)
    return figure_png(figure)


def image_grid_png(images: np.ndarray, cols: int = 8, title: str = "") -> bytes:
    """Images [N, channels, H, W] in [0, 1], `cols` to a row (a last partial row is left out)."""
    cols = max(1, min(cols, len(images)))
    rows = max(1, len(images) // cols)
    return image_table_png(images[:rows * cols].reshape(rows, cols, *images.shape[1:]), [""] * rows, title=title)
