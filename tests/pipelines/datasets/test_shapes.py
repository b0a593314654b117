import numpy as np
import pandas as pd
import pytest

from pipelines.datasets.shapes import CENTRE_SPAN, FACTOR_NAMES, SHAPES, factor_codes, factor_grids, render_factors, render_shapes


def test_images_and_factors_have_the_promised_layout():
    images, factors = render_shapes(50, size=32, seed=0)
    assert images.shape == (50, 1, 32, 32) and images.dtype == np.uint8
    assert list(factors.columns) == list(FACTOR_NAMES) and len(factors) == 50
    assert list(factors["shape"].cat.categories) == list(SHAPES)
    grids = factor_grids(32)
    for name in FACTOR_NAMES[1:]:
        assert np.isin(factors[name].to_numpy(), grids[name]).all(), name


def test_the_same_seed_gives_the_same_images_and_another_seed_differs():
    images, factors = render_shapes(64, seed=3)
    again, factors_again = render_shapes(64, seed=3)
    other, _ = render_shapes(64, seed=4)
    assert np.array_equal(images, again)
    pd.testing.assert_frame_equal(factors, factors_again)
    assert not np.array_equal(images, other)


def test_64_pixel_grids_are_dsprites_grids():
    sizes = {name: len(grid) for name, grid in factor_grids(64).items()}
    assert sizes == {"shape": 3, "scale": 6, "rotation": 40, "pos_x": 32, "pos_y": 32}
    assert {name: len(grid) for name, grid in factor_grids(32).items()}["pos_x"] == 16


def test_every_shape_stays_inside_the_frame_at_its_largest_in_every_corner_and_rotation():
    for size in (32, 64):
        grids = factor_grids(size)
        worst = pd.MultiIndex.from_product([SHAPES, [1.0], grids["rotation"], [0.0, 1.0], [0.0, 1.0]],
                                           names=FACTOR_NAMES).to_frame(index=False)
        images = render_factors(worst, size)[:, 0]
        border = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1)
        assert len(images) == 3 * 40 * 4 and border.max() == 0
        assert images.max(axis=(1, 2)).min() == 255  # and every one of them is drawn


def test_pixels_follow_the_factors():
    images, factors = render_shapes(3000, size=32, seed=2)
    area = images.reshape(len(images), -1).sum(1) / 255.0
    # Area grows with scale squared: the largest scale covers about 4 times the smallest.
    small, large = area[factors["scale"] == 0.5].mean(), area[factors["scale"] == 1.0].mean()
    assert 3.5 < large / small < 4.5
    # The centre of mass moves with pos_x (columns) and pos_y (rows), over CENTRE_SPAN of the width.
    cols = np.arange(32) + 0.5
    mass = images[:, 0].astype(float)
    centre_x = (mass.sum(1) * cols).sum(1) / mass.sum((1, 2)) / 32
    centre_y = (mass.sum(2) * cols).sum(1) / mass.sum((1, 2)) / 32
    slope_x = np.polyfit(factors["pos_x"], centre_x, 1)[0]
    slope_y = np.polyfit(factors["pos_y"], centre_y, 1)[0]
    assert slope_x == pytest.approx(CENTRE_SPAN, abs=0.03) and slope_y == pytest.approx(CENTRE_SPAN, abs=0.03)


def centred(shape: str, rotation_index: int, size: int = 64) -> np.ndarray:
    grids = factor_grids(size)
    row = pd.DataFrame({"shape": [shape], "scale": [1.0], "rotation": [grids["rotation"][rotation_index]],
                        "pos_x": [0.0], "pos_y": [1.0]})
    return render_factors(row, size)[0, 0].astype(int)


def test_a_quarter_turn_leaves_the_square_alone_but_moves_the_heart_and_the_ellipse():
    # 10 of 40 rotation steps is a quarter turn: the square's symmetry, not the ellipse's or the heart's.
    assert np.abs(centred("square", 10) - centred("square", 0)).max() <= 1  # rounding of a rotation by pi/2
    for shape in ("ellipse", "heart"):
        assert np.abs(centred(shape, 10) - centred(shape, 0)).sum() > 50 * 255
    # A half turn is the ellipse's symmetry, not the heart's.
    assert np.abs(centred("ellipse", 20) - centred("ellipse", 0)).max() <= 1
    assert np.abs(centred("heart", 20) - centred("heart", 0)).sum() > 50 * 255


def test_render_factors_draws_what_render_shapes_drew():
    images, factors = render_shapes(300, size=32, seed=7)
    assert np.array_equal(render_factors(factors, size=32), images)


def test_factor_codes_index_the_grids():
    _, factors = render_shapes(500, size=64, seed=0)
    codes = factor_codes(factors, size=64)
    grids = factor_grids(64)
    assert codes.shape == (500, 5) and codes.dtype == np.int64
    for j, name in enumerate(FACTOR_NAMES):
        assert np.array_equal(grids[name][codes[:, j]], factors[name].astype(object if j == 0 else float).to_numpy())


def test_factor_codes_name_the_column_off_the_grid():
    _, factors = render_shapes(10, size=32)
    factors.loc[3, "scale"] = 0.55
    with pytest.raises(ValueError, match="'scale' row 3"):
        factor_codes(factors)
    with pytest.raises(ValueError, match="no column"):
        factor_codes(factors.drop(columns="pos_y"))


def test_sizes_other_than_32_and_64_are_refused():
    with pytest.raises(ValueError, match="32 or 64"):
        render_shapes(10, size=28)
