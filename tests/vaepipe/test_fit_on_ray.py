"""`VAEDetector(engine="ray", scaling=...)`: the notebook's fit as a Ray Train job, registered in `storage`."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_detector_fitted_on_ray_is_registered_and_scores_like_its_registered_version(s3_store, ray_cluster):
    from sklearn.datasets import load_breast_cancer

    from vaepipe import VAEDetector

    root = f"s3://{s3_store.bucket}/notebook-ray-{uuid.uuid4().hex[:8]}"
    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda name: name.replace(" ", "_"))
    detector = VAEDetector(name="cancer", epochs=2, seed=0, engine="ray", storage=root,
                           scaling={"num_workers": 1, "cpus_per_worker": 0.5}).fit(frame[data.target == 1])

    assert detector.engine_.line == "engine: ray (asked for)"
    assert detector.reference_ == "cancer@1" and detector.storage_ == root
    assert detector.card_["training"]["config"]["scaling"]["num_workers"] == 1
    loaded = VAEDetector.load("cancer@1", storage=root)
    np.testing.assert_array_equal(loaded.decision_function(frame), detector.decision_function(frame))
    assert detector.decision_scores_.shape == ((data.target == 1).sum(),)
