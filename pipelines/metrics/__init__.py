"""Measures as pure functions (numpy, pandas, scikit-learn; no I/O, no Ray): anomaly-score summaries and
thresholds, and what later measures of data and models need."""
