"""Observation models p(x|z) over flattened features x: [B, D].

The decoder emits params: [B, P]; each likelihood reads its `param_dim`
columns. Mixed tables compose blocks with CompositeLikelihood instead of
growing a class per combination. log_prob is always computed in float32:
under bf16 autocast the decoder's params arrive in bf16, whose 8-bit mantissa
is too coarse for a sum of hundreds of per-feature log terms.
"""

import math
import operator
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from vae_core.noise import seeded_noise

# Floor on a learned std: below it a Gaussian can collapse onto a constant
# feature and send log_prob to +inf.
MIN_STD = 1e-3
LOG_2PI = math.log(2 * math.pi)


class Likelihood(nn.Module):
    """p(x | params) over `size` features, needing `param_dim` decoder outputs."""

    size: int
    param_dim: int

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | params) summed over features: [B]."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """Expected x: [B, D]."""
        raise NotImplementedError

    def saturated_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """max over params of log p(x | params), summed over features: [B] — the log-likelihood of a
        model that reproduces x exactly, the reference an anomaly score is measured from (deviance)."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw x ~ p(x | params): [B, D]."""
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """params are logits. x may be continuous in [0, 1] (grey pixels), which
    makes this the continuous cross-entropy rather than a normalized density."""

    def __init__(self, size: int):
        super().__init__()
        self.size = self.param_dim = size

    def log_prob(self, params, x):
        # BCE-with-logits uses log-sum-exp internally, stable for large |logits|.
        bce = F.binary_cross_entropy_with_logits(params.float(), x.float(), reduction="none")
        return -bce.sum(-1)

    def mean(self, params):
        return torch.sigmoid(params.float())

    def saturated_log_prob(self, x):
        # -(entropy of each target intensity): 0 for binary pixels, most negative for grey ones
        x = x.float()
        return (torch.special.xlogy(x, x) + torch.special.xlogy(1 - x, 1 - x)).sum(-1)

    def sample(self, params, generator=None):
        probs = self.mean(params)
        return (seeded_noise(torch.rand, probs.shape, probs.device, generator) < probs).float()


class GaussianLikelihood(Likelihood):
    """params are means. The std is not predicted by the decoder: it is one
    learned parameter per feature ("learned"), one learned parameter for all
    features ("shared"), or a constant ("fixed"), which keeps the model from
    shrinking the variance on individual rows.

    "shared" suits features on one scale, such as pixels: -log p is then the
    squared reconstruction error over one noise level, so no feature gets a
    weight of its own. A per-pixel std shrinks on pixels that are almost always
    blank in the training images, and a stroke there outweighs a wrong shape."""

    def __init__(self, size: int, variance: str = "learned", fixed_std: float = 1.0, init_std: float = 1.0):
        super().__init__()
        self.size = self.param_dim = size
        if variance in ("learned", "shared"):
            self.log_std = nn.Parameter(torch.full((size if variance == "learned" else 1,), math.log(init_std)))
        elif variance == "fixed":
            self.register_buffer("log_std", torch.full((size,), math.log(fixed_std)))
        else:
            raise ValueError(f"variance must be 'learned', 'shared' or 'fixed'; got {variance!r}")

    def clamped_log_std(self) -> torch.Tensor:
        """log std per feature: [size]."""
        return self.log_std.float().clamp_min(math.log(MIN_STD)).expand(self.size)

    def log_prob(self, params, x):
        return self.log_density(params, x).sum(-1)

    def log_density(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log N(x | params, std) per feature: [B, size]."""
        log_std = self.clamped_log_std()
        standardized = (x.float() - params.float()) * torch.exp(-log_std)
        return -0.5 * standardized**2 - log_std - 0.5 * LOG_2PI

    def mean(self, params):
        return params.float()

    def saturated_log_prob(self, x):
        # the density at its own mean: the same for every row (x only sets the batch shape)
        peak = (-self.clamped_log_std() - 0.5 * LOG_2PI).sum()
        return peak.expand(x.shape[0])

    def sample(self, params, generator=None):
        mean = self.mean(params)
        eps = seeded_noise(torch.randn, mean.shape, mean.device, generator)
        return mean + torch.exp(self.clamped_log_std()) * eps


class CategoricalLikelihood(Likelihood):
    """One one-hot group of `size` levels; params are the level logits."""

    def __init__(self, size: int):
        super().__init__()
        self.size = self.param_dim = size

    def log_prob(self, params, x):
        return (x.float() * torch.log_softmax(params.float(), dim=-1)).sum(-1)

    def mean(self, params):
        return torch.softmax(params.float(), dim=-1)

    def saturated_log_prob(self, x):
        return torch.zeros(x.shape[0], device=x.device)

    def sample(self, params, generator=None):
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact categorical draw.
        uniform = seeded_noise(torch.rand, params.shape, params.device, generator)
        uniform = uniform.clamp_min(torch.finfo(torch.float32).tiny)  # log(0) would give -inf noise
        levels = (params.float() - torch.log(-torch.log(uniform))).argmax(-1)
        return F.one_hot(levels, self.size).float()


class ZeroInflatedGaussianLikelihood(Likelihood):
    """Numeric columns that are exactly zero in a large share of rows (counts, amounts, durations), each as
    features [nonzero, value]: a Bernoulli for whether it is nonzero, and a Gaussian for the standardized value
    only where it is. A plain Gaussian spends its one std on the spike at zero and cannot produce it; this gives
    exact zeros in the right proportion and the tail beyond. The same pair models a column with missing values,
    [present, value]. `size` is 2 per column, the columns' pairs side by side ([n1, v1, n2, v2, ...]): one block
    for all of them, so a table of fifty such columns costs a step a few operations, not fifty blocks' worth.
    params are [logit of nonzero, mean of the value] per column; the std is learned or fixed per column, as for
    Gaussian."""

    def __init__(self, size: int = 2, variance: str = "learned", fixed_std: float = 1.0, init_std: float = 1.0):
        super().__init__()
        if size < 2 or size % 2:
            raise ValueError(f"a zero_inflated block is 2 features per column; got size {size}")
        self.size = self.param_dim = size
        self.value = GaussianLikelihood(size // 2, variance, fixed_std, init_std)

    def _pairs(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 2k] → (indicator part [B, k], value part [B, k])."""
        pairs = tensor.float().unflatten(-1, (self.size // 2, 2))
        return pairs[..., 0], pairs[..., 1]

    def log_prob(self, params, x):
        logits, means = self._pairs(params)
        nonzero, value = self._pairs(x)
        hurdle = -F.binary_cross_entropy_with_logits(logits, nonzero, reduction="none")
        return (hurdle + self.value.log_density(means, value) * nonzero).sum(-1)

    def mean(self, params):
        logits, means = self._pairs(params)
        return torch.stack([torch.sigmoid(logits), means], dim=-1).flatten(-2)

    def saturated_log_prob(self, x):
        nonzero, _ = self._pairs(x)
        peak = -self.value.clamped_log_std() - 0.5 * LOG_2PI  # each value's density at its own mean
        return (peak * nonzero).sum(-1)

    def sample(self, params, generator=None):
        logits, means = self._pairs(params)
        probability = torch.sigmoid(logits)
        nonzero = (seeded_noise(torch.rand, probability.shape, probability.device, generator) < probability).float()
        return torch.stack([nonzero, self.value.sample(means, generator) * nonzero], dim=-1).flatten(-2)


class CategoricalRun(nn.Module):
    """log p of several one-hot groups side by side at once, the sum of their `CategoricalLikelihood`s: their
    logits gathered into [B, groups, most levels] (a group with fewer levels padded with a logit no level
    reaches), one log_softmax. A table's forty categorical columns were forty blocks, three times the cost of a
    step of one (3.7 ms against 1.2); run together they cost what one does."""

    PAD_LOGIT = -1e9  # exp() of it is 0 in float32, and 0 · it is 0, where -inf would make NaN

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.size = self.param_dim = sum(sizes)
        index = torch.full((len(sizes), max(sizes)), self.size, dtype=torch.long)  # self.size: the pad column
        start = 0
        for group, levels in enumerate(sizes):
            index[group, :levels] = torch.arange(start, start + levels)
            start += levels
        self.register_buffer("index", index, persistent=False)  # derived from the spec: not in checkpoints

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params, x = params.float(), x.float()
        logits = torch.cat([params, params.new_full((params.shape[0], 1), self.PAD_LOGIT)], dim=-1)[:, self.index]
        onehots = torch.cat([x, x.new_zeros((x.shape[0], 1))], dim=-1)[:, self.index]
        return (onehots * torch.log_softmax(logits, dim=-1)).sum((-2, -1))


class CompositeLikelihood(Likelihood):
    """Blocks side by side: feature and param columns are split in block order
    and the log-probabilities add (features are independent given z). Consecutive categorical blocks are
    scored together (`CategoricalRun`), the same sum in a few operations."""

    def __init__(self, blocks: list[Likelihood]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.size = sum(b.size for b in blocks)
        self.param_dim = sum(b.param_dim for b in blocks)
        self._scored = []  # what log_prob adds up: the blocks, with runs of categorical ones as one
        start = 0
        while start < len(blocks):
            stop = start
            while stop < len(blocks) and isinstance(blocks[stop], CategoricalLikelihood):
                stop += 1
            if stop - start >= 2:
                self._scored.append(CategoricalRun([b.size for b in blocks[start:stop]]))
                start = stop
            else:
                self._scored.append(blocks[start])
                start += 1
        # registered so that .to(device) moves their index; they hold nothing a checkpoint keeps
        self.runs = nn.ModuleList([part for part in self._scored if isinstance(part, CategoricalRun)])

    def _split(self, params, x=None):
        param_parts = params.split([b.param_dim for b in self.blocks], dim=-1)
        x_parts = x.split([b.size for b in self.blocks], dim=-1) if x is not None else [None] * len(self.blocks)
        return zip(self.blocks, param_parts, x_parts)

    def log_prob(self, params, x):
        param_parts = params.split([part.param_dim for part in self._scored], dim=-1)
        x_parts = x.split([part.size for part in self._scored], dim=-1)
        # reduce, not sum(): sum starts from 0, one more op (and autograd node) per step for the same values
        return reduce(operator.add, (part.log_prob(p, xb) for part, p, xb in zip(self._scored, param_parts, x_parts)))

    def mean(self, params):
        return torch.cat([block.mean(p) for block, p, _ in self._split(params)], dim=-1)

    def saturated_log_prob(self, x):
        parts = x.split([b.size for b in self.blocks], dim=-1)
        return reduce(operator.add, (block.saturated_log_prob(part) for block, part in zip(self.blocks, parts)))

    def sample(self, params, generator=None):
        return torch.cat([block.sample(p, generator) for block, p, _ in self._split(params)], dim=-1)


def build_likelihood(spec_blocks) -> CompositeLikelihood:
    """The likelihood for a sequence of spec.LikelihoodBlock, always a composite
    so state_dict keys look the same for one block or many."""
    made = {
        "bernoulli": lambda b: BernoulliLikelihood(b.size),
        "gaussian": lambda b: GaussianLikelihood(b.size, b.variance, b.fixed_std, b.init_std),
        "categorical": lambda b: CategoricalLikelihood(b.size),
        "zero_inflated": lambda b: ZeroInflatedGaussianLikelihood(b.size, b.variance, b.fixed_std, b.init_std),
    }
    return CompositeLikelihood([made[b.kind](b) for b in spec_blocks])
