"""What the batch verbs (score, generate, embed, nightly) share: the config base, a pool of model actors,
the input checked against the model, Parquet parts recorded for the commit, and the run skeleton."""
