"""The example job configs, shipped with the package: `vaepipe train configs/digits.yaml` finds them even
where no configs/ folder is beside it (pipelines.config.resolve_config_path)."""
