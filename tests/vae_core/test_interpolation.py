"""`interpolate_latents`, SMOTE in latent space: every z lies between two anchors of the level asked for that
are near neighbours, anchors of other levels and of unknown level are never used, and the draw is the
generator's alone."""
import pytest
import torch

from vae_core import interpolate_latents


def line(start: float, count: int) -> torch.Tensor:
    """`count` anchors one apart on the first axis of a 2-d latent space, from `start`."""
    return torch.stack([start + torch.arange(count, dtype=torch.float32), torch.zeros(count)], 1)


def one_hots(levels: list[int], size: int = 2) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(levels), size).float()


def test_z_stays_between_near_neighbours_of_the_asked_level():
    # level 0 in two far clusters (the 5 nearest neighbours of each anchor are in its own cluster), level 1 between
    anchors = torch.cat([line(0, 6), line(1000, 6), line(400, 6)])
    levels = one_hots([0] * 12 + [1] * 6)
    z = interpolate_latents(anchors, 2000, torch.Generator().manual_seed(0), levels, one_hots([0] * 2000))
    x = z[:, 0]
    assert ((x <= 5) | (x >= 1000)).all() and (x <= 1005).all() and (x >= 0).all()
    assert (z[:, 1] == 0).all()
    assert (x <= 5).any() and (x >= 1000).any()           # both clusters are drawn from
    assert len(torch.unique(x)) > 1900                    # points on the segments, not the anchors themselves
    z = interpolate_latents(anchors, 500, torch.Generator().manual_seed(0), levels, one_hots([1] * 500))
    assert ((z[:, 0] >= 400) & (z[:, 0] <= 405)).all()


def test_rows_asking_for_nothing_draw_from_every_anchor_and_unknown_levels_only_from_them():
    anchors = torch.cat([line(0, 6), line(1000, 6)])
    levels = torch.cat([torch.zeros(6, 2), one_hots([1] * 6)])  # the first six unlabelled
    z = interpolate_latents(anchors, 300, torch.Generator().manual_seed(1), levels, one_hots([1] * 300))
    assert (z[:, 0] >= 1000).all()
    z = interpolate_latents(anchors, 300, torch.Generator().manual_seed(1), levels, torch.zeros(300, 2))
    assert (z[:, 0] <= 5).any() and (z[:, 0] >= 1000).any()
    z = interpolate_latents(anchors, 300, torch.Generator().manual_seed(1))  # an unconditional model
    assert (z[:, 0] <= 5).any() and (z[:, 0] >= 1000).any()


def test_mixed_requests_each_get_their_level_and_the_generator_decides_everything():
    anchors = torch.cat([line(0, 6), line(1000, 6)])
    levels = one_hots([0] * 6 + [1] * 6)
    asked = one_hots([0, 1] * 50)
    z = interpolate_latents(anchors, 100, torch.Generator().manual_seed(3), levels, asked)
    assert (z[0::2, 0] <= 5).all() and (z[1::2, 0] >= 1000).all()
    again = interpolate_latents(anchors, 100, torch.Generator().manual_seed(3), levels, asked)
    other = interpolate_latents(anchors, 100, torch.Generator().manual_seed(4), levels, asked)
    assert torch.equal(z, again) and not torch.equal(z, other)


def test_a_single_anchor_is_returned_and_a_level_without_anchors_is_refused():
    anchors = torch.cat([line(0, 1), line(1000, 6)])
    levels = one_hots([0] + [1] * 6, size=3)
    z = interpolate_latents(anchors, 10, torch.Generator().manual_seed(0), levels, one_hots([0] * 10, size=3))
    assert torch.equal(z, anchors[:1].expand(10, 2))
    with pytest.raises(ValueError, match="row 2"):
        interpolate_latents(anchors, 4, torch.Generator().manual_seed(0), levels, one_hots([1, 1, 2, 1], size=3))
