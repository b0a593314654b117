"""ModelSpec: everything needed to rebuild a VAE, as a frozen dataclass that
round-trips through JSON (a saved model is its spec.json plus its weights)."""

import json
import math
from dataclasses import asdict, dataclass, field, fields

LIKELIHOOD_KINDS = ("bernoulli", "gaussian", "categorical", "zero_inflated")
VARIANCE_KINDS = ("learned", "shared", "fixed")
ARCHITECTURES = ("mlp", "conv")
# A conv decoder emits one value per pixel, so only per-pixel likelihoods fit it.
CONV_LIKELIHOOD_KINDS = ("bernoulli", "gaussian")
PIXEL_INIT_STD = 0.1

# The model every entry point builds unless told otherwise — `vaepipe train`, `vaepipe tune`'s template, the
# benchmarks and a notebook calling `ModelSpec.for_images` / `for_table` — defined here once.
DEFAULT_LATENT_DIM = 16
DEFAULT_CONV_HIDDEN = (32, 64)      # channels per stride-2 stage
DEFAULT_MLP_HIDDEN = (256, 128)     # layer widths
DEFAULT_PIXELS = "bernoulli"        # the density model of grey images; "gaussian" ranks anomalies better
DEFAULT_PIXEL_VARIANCE = "shared"   # of Gaussian pixels: one learned noise level
DEFAULT_COLUMN_VARIANCE = "learned"  # of Gaussian table columns: one learned std per column


@dataclass(frozen=True)
class LikelihoodBlock:
    """A run of `size` consecutive feature columns sharing one likelihood.

    For "categorical", `size` is the number of levels of one one-hot group.
    For "gaussian", `variance="learned"` is one learned log-std per feature
    (not predicted by the decoder), "shared" one learned log-std for all the
    block's features, either starting at `init_std`; "fixed" uses `fixed_std`
    for every feature.
    For "zero_inflated", `size` is 2 per column: each column as [is-nonzero (or
    is-present) indicator, standardized value (0 where the value is zero or
    missing)], the columns' pairs side by side.
    """

    kind: str
    size: int
    variance: str = "learned"
    fixed_std: float = 1.0
    init_std: float = 1.0

    def __post_init__(self):
        self.validate()

    def validate(self):
        if self.kind not in LIKELIHOOD_KINDS:
            raise ValueError(f"likelihood kind {self.kind!r} is unknown; use one of {LIKELIHOOD_KINDS}")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"likelihood block size must be a positive int; got {self.size!r}")
        if self.kind == "zero_inflated" and self.size % 2:
            raise ValueError(f"a zero_inflated block covers each column as 2 features; got size {self.size}")
        if self.variance not in VARIANCE_KINDS:
            raise ValueError(f"likelihood variance {self.variance!r} is unknown; use one of {VARIANCE_KINDS}")
        for name in ("fixed_std", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"likelihood {name} must be > 0; got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, input layout and likelihood of one VAE.

    `input_shape` is (D,) for "mlp" and (C, H, W) for "conv". `hidden` is the
    layer widths (mlp) or channels per stride-2 stage (conv). The likelihood
    blocks cover the flattened features in order and their sizes sum to D.

    `condition_levels` makes it a conditional VAE (Sohn et al. 2015): one entry per
    condition (a class label, a categorical column) giving its number of levels. The
    model's input is then flat [B, D + sum(condition_levels)]: the features followed by
    each condition one-hot (all zeros where a row's level is unknown). With exactly one
    condition the model also has a classifier q(y|x) and trains on rows without a level
    too (Kingma et al. 2014, M2).
    """

    architecture: str
    input_shape: tuple[int, ...]
    latent_dim: int
    hidden: tuple[int, ...]
    likelihood: tuple[LikelihoodBlock, ...] = field(kw_only=True)
    condition_levels: tuple[int, ...] = field(default=(), kw_only=True)

    def __post_init__(self):
        # Accept the lists and dicts that JSON gives back; store tuples so specs
        # stay hashable and compare equal after a round trip.
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "condition_levels", tuple(self.condition_levels))
        blocks = tuple(b if isinstance(b, LikelihoodBlock) else LikelihoodBlock(**b) for b in self.likelihood)
        object.__setattr__(self, "likelihood", blocks)
        self.validate()

    @property
    def feature_dim(self) -> int:
        return math.prod(self.input_shape)

    @property
    def condition_dim(self) -> int:
        """Width of the condition one-hots after the features (0: not conditional)."""
        return sum(self.condition_levels)

    def validate(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {self.architecture!r} is unknown; use one of {ARCHITECTURES}")
        expected_rank = 1 if self.architecture == "mlp" else 3
        if len(self.input_shape) != expected_rank or any(not isinstance(s, int) or s < 1 for s in self.input_shape):
            layout = "(D,)" if self.architecture == "mlp" else "(C, H, W)"
            raise ValueError(f"input_shape for architecture={self.architecture!r} must be {layout} "
                             f"of positive ints; got {self.input_shape}")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be an int >= 1; got {self.latent_dim!r}")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive ints; got {self.hidden!r}")
        if any(not isinstance(k, int) or k < 2 for k in self.condition_levels):
            raise ValueError(f"condition_levels must be ints >= 2 (levels of each condition); got {self.condition_levels!r}")
        if not self.likelihood:
            raise ValueError("likelihood is empty; give LikelihoodBlocks whose sizes sum to the feature count")
        covered = sum(b.size for b in self.likelihood)
        if covered != self.feature_dim:
            raise ValueError(f"likelihood block sizes sum to {covered} but input_shape {self.input_shape} "
                             f"has {self.feature_dim} features; make the blocks cover every feature once")
        if self.architecture == "conv":
            self._validate_conv()

    def _validate_conv(self):
        kinds = [b.kind for b in self.likelihood]
        if len(kinds) != 1 or kinds[0] not in CONV_LIKELIHOOD_KINDS:
            raise ValueError(f"conv architecture needs one pixel likelihood block of kind {CONV_LIKELIHOOD_KINDS}; "
                             f"got {kinds} — use architecture='mlp' for tables")
        _, height, width = self.input_shape
        factor = 2 ** len(self.hidden)
        if height % factor or width % factor:
            raise ValueError(f"conv architecture with {len(self.hidden)} stages needs height and width divisible "
                             f"by {factor}; got {height}x{width} — resize images or use architecture='mlp'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"ModelSpec got unknown fields {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "ModelSpec":
        return cls.from_dict(json.loads(s))

    @classmethod
    def for_images(cls, shape: tuple[int, int, int], latent_dim: int = DEFAULT_LATENT_DIM,
                   hidden: tuple[int, ...] = DEFAULT_CONV_HIDDEN, pixels: str = DEFAULT_PIXELS,
                   variance: str = DEFAULT_PIXEL_VARIANCE, condition_levels: tuple[int, ...] = ()) -> "ModelSpec":
        """Conv VAE over pixels scaled to [0, 1]: a Bernoulli per pixel (the continuous cross-entropy,
        the usual density model), or `pixels="gaussian"` with `variance` ("shared": one learned std)."""
        if pixels not in CONV_LIKELIHOOD_KINDS:
            raise ValueError(f"image pixels must be one of {CONV_LIKELIHOOD_KINDS}; got {pixels!r}")
        # A learned pixel std starts at 0.1, not 1 (wider than the whole [0, 1] range): on a few hundred
        # images it otherwise spends most of training getting there (one-class digits 5, 8, 9 over
        # 5 folds: 0.991 starting at 1, 0.993 at 0.1).
        gaussian = {"variance": variance, "init_std": PIXEL_INIT_STD}
        block = LikelihoodBlock(pixels, math.prod(shape), **(gaussian if pixels == "gaussian" else {}))
        return cls("conv", tuple(shape), latent_dim, tuple(hidden), likelihood=(block,),
                   condition_levels=tuple(condition_levels))

    @classmethod
    def for_table(cls, num_numeric: int, categorical_levels: list[int], latent_dim: int = DEFAULT_LATENT_DIM,
                  hidden: tuple[int, ...] = DEFAULT_MLP_HIDDEN, variance: str = DEFAULT_COLUMN_VARIANCE,
                  num_zero_inflated: int = 0, condition_levels: tuple[int, ...] = ()) -> "ModelSpec":
        """MLP VAE over rows laid out as [standardized numerics..., zero-inflated (indicator, value)
        pairs..., one-hot group 1..., group 2...]."""
        blocks = [LikelihoodBlock("gaussian", num_numeric, variance=variance)] if num_numeric > 0 else []
        if num_zero_inflated > 0:  # one block for every pair: a step's cost does not grow with their number
            blocks.append(LikelihoodBlock("zero_inflated", 2 * num_zero_inflated, variance=variance))
        blocks += [LikelihoodBlock("categorical", levels) for levels in categorical_levels]
        feature_dim = num_numeric + 2 * num_zero_inflated + sum(categorical_levels)
        return cls("mlp", (feature_dim,), latent_dim, tuple(hidden), likelihood=tuple(blocks),
                   condition_levels=tuple(condition_levels))
