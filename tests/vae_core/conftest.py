"""Small specs, synthetic two-cluster data and a plain Adam loop shared by the vae_core tests."""

import pytest
import torch

from vae_core import ModelSpec


@pytest.fixture
def table_spec():
    # 3 numeric columns, then one-hot groups of 2 and 3 levels.
    return ModelSpec.for_table(num_numeric=3, categorical_levels=[2, 3], latent_dim=2, hidden=(32, 16))


@pytest.fixture
def image_spec():
    return ModelSpec.for_images((1, 8, 8), latent_dim=2, hidden=(8, 16))


def two_cluster_table(n: int, seed: int = 0) -> torch.Tensor:
    """Rows [3 numerics, one-hot(2), one-hot(3)]; the cluster sets the numeric
    means (±2) and makes one level of each group likely."""
    g = torch.Generator().manual_seed(seed)
    cluster = torch.randint(0, 2, (n,), generator=g)
    numeric = (4.0 * cluster - 2.0)[:, None] + 0.3 * torch.randn(n, 3, generator=g)
    flip = torch.rand(n, generator=g) < 0.1
    group_a = torch.nn.functional.one_hot(cluster ^ flip.long(), 2).float()
    group_b = torch.nn.functional.one_hot(2 * cluster, 3).float()
    return torch.cat([numeric, group_a, group_b], dim=1)


def two_cluster_images(n: int, seed: int = 0) -> torch.Tensor:
    """1x8x8 images in [0, 1]: either the top or the bottom half is bright."""
    g = torch.Generator().manual_seed(seed)
    cluster = torch.randint(0, 2, (n,), generator=g)
    rows = torch.arange(8)
    bright = torch.where(cluster[:, None] == 1, rows[None] < 4, rows[None] >= 4).float()  # [n, 8]
    images = bright[:, :, None].expand(n, 8, 8)
    return (0.9 * images + 0.05 + 0.05 * torch.rand(n, 8, 8, generator=g)).clamp(0, 1)[:, None]


@pytest.fixture
def table_data():
    return two_cluster_table(256)


@pytest.fixture
def image_data():
    return two_cluster_images(256)


def train(model, data: torch.Tensor, steps: int, lr: float = 1e-2, batch_size: int = 64) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (batch_size,), generator=g)]
        loss = model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.fixture
def trainer():
    return train
