"""The notebook API (`vaepipe.VAEDetector`, `VAESynthesizer`) against the CLI: a model fitted in a notebook,
saved into a storage root, is scored by `vaepipe score` to the same numbers, and loads back the same; samples
keep the fitted frame's schema. All in this process (engine local): no Ray."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from pipelines.cli.main import main
from pipelines.datasets.sources import load_builtin
from pipelines.errors import UserError
from pipelines.storage.objects import resolve
from vaepipe import NotFittedError, VAEDetector, VAESynthesizer

DATE = "2026-12-01"


def breast_cancer_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """scikit-learn's breast cancer table as a user has it (the built-in sample's columns, row i = row id i) and
    whether each row is benign (the normal class)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data.rename(columns=lambda name: name.replace(" ", "_")), data.target.to_numpy() == 1


def read_parts(prefix: str) -> pd.DataFrame:
    """The Parquet parts of a committed output (pyarrow skips `_SUCCESS` and `_summary.json`)."""
    location = resolve(prefix)
    return ds.dataset(location.path, format="parquet", filesystem=location.filesystem).to_table().to_pandas()


@pytest.fixture(scope="module")
def saved_detector(s3_store) -> dict:
    """A detector fitted on the benign rows (3 epochs), saved into a storage root on the S3 server, and
    `vaepipe score` of the built-in breast_cancer dataset (every row) with that saved model."""
    root = f"s3://{s3_store.bucket}/notebook-{uuid.uuid4().hex[:8]}"
    frame, benign = breast_cancer_frame()
    detector = VAEDetector(epochs=3, seed=0, contamination=0.05, engine="local").fit(frame[benign])
    reference = detector.save(root)
    assert main(["prepare", "breast_cancer", "--storage", root]) == 0
    assert main(["score", "--model", reference, "--input", "breast_cancer", "--storage", root, "--date", DATE,
                 "--engine", "local"]) == 0
    name, version = reference.split("@")
    scores = read_parts(f"{root}/scores/{name}-v{version}/breast_cancer/{DATE}")
    scores.index = scores["row_id"].astype(int)
    return {"root": root, "reference": reference, "detector": detector, "frame": frame, "benign": benign,
            "scores": scores.sort_index()}


def test_decision_scores_equal_what_vaepipe_score_writes_for_the_saved_model(saved_detector):
    detector, frame, benign, scores = (saved_detector[key] for key in ("detector", "frame", "benign", "scores"))
    assert len(scores) == len(frame) == 569
    # decision_scores_: the fitted (benign) rows' scores, as `vaepipe score` scored the same rows
    np.testing.assert_allclose(detector.decision_scores_, scores["anomaly_score"].to_numpy()[benign],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(detector.decision_function(frame), scores["anomaly_score"].to_numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(detector.predict(frame), scores["is_anomaly"].to_numpy().astype(int))
    np.testing.assert_allclose(detector.predict_proba(frame)[:, 1], scores["percentile"].to_numpy() / 100,
                               atol=1e-6)
    np.testing.assert_array_equal(detector.labels_, (detector.decision_scores_ > detector.threshold_).astype(int))
    # the threshold is the card's: the 95th percentile of the held-out validation rows' scores
    assert 0 < detector.labels_.mean() < 0.5
    # and the model tells the classes apart: malignant rows score higher than benign ones
    assert scores["anomaly_score"][~benign].median() > scores["anomaly_score"][benign].median()


def test_an_array_is_read_by_position_and_other_columns_or_widths_are_refused(saved_detector):
    """As scikit-learn reads X: an array by the fitted columns' positions; another width, or a DataFrame with a
    column the model was not fitted to (a label left in), is refused — an extra column was silently ignored."""
    detector, frame = saved_detector["detector"], saved_detector["frame"]
    assert list(detector.feature_names_in_) == list(frame.columns) and detector.n_features_in_ == 30
    np.testing.assert_allclose(detector.decision_function(frame.to_numpy()[:20]),
                               detector.decision_function(frame.head(20)), rtol=1e-6)
    with pytest.raises(UserError, match="X has 31 columns, but the model was fitted to 30"):
        detector.decision_function(np.hstack([frame.to_numpy()[:5], np.zeros((5, 1))]))
    with pytest.raises(UserError, match=r"X has column\(s\) \['diagnosis'\] the model was not fitted to"):
        detector.decision_function(frame.head(5).assign(diagnosis=1))
    with pytest.raises(UserError, match=r"X must be a DataFrame, a 2-D array .* got an array of shape \(30,\)"):
        detector.decision_function(frame.to_numpy()[0])  # one row, not as a row of rows


def test_a_saved_model_loads_back_by_reference_and_by_folder_with_the_same_numbers(saved_detector):
    detector, frame, root, reference = (saved_detector[key] for key in ("detector", "frame", "root", "reference"))
    name, version = reference.split("@")
    for loaded in (VAEDetector.load(reference, storage=root), VAEDetector.load(f"{root}/models/{name}/{version}")):
        assert loaded.reference_ == reference
        assert loaded.threshold_ == pytest.approx(detector.threshold_)
        assert loaded.card_["metrics"] == detector.card_["metrics"]
        np.testing.assert_array_equal(loaded.decision_function(frame), detector.decision_function(frame))
        np.testing.assert_array_equal(loaded.transform(frame), detector.transform(frame))


def test_embeddings_are_the_latent_means_per_row(saved_detector):
    detector, frame = saved_detector["detector"], saved_detector["frame"]
    latent = detector.transform(frame)
    assert latent.shape == (len(frame), detector.card_["spec"]["latent_dim"]) and np.isfinite(latent).all()
    np.testing.assert_allclose(detector.transform(frame.iloc[:7]), latent[:7], rtol=1e-5, atol=1e-6)


def test_inverse_transform_decodes_latents_back_into_the_frames_columns(saved_detector):
    detector, frame = saved_detector["detector"], saved_detector["frame"]
    rows = detector.inverse_transform(detector.transform(frame.iloc[:50]))
    assert list(rows.columns) == list(frame.columns) and len(rows) == 50
    assert rows.dtypes.astype(str).to_dict() == frame.dtypes.astype(str).to_dict()
    # a reconstruction: each row is nearer its own original than the average other row (standardized columns)
    scale = frame.std()
    own = (((rows - frame.iloc[:50].reset_index(drop=True)) / scale) ** 2).sum(axis=1)
    other = (((rows - frame.iloc[50:100].reset_index(drop=True)) / scale) ** 2).sum(axis=1)
    assert own.mean() < other.mean(), (own.mean(), other.mean())
    with pytest.raises(ValueError, match="latent size"):
        detector.inverse_transform(np.zeros((2, 99)))


def test_score_samples_are_the_elbo_vaepipe_score_writes_and_score_their_mean(saved_detector):
    detector, frame, scores = (saved_detector[key] for key in ("detector", "frame", "scores"))
    np.testing.assert_allclose(detector.score_samples(frame), -scores["neg_elbo"].to_numpy(), rtol=1e-5, atol=1e-4)
    assert detector.score(frame) == pytest.approx(float(np.mean(detector.score_samples(frame))))


def test_a_model_is_a_scikit_learn_estimator_cloned_and_checked_as_one(saved_detector):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError as SklearnNotFitted
    from sklearn.utils.validation import check_is_fitted

    detector = saved_detector["detector"]
    params = detector.get_params()
    assert params["epochs"] == 3 and params["contamination"] == 0.05 and params["latent_dim"] is None
    twin = clone(detector).set_params(latent_dim=4)
    assert twin.get_params() == {**params, "latent_dim": 4} and detector.get_params() == params
    check_is_fitted(detector)
    with pytest.raises(SklearnNotFitted):
        check_is_fitted(twin)
    assert VAEDetector().get_params()["contamination"] is None  # the train config's 0.01 at fit


def test_a_detector_in_a_pipeline_scores_as_one_fitted_on_the_scaled_rows(saved_detector):
    """PyOD users put a scaler before the detector; the Pipeline's scores are the detector's on the scaled rows."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, benign = saved_detector["frame"], saved_detector["benign"]
    pipeline = make_pipeline(StandardScaler(), VAEDetector(epochs=2, seed=0, engine="local")).fit(frame[benign])
    scaled = pipeline[0].transform(frame)
    alone = VAEDetector(epochs=2, seed=0, engine="local").fit(pipeline[0].transform(frame[benign]))
    np.testing.assert_allclose(pipeline.decision_function(frame), alone.decision_function(scaled), rtol=1e-5,
                               atol=1e-5)


def test_grid_search_picks_the_setting_with_the_highest_held_out_elbo(saved_detector):
    from sklearn.model_selection import GridSearchCV

    frame = saved_detector["frame"][saved_detector["benign"]]
    search = GridSearchCV(VAEDetector(epochs=2, seed=0, engine="local"), {"latent_dim": [2, 8]}, cv=2).fit(frame)
    means = search.cv_results_["mean_test_score"]
    assert np.isfinite(means).all() and search.best_params_ == {"latent_dim": [2, 8][int(np.argmax(means))]}
    assert search.best_estimator_.latent_dim == search.best_params_["latent_dim"]
    assert search.best_estimator_.transform(frame).shape == (len(frame), search.best_params_["latent_dim"])


def test_embeddings_come_out_as_a_frame_with_set_output(fair_frame):
    model = VAESynthesizer(epochs=2, seed=0, latent_dim=3, engine="local").set_output(transform="pandas")
    embedded = model.fit_transform(fair_frame)
    assert list(embedded.columns) == ["mu_0", "mu_1", "mu_2"] and len(embedded) == len(fair_frame)
    np.testing.assert_allclose(embedded.to_numpy(), model.set_output(transform="default").transform(fair_frame))


def test_an_unfitted_model_says_to_fit_it_first():
    with pytest.raises(NotFittedError, match=r"not fitted: call fit\(X\)"):
        VAEDetector().decision_function(np.zeros((2, 3)))


@pytest.fixture(scope="module")
def fair_frame() -> pd.DataFrame:
    """The built-in `fair` table with a pandas category column, an int64 column, str columns and floats."""
    frame = load_builtin("fair").table.copy()
    frame["religious"] = pd.Categorical(frame["religious"], categories=sorted(set(frame["religious"])))
    frame["children"] = frame["children"].round().astype("int64")
    return frame


def test_a_frame_with_gaps_fits_with_prepares_impute_and_the_error_says_so(fair_frame):
    holed = fair_frame.copy()
    holed.loc[::7, "age"] = np.nan
    with pytest.raises(UserError, match=r"column 'age' has 910 NaN/inf value\(s\).*fit\(impute=\.\.\.\)"):
        VAESynthesizer(epochs=1, seed=0, engine="local").fit(holed)
    rows = VAESynthesizer(epochs=1, seed=0, engine="local").fit(holed, impute="median").sample(50, seed=0)
    assert list(rows.columns) == list(holed.columns) and rows["age"].notna().all()
    with pytest.raises(UserError, match="a detector scores rows as they are.*impute='keep'"):
        VAEDetector(epochs=1, engine="local").fit(holed, impute="median")


def test_missing_categories_come_back_as_missing_values_in_the_source_dtype_not_as_a_level_name(fair_frame):
    # a gap in a categorical column is a level of its own for the model (fit(impute=...)); what `sample` gives
    # back there is a missing value of the column's dtype — it gave the text '__missing__', and a float code
    # column made `sample` raise
    rng = np.random.default_rng(0)
    holed = fair_frame.copy()
    holed["married_band"] = (holed["yrs_married"] // 5).astype("float64")  # a float code column
    holed["children_known"] = pd.array(holed["children"].round(), dtype="Int64")
    holed["young"] = pd.array(holed["age"] < 30, dtype="boolean")
    categorical = ["occupation", "married_band", "religious", "children_known", "young"]
    for column in categorical:
        holed.loc[rng.random(len(holed)) < 0.3, column] = None
    synthesizer = VAESynthesizer(epochs=2, seed=0, engine="local").fit(holed, categorical=categorical,
                                                                       impute="median")
    rows = synthesizer.sample(500, seed=0)

    assert rows.dtypes.to_dict() == holed.dtypes.to_dict()
    assert list(rows["religious"].cat.categories) == list(holed["religious"].cat.categories)
    for column in categorical:
        gaps = rows[column].isna()
        assert 0 < gaps.mean() < 0.7, column  # the source's 30 %, as the model learned it in two epochs
        assert set(rows[column][~gaps]) <= set(holed[column].dropna()), column
    # the rows it was fitted to, gaps and all, score as rows of the model
    assert np.isfinite(synthesizer.score_samples(holed.head(200))).all()


def test_with_impute_keep_samples_have_gaps_in_the_frames_share_and_a_detector_scores_rows_with_gaps(fair_frame):
    # what an SDV user's synthesizer does with a table that has holes: learn them and generate them
    rng = np.random.default_rng(1)
    holed = fair_frame.copy()
    holed["children"] = holed["children"].astype("Int64")
    for column in ("age", "children", "occupation"):
        holed.loc[rng.random(len(holed)) < 0.2, column] = None
    synthesizer = VAESynthesizer(epochs=5, seed=0, engine="local").fit(holed, impute="keep")
    # the prior: its shares are the model's after a few epochs; the latent mixture's come close with the default
    # budget (tests/pipelines/jobs/test_generate_cli.py)
    rows = synthesizer.sample(3000, seed=0, sampler="prior")
    assert rows.dtypes.to_dict() == holed.dtypes.to_dict()
    for column in ("age", "children", "occupation"):
        assert rows[column].isna().mean() == pytest.approx(holed[column].isna().mean(), abs=0.05), column
    assert rows["yrs_married"].notna().all()
    present = rows["age"].dropna()
    assert present.between(holed["age"].min(), holed["age"].max()).all()

    detector = VAEDetector(epochs=2, seed=0, engine="local").fit(holed, impute="keep")
    scores = detector.decision_function(holed.head(300))
    assert np.isfinite(scores).all()
    with pytest.raises(UserError, match="column 'yrs_married' has"):  # a gap where training had none
        detector.decision_function(holed.head(5).assign(yrs_married=np.nan))


def test_sample_returns_the_fitted_frames_columns_dtypes_and_levels(fair_frame):
    synthesizer = VAESynthesizer(epochs=2, seed=0, engine="local").fit(fair_frame)
    rows = synthesizer.sample(300, seed=1)

    assert list(rows.columns) == list(fair_frame.columns) and len(rows) == 300
    assert rows.dtypes.to_dict() == fair_frame.dtypes.to_dict()
    assert list(rows["religious"].cat.categories) == list(fair_frame["religious"].cat.categories)
    for column in ("rate_marriage", "educ", "occupation", "occupation_husb"):
        assert set(rows[column]) <= set(fair_frame[column]), column
    # a seed gives the same rows; SDV's keyword
    pd.testing.assert_frame_equal(synthesizer.sample(num_rows=300, seed=1), rows)
    assert not synthesizer.sample(300, seed=2).equals(rows)


def test_a_table_samples_from_its_latent_mixture_and_a_loaded_one_from_the_prior(fair_frame, tmp_path):
    synthesizer = VAESynthesizer(epochs=2, seed=0, engine="local").fit(fair_frame)
    mixture = synthesizer.latent_mixture_
    assert mixture is not None and mixture.means_.shape[1] == synthesizer.card_["spec"]["latent_dim"]
    # auto is the mixture, as `vaepipe generate` does for a table whose training rows it has
    pd.testing.assert_frame_equal(synthesizer.sample(200, seed=4), synthesizer.sample(200, seed=4, sampler="gmm"))
    assert not synthesizer.sample(200, seed=4).equals(synthesizer.sample(200, seed=4, sampler="prior"))
    loaded = VAESynthesizer.load(synthesizer.save(str(tmp_path)), storage=str(tmp_path))
    pd.testing.assert_frame_equal(loaded.sample(200, seed=4), synthesizer.sample(200, seed=4, sampler="prior"))
    with pytest.raises(UserError, match="sampler='prior'"):
        loaded.sample(10, sampler="gmm")


def test_fit_takes_prepares_numeric_transform_for_every_column_and_per_column(fair_frame):
    detector = VAEDetector(epochs=2, seed=0, engine="local").fit(fair_frame, column_transforms={"age": "quantile"})
    transforms = {column.name: column.transform for column in detector.manifest_.numeric}
    assert transforms["age"] == "quantile" and transforms["affairs"] == "log1p"  # prepare's auto rule elsewhere

    synthesizer = VAESynthesizer(epochs=2, seed=0, engine="local").fit(fair_frame, column_transforms={"age": "identity"})
    transforms = {column.name: column.transform for column in synthesizer.manifest_.numeric}
    assert transforms.pop("age") == "identity" and set(transforms.values()) == {"quantile"}, transforms
    rows = synthesizer.sample(500, seed=0)
    # a quantile column comes back through the training rows' quantiles: never outside their range
    assert rows["affairs"].between(fair_frame["affairs"].min(), fair_frame["affairs"].max()).all()


@pytest.mark.parametrize("options, named", [
    ({"transform": "cubic"}, "transform"),
    ({"column_transforms": {"age": "cubic"}}, "column_transforms.age"),
    ({"column_transforms": {"no_such_column": "quantile"}}, "no_such_column"),
])
def test_a_bad_transform_is_refused_naming_it_before_training(fair_frame, options, named):
    with pytest.raises(UserError, match=named):
        VAESynthesizer(epochs=2, engine="local").fit(fair_frame, **options)


def test_fit_takes_prepares_split_so_every_row_can_train(fair_frame):
    frame = fair_frame.head(2_000)  # the split is the point, not the model
    synthesizer = VAESynthesizer(epochs=1, seed=0, engine="local").fit(
        frame, split={"train": 0.9, "val": 0.1, "test": 0.0})
    rows = synthesizer.manifest_.split_rows
    assert rows["test"] == 0 and rows["train"] + rows["val"] == len(frame)
    assert 0.85 < rows["train"] / len(frame) < 0.95  # a hash of the row: near the share, not exactly it
    default = VAESynthesizer(epochs=1, seed=0, engine="local").fit(frame).manifest_.split_rows
    assert default["test"] > 0 and default["train"] < rows["train"]  # prepare's 80/10/10 without split=


@pytest.mark.parametrize("split, named", [
    ({"train": 0.9, "val": 0.1}, "split"),  # a key missing
    ({"train": 0.9, "val": 0.0, "test": 0.1}, "val"),  # nothing to pick the best epoch on
])
def test_a_bad_split_is_refused_naming_it(fair_frame, split, named):
    with pytest.raises(UserError, match=named):
        VAESynthesizer(epochs=1, engine="local").fit(fair_frame, split=split)
