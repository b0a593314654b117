"""Prepared datasets: sources, sharding, manifests and readers."""
