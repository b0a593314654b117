"""vaepipe jobs: Ray Data / Train / Tune, storage, configs, registry, reports and the CLI."""
__version__ = "0.1.0"
