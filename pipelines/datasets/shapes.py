"""`shapes`: a dSprites-like dataset with known generative factors, rendered procedurally.

Each image shows one white shape on black, produced by five independent factors, each drawn
uniformly from a discrete grid (like dSprites, Matthey et al. 2017), so that a factor's entropy
is defined and disentanglement scores that discretize codes (MIG) compare against it:

| factor   | grid (values)                                      | levels                |
|----------|----------------------------------------------------|-----------------------|
| shape    | square, ellipse, heart                             | 3                     |
| scale    | 0.5, 0.6, ..., 1.0                                 | 6                     |
| rotation | 2*pi*k/40 radians, k = 0..39                       | 40                    |
| pos_x    | linspace(0, 1, size // 2), left to right           | 16 at 32 px, 32 at 64 |
| pos_y    | linspace(0, 1, size // 2), top to bottom           | 16 at 32 px, 32 at 64 |

At 64 px the grids are dSprites' own. At 32 px the position grid halves so that one step still
moves the shape by about one pixel. As in dSprites, rotation is only visible modulo the shape's
symmetry (a quarter turn for the square, a half turn for the ellipse), so no encoder can recover
all of its entropy from the images.

Geometry in image units (the image is [0, 1]^2): at scale 1 the square has half-side 0.16, the
ellipse semi-axes 0.192 x 0.096, the heart a height of 0.32; pos 0..1 moves the centre over
[0.27, 0.73], so every shape at every rotation stays inside the frame. Pixels are the shape's
coverage, anti-aliased from its signed distance (one pixel wide ramp), as uint8 0..255.

Rendering is vectorised numpy over chunks of images: 200,000 images of 32 x 32 take a few seconds.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "rotation", "pos_x", "pos_y")
SIZES = (32, 64)
SCALES = np.linspace(0.5, 1.0, 6)
ROTATIONS = 2 * math.pi * np.arange(40) / 40
HALF_SIDE = 0.16  # the square's half-side at scale 1, in image units; the other shapes are sized from it
CENTRE_MIN, CENTRE_SPAN = 0.27, 0.46  # pos 0..1 -> centre 0.27..0.73: the rotated square's corner stays inside
ELLIPSE_AXES = (1.2, 0.6)  # semi-axes in half-sides: an elongated ellipse, so that its rotation shows
HEART_EXTENT = 1.104  # the height of the unit heart below (0.75 + sqrt(2)/4), mapped to 2 half-sides
HEART_MID = 0.55  # the unit heart's vertical middle, put at the centre
CHUNK_IMAGES = 4096  # images rendered per numpy pass: ~16 MiB per float32 temporary at 32 px


def factor_grids(size: int = 32) -> dict[str, np.ndarray]:
    """The grid of values of each factor, in FACTOR_NAMES order, for images of `size` pixels."""
    _check_size(size)
    positions = np.linspace(0.0, 1.0, size // 2)
    return {"shape": np.array(SHAPES, dtype=object), "scale": SCALES, "rotation": ROTATIONS,
            "pos_x": positions, "pos_y": positions}


def render_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """`n` images uint8 [n, 1, size, size] and their factors, one row per image.

    Each row's factors are drawn independently and uniformly from `factor_grids(size)`; the same
    `seed` gives the same factors and pixels. The DataFrame has the columns FACTOR_NAMES: `shape`
    a categorical over SHAPES, the others floats taken exactly from their grids (rotation in
    radians, positions in [0, 1])."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"render_shapes: n must be a positive int; got {n!r}")
    grids = factor_grids(size)
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, len(grids[name]), size=n) for name in FACTOR_NAMES], axis=1)
    factors = pd.DataFrame({name: grids[name][codes[:, j]] for j, name in enumerate(FACTOR_NAMES)})
    factors["shape"] = pd.Categorical.from_codes(codes[:, 0], categories=list(SHAPES))
    return render_factors(factors, size), factors


def render_factors(factors: pd.DataFrame, size: int = 32) -> np.ndarray:
    """The image of each row of `factors` (columns FACTOR_NAMES, values on `factor_grids(size)`):
    uint8 [N, 1, size, size]. Pixels depend only on the factors, never on a seed."""
    codes = factor_codes(factors, size)
    grids = factor_grids(size)
    images = np.empty((len(factors), 1, size, size), dtype=np.uint8)
    for start in range(0, len(factors), CHUNK_IMAGES):
        chunk = codes[start:start + CHUNK_IMAGES]
        images[start:start + CHUNK_IMAGES, 0] = _render(
            chunk[:, 0], *(grids[name][chunk[:, j]] for j, name in enumerate(FACTOR_NAMES) if j > 0), size=size)
    return images


def factor_codes(factors: pd.DataFrame, size: int = 32) -> np.ndarray:
    """Each factor as its index in `factor_grids(size)`: int64 [N, 5] in FACTOR_NAMES order, the
    discrete labels that disentanglement metrics take."""
    missing = [name for name in FACTOR_NAMES if name not in factors.columns]
    if missing:
        raise ValueError(f"factor_codes: the factors have no column(s) {missing}; "
                         f"pass the DataFrame render_shapes returned (columns {list(FACTOR_NAMES)})")
    grids = factor_grids(size)
    columns = []
    for name in FACTOR_NAMES:
        grid = grids[name]
        if name == "shape":
            values = factors[name].astype(str).to_numpy()
            index = pd.Categorical(values, categories=SHAPES).codes.astype(np.int64)  # -1: not a shape
            on_grid = index >= 0
        else:
            values = factors[name].to_numpy(float)
            index = np.abs(values[:, None] - grid[None, :]).argmin(axis=1)
            on_grid = np.isclose(grid[index], values)
        if not on_grid.all():
            row = int(np.flatnonzero(~on_grid)[0])
            raise ValueError(f"factor_codes: column {name!r} row {row} holds {values[row]!r}, not a value of the "
                             f"{size}-pixel grid; render with the same size or fix the column")
        columns.append(index)
    return np.stack(columns, axis=1).astype(np.int64)


def _check_size(size: int) -> None:
    if size not in SIZES:
        raise ValueError(f"shapes images are {SIZES[0]} or {SIZES[1]} pixels square; got size={size!r}")


def _render(shape_codes: np.ndarray, scale: np.ndarray, rotation: np.ndarray, pos_x: np.ndarray,
            pos_y: np.ndarray, size: int) -> np.ndarray:
    """Coverage in 0..255 of one chunk of shapes: uint8 [n, size, size]."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in image units
    dx = centres[None, None, :] - (CENTRE_MIN + CENTRE_SPAN * pos_x).astype(np.float32)[:, None, None]
    dy = centres[None, :, None] - (CENTRE_MIN + CENTRE_SPAN * pos_y).astype(np.float32)[:, None, None]
    cos = np.cos(rotation).astype(np.float32)[:, None, None]
    sin = np.sin(rotation).astype(np.float32)[:, None, None]
    # Into the shape's own frame (rotated by -rotation), in half-sides, so the SDFs are of unit shapes.
    half_side = (HALF_SIDE * scale).astype(np.float32)[:, None, None]
    x = (cos * dx + sin * dy) / half_side
    y = (-sin * dx + cos * dy) / half_side
    distance = np.empty_like(x)
    for code, sdf in enumerate((_square_sdf, _ellipse_sdf, _heart_sdf)):
        mine = shape_codes == code
        if mine.any():
            distance[mine] = sdf(x[mine], y[mine])
    # Distance in pixels; a pixel is fully covered one half-pixel inside the edge, empty one half-pixel outside.
    coverage = np.clip(0.5 - distance * half_side * size, 0.0, 1.0)
    return np.rint(coverage * 255).astype(np.uint8)


# Signed distances (negative inside) of unit shapes, after Quilez's 2-D distance functions
# (iquilezles.org/articles/distfunctions2d).
def _square_sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    qx, qy = np.abs(x) - 1.0, np.abs(y) - 1.0
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _ellipse_sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # The exact ellipse distance needs a quartic; this first-order one (the implicit function over
    # its gradient's length) is exact on the boundary, which is all the anti-aliasing ramp needs.
    a, b = ELLIPSE_AXES
    k0 = np.hypot(x / a, y / b)
    k1 = np.hypot(x / (a * a), y / (b * b))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _heart_sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Quilez's heart has its point at the origin and its lobes up (y up, height HEART_EXTENT);
    # image rows grow downwards, so flip y, then scale its height to two half-sides.
    unit = HEART_EXTENT / 2.0
    px = np.abs(x) * unit
    py = -y * unit + HEART_MID
    lobe = np.hypot(px - 0.25, py - 0.75) - math.sqrt(2.0) / 4.0
    diagonal = 0.5 * np.maximum(px + py, 0.0)
    body = np.sqrt(np.minimum(px ** 2 + (py - 1.0) ** 2, (px - diagonal) ** 2 + (py - diagonal) ** 2))
    body = body * np.sign(px - py)
    return np.where(px + py > 1.0, lobe, body) / unit
