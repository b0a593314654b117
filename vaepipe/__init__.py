"""vaepipe in a notebook: VAEs fitted to DataFrames and arrays, shaped like the tools you know.

    import pandas as pd
    from vaepipe import VAEDetector, VAESynthesizer

    detector = VAEDetector(contamination=0.01).fit(frame)          # PyOD-shaped, on the normal rows
    detector.decision_scores_, detector.threshold_, detector.labels_
    detector.predict(new_rows), detector.predict_proba(new_rows)
    detector.transform(frame)                                       # embeddings: latent means
    reference = detector.save("s3://bucket/vaepipe")               # -> "notebook@1": `vaepipe score --model notebook@1`
    detector = VAEDetector.load("fraud@3", storage="s3://bucket/vaepipe")

    synthesizer = VAESynthesizer(epochs=50).fit(frame, categorical=["region"])   # SDV-shaped
    rows = synthesizer.sample(1000, seed=0)                         # frame's columns, dtypes and levels

`fit` is `vaepipe prepare` + `vaepipe train` with the same code and numbers, in this process by default
(`engine="ray"` runs it as a Ray Train job); see `vaepipe.estimators`.
"""
from vaepipe.estimators import NotFittedError, VAEDetector, VAEModel, VAESynthesizer

__all__ = ["VAEDetector", "VAESynthesizer", "VAEModel", "NotFittedError"]
