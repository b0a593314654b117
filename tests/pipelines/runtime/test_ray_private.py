"""Every private Ray API vaepipe uses (`pipelines.runtime.ray_private`) exists in the installed Ray and does
what we rely on: when an upgrade renames one, this fails by name instead of a job in the middle of a run."""
from __future__ import annotations

import importlib
import logging

from pipelines.runtime import ray_private


def test_the_node_ip_address_is_an_address():
    address = ray_private.node_ip_address()
    assert address.count(".") == 3 or ":" in address, address


def test_a_loopback_gcs_address_is_dialled_at_the_node_address_and_others_as_given():
    node = ray_private.node_ip_address()
    assert ray_private.dialled_address("127.0.0.1:6379") == f"{node}:6379"
    assert ray_private.dialled_address("localhost:6379") == f"{node}:6379"
    assert ray_private.dialled_address("10.1.2.3:6379") == "10.1.2.3:6379"


def test_a_running_gcs_answers_as_one(ray_cluster):
    assert ray_private.answers_as_gcs(ray_private.dialled_address(ray_cluster), timeout_s=5)


def test_the_local_node_records_its_processes(ray_cluster):
    node = ray_private.local_node()
    assert node is not None
    processes = ray_private.node_processes(node)
    assert processes.get("raylet") and processes.get("gcs_server"), processes
    assert ray_private.node_logs_dir(node)


def test_the_v1_parquet_reader_switch_is_set_inside_and_restored_after():
    from ray.data import DataContext

    context = DataContext.get_current()
    before = context.use_datasource_v2
    with ray_private.parquet_reader_v1():
        assert context.use_datasource_v2 is False
    assert context.use_datasource_v2 == before


def test_the_parquet_datasource_logger_exists_and_is_quieted():
    importlib.import_module(ray_private.PARQUET_DATASOURCE_LOGGER)
    ray_private.quiet_parquet_datasource()
    assert logging.getLogger(ray_private.PARQUET_DATASOURCE_LOGGER).level == logging.WARNING


def test_tune_stops_propagating_the_named_variables():
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE.add("VAEPIPE_TEST_ONLY")
    ray_private.stop_tune_propagating({"VAEPIPE_TEST_ONLY"})
    assert "VAEPIPE_TEST_ONLY" not in class_cache.ENV_VARS_TO_PROPAGATE


def test_harmless_cluster_messages_are_dropped_and_others_printed(capsys):
    from ray._private import worker

    original = worker.print_to_stdstream
    try:
        ray_private.drop_cluster_messages(lambda line: "PYTHON worker processes" in line)
        ray_private.drop_cluster_messages(lambda line: "PYTHON worker processes" in line)  # idempotent
        # what `listen_error_messages` hands it (its own call, with a raylet message of each kind)
        worker.print_to_stdstream({"lines": ["WARNING: 8 PYTHON worker processes have been started"],
                                   "pid": "raylet", "is_err": False}, ignore_prefix=False)
        worker.print_to_stdstream({"lines": ["A worker died or was killed while executing a task"],
                                   "pid": "raylet", "is_err": False}, ignore_prefix=False)
    finally:
        worker.print_to_stdstream = original
    out = capsys.readouterr().out
    assert "PYTHON worker processes" not in out and "A worker died" in out
