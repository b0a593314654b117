"""The conditional VAE (Sohn et al. 2015) and its semi-supervised form (Kingma et al. 2014, M2): a model that
generates the class it is asked for, learns from rows without a label, and scores a row given its label."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from vae_core import VAE, ModelSpec, anomaly_scores, iw_log_likelihood, load_model, sample_prior, save_model


def digits_with_labels(labelled_per_class: int | None, seed: int = 0):
    """(model input [N, 64 + 10], labels, train rows, test rows): pixels in [0, 1] then the label one-hot, all
    zeros for train rows beyond the first `labelled_per_class` of each class (None: every row labelled) and
    for every test row."""
    digits = load_digits()
    pixels = (digits.images / 16.0).reshape(len(digits.images), -1).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(pixels))
    test, train = order[:400], order[400:]
    keep = train if labelled_per_class is None else np.concatenate(
        [train[digits.target[train] == k][:labelled_per_class] for k in range(10)])
    onehot = np.zeros((len(pixels), 10), np.float32)
    onehot[keep, digits.target[keep]] = 1.0
    return torch.from_numpy(np.concatenate([pixels, onehot], 1)), digits.target, train, test


def fit(model: VAE, x: torch.Tensor, rows: np.ndarray, epochs: int, classifier_weight: float = 1.0) -> VAE:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = rng.permutation(rows)
        for start in range(0, len(order), 64):
            loss = model(x[order[start:start + 64]], classifier_weight=classifier_weight).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@pytest.fixture(scope="module")
def labelled_digits_model():
    x, labels, train, test = digits_with_labels(None)
    torch.manual_seed(0)
    model = VAE(ModelSpec.for_images((1, 8, 8), latent_dim=8, hidden=(16, 32), condition_levels=(10,)))
    return fit(model, x, train, epochs=10), x, labels, train, test


def test_class_conditional_samples_are_classified_as_their_class_far_above_chance(labelled_digits_model):
    model, x, labels, train, _ = labelled_digits_model
    real = LogisticRegression(max_iter=2000).fit(x[train, :64].numpy(), labels[train])
    asked = torch.arange(500) % 10
    samples = sample_prior(model, 500, generator=torch.Generator().manual_seed(1),
                           condition=torch.nn.functional.one_hot(asked, 10).float())
    assert samples.shape == (500, 1, 8, 8)
    agreement = (real.predict(samples.reshape(500, -1).numpy()) == asked.numpy()).mean()
    assert agreement >= 0.8, agreement  # chance: 0.1


def test_a_row_scores_worse_under_a_wrong_label_than_under_its_own(labelled_digits_model):
    model, x, labels, _, test = labelled_digits_model
    rows = x[test[:200]].clone()
    rows[:, 64:] = torch.nn.functional.one_hot(torch.from_numpy(labels[test[:200]]), 10).float()
    wrong = rows.clone()
    wrong[:, 64:] = torch.nn.functional.one_hot(torch.from_numpy((labels[test[:200]] + 5) % 10), 10).float()
    own, other = anomaly_scores(model, rows)["anomaly_score"], anomaly_scores(model, wrong)["anomaly_score"]
    assert (other > own).float().mean() > 0.9
    iw = iw_log_likelihood(model, rows[:20], k=20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(iw).all()


@pytest.mark.slow  # 11 s of training
def test_unlabelled_rows_train_the_classifier_and_ten_labels_per_class_classify_well():
    x, labels, train, test = digits_with_labels(10)
    torch.manual_seed(0)
    model = VAE(ModelSpec.for_images((1, 8, 8), latent_dim=8, hidden=(16, 32), condition_levels=(10,)))
    unlabelled = x[train[:64]].clone()
    unlabelled[:, 64:] = 0.0
    model(unlabelled).loss.backward()
    assert model.classifier[0].weight.grad.abs().sum() > 0  # q(y|x) weighs each level's bound
    fit(model, x, train, epochs=25, classifier_weight=0.1 * len(train) / 100)
    with model.inference():
        accuracy = (model.class_probabilities(x[test]).argmax(1).numpy() == labels[test]).mean()
    assert accuracy >= 0.8, accuracy  # 100 labels; chance 0.1


def test_the_m2_bound_of_an_unlabelled_row_averages_each_levels_bound_by_q():
    torch.manual_seed(0)
    model = VAE(ModelSpec.for_table(3, [], latent_dim=2, hidden=(8,), condition_levels=(3,)))
    features = torch.randn(4, 3)
    with model.inference():
        # zero-variance posteriors make every bound deterministic, so the identity can be checked exactly
        model.encoder[-1].bias.data[2:] = -1e4
        out = model(torch.cat([features, torch.zeros(4, 3)], 1))
        q = model.class_probabilities(torch.cat([features, torch.zeros(4, 3)], 1))
        each = torch.stack([model(torch.cat([features, torch.eye(3)[k].expand(4, 3)], 1)).neg_elbo
                            for k in range(3)], 1)
    expected = (q * each).sum(1) + (q * q.log()).sum(1) + np.log(3)
    torch.testing.assert_close(out.neg_elbo, expected, rtol=1e-4, atol=1e-3)


def test_conditional_input_is_checked_and_several_conditions_need_every_level():
    model = VAE(ModelSpec.for_table(3, [2], latent_dim=2, hidden=(8,), condition_levels=(2, 3)))
    with pytest.raises(ValueError, match=r"\[B, 5 features \+ 5 condition one-hots\]"):
        model(torch.zeros(4, 5))
    assert not hasattr(model, "classifier")
    missing = torch.cat([torch.zeros(2, 5), torch.tensor([[1.0, 0, 0, 0, 0]]).expand(2, 5)], 1)
    with pytest.raises(ValueError, match="exactly one condition"):
        model(missing)
    with pytest.raises(ValueError, match="condition_levels must be ints >= 2"):
        ModelSpec.for_table(3, [], condition_levels=(1,))


def test_a_conditional_model_round_trips_and_an_unconditional_spec_reads_as_before(tmp_path):
    torch.manual_seed(0)
    model = VAE(ModelSpec.for_images((1, 8, 8), latent_dim=2, hidden=(8,), condition_levels=(4,)))
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec and loaded.spec.condition_dim == 4
    x = torch.cat([torch.rand(3, 64), torch.eye(4)[:3]], 1)
    with model.inference(), loaded.inference():
        torch.testing.assert_close(loaded.encode(x).mu, model.encode(x).mu)
    plain = ModelSpec.for_images((1, 8, 8)).to_dict()
    plain.pop("condition_levels")
    assert ModelSpec.from_dict(plain).condition_levels == ()
