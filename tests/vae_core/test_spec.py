import pytest

from vae_core import LikelihoodBlock, ModelSpec


def test_table_spec_lays_out_gaussian_block_then_one_categorical_block_per_column():
    spec = ModelSpec.for_table(num_numeric=4, categorical_levels=[3, 2])
    assert spec.architecture == "mlp"
    assert spec.input_shape == (9,)
    assert [(b.kind, b.size) for b in spec.likelihood] == [("gaussian", 4), ("categorical", 3), ("categorical", 2)]


def test_table_spec_without_numeric_columns_has_only_categorical_blocks():
    spec = ModelSpec.for_table(num_numeric=0, categorical_levels=[3])
    assert [b.kind for b in spec.likelihood] == ["categorical"]


def test_image_spec_is_conv_with_one_bernoulli_block_over_all_pixels():
    spec = ModelSpec.for_images((3, 32, 32))
    assert spec.architecture == "conv"
    assert spec.likelihood == (LikelihoodBlock("bernoulli", 3 * 32 * 32),)
    assert spec.feature_dim == 3072


def test_image_spec_with_gaussian_pixels_shares_one_std_by_default():
    spec = ModelSpec.for_images((1, 8, 8), pixels="gaussian")
    assert spec.likelihood == (LikelihoodBlock("gaussian", 64, variance="shared", init_std=0.1),)


def test_image_spec_with_a_table_likelihood_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="pixels must be one of .*'categorical'"):
        ModelSpec.for_images((1, 8, 8), pixels="categorical")


@pytest.mark.parametrize("spec", [
    ModelSpec.for_table(2, [3, 4], variance="fixed"),
    ModelSpec.for_images((1, 8, 8), pixels="gaussian"),
    ModelSpec.for_images((1, 28, 28), latent_dim=5, hidden=(16, 32)),
    ModelSpec("mlp", (6,), 4, (8,), likelihood=(LikelihoodBlock("gaussian", 6, variance="fixed", fixed_std=0.5),)),
])
def test_spec_round_trips_through_json_and_dict_with_tuples_restored(spec):
    restored = ModelSpec.from_json(spec.to_json())
    assert restored == spec
    assert isinstance(restored.input_shape, tuple) and isinstance(restored.hidden, tuple)
    assert all(isinstance(b, LikelihoodBlock) for b in restored.likelihood)
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_latent_dim_zero_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match="latent_dim"):
        ModelSpec.for_table(3, [2], latent_dim=0)


def test_block_sizes_not_summing_to_feature_count_are_rejected():
    with pytest.raises(ValueError, match="sum to 3 but input_shape"):
        ModelSpec("mlp", (4,), 4, (8,), likelihood=(LikelihoodBlock("gaussian", 3),))


def test_empty_hidden_is_rejected():
    with pytest.raises(ValueError, match="hidden"):
        ModelSpec.for_images((1, 8, 8), hidden=())


def test_conv_input_not_divisible_by_stage_factor_is_rejected_with_advice():
    with pytest.raises(ValueError, match="2 stages needs height and width divisible by 4; got 6x6.*architecture='mlp'"):
        ModelSpec.for_images((1, 6, 6), hidden=(32, 64))


def test_conv_with_categorical_likelihood_is_rejected():
    with pytest.raises(ValueError, match="conv architecture needs one pixel likelihood"):
        ModelSpec("conv", (1, 4, 4), 4, hidden=(8,), likelihood=(LikelihoodBlock("categorical", 16),))


def test_unknown_likelihood_kind_is_rejected():
    with pytest.raises(ValueError, match="poisson"):
        LikelihoodBlock("poisson", 3)


def test_unknown_field_in_dict_is_rejected_naming_it():
    d = ModelSpec.for_table(2, []).to_dict() | {"dropout": 0.1}
    with pytest.raises(ValueError, match="dropout"):
        ModelSpec.from_dict(d)
