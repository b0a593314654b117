"""What `train` and `tune` share: the job config, the model each dataset gets (one owner of the model's
defaults), the per-worker loop, the Ray Train trainer, checkpoints, calibration, registration, runs and
the sweep's config and results table."""
