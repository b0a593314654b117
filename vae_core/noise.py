"""Seeded noise shared by reparameterization, IW sampling and likelihood draws."""

import torch


def seeded_noise(draw, shape, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """`draw(shape)` (torch.rand or torch.randn) from `generator`, moved to `device`.

    The draw happens on the generator's own device, so a seeded CPU generator
    yields the same numbers whichever device the model sits on.
    """
    source = generator.device if generator is not None else device
    return draw(tuple(shape), generator=generator, device=source).to(device)
