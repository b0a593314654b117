"""Ray's fake multi-node node provider, with each worker node in its own temp dir, as a real node has its own disk.

Loaded by the autoscaler monitor of tests/autoscaling_cluster.py (provider type `external`; this folder is on
the head's PYTHONPATH). With Ray's provider as it is, every worker node shares the head's temp dir, and a
worker node setting up a submitted job's working_dir unpacks it again over the head's copy (Ray's
working_dir plugin overwrites: `shutil.rmtree` then unzip), deleting the directory the job's driver runs in:
Ray Tune then fails at its end in `os.getcwd()`. On a real cluster each node unpacks on its own disk.
"""
from __future__ import annotations

import tempfile
from unittest import mock

import ray._private.node
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class OwnTempDirFakeProvider(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        start_node = ray._private.node.Node
        root = self.provider_config["worker_temp_root"]

        def node_in_its_own_temp_dir(ray_params, **kwargs):
            ray_params.temp_dir = tempfile.mkdtemp(prefix="w", dir=root)  # short: unix socket paths are capped
            return start_node(ray_params, **kwargs)

        # The provider builds the node with `ray._private.node.Node(...)`; it does so under its own lock.
        with mock.patch.object(ray._private.node, "Node", node_in_its_own_temp_dir):
            super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
