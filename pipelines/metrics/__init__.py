"""Measurements of models and their outputs: pure functions over arrays (numpy, pandas, scikit-learn), no I/O."""
