"""What a job sizes itself on, the packing it is checked with, and the Ray internals it reads.

Against Ray's own autoscaler (a cluster that starts from zero worker nodes): tests/cluster/test_autoscaling.py.
"""
from __future__ import annotations

import inspect

import pytest

from pipelines.runtime import cluster_capacity
from pipelines.runtime.cluster_capacity import (
    Capacity,
    NodeType,
    ScaleUpError,
    check_placeable,
    describe_bundles,
    monitor_autoscaling_config_path,
    node_types_from_autoscaling_config,
    pack,
    read_only_report,
    scale_up_for,
    worker_bundles,
)
from pipelines.runtime.ray_private import RAY_INTERNALS, RayInternalsChanged, ray_internal

CPU_NODE = NodeType("cpu", {"CPU": 4.0}, max_nodes=2)
GPU_NODE = NodeType("gpu", {"CPU": 3.0, "GPU": 1.0}, max_nodes=4)
HEAD = {"CPU": 0.0, "node:__internal_head__": 1.0}


# --- Ray internals: a Ray upgrade that drops one fails here, by name -------------------------------------


@pytest.mark.parametrize("path", RAY_INTERNALS)
def test_every_private_ray_name_vaepipe_reads_exists(path):
    assert ray_internal(path) is not None


def test_a_missing_private_ray_name_is_named_with_the_ray_version():
    import ray

    with pytest.raises(RayInternalsChanged, match=rf"ray\._private\.state:no_such_thing.*Ray {ray.__version__}"):
        ray_internal("ray._private.state:no_such_thing")


def test_the_monitor_command_line_still_names_its_gcs_address_and_config_file():
    from ray._private.services import start_monitor

    source = inspect.getsource(start_monitor)
    assert f'f"{cluster_capacity.MONITOR_GCS_FLAG}{{gcs_address}}"' in source
    assert f'"{cluster_capacity.MONITOR_CONFIG_FLAG}"' in source
    assert all(suffix.split("/")[-1] == "monitor.py" for suffix in cluster_capacity.MONITOR_SCRIPT_SUFFIXES)


# --- node types from an autoscaling config -----------------------------------------------------------------


def test_node_types_leave_out_the_head_and_groups_that_can_run_no_node():
    config = {"max_workers": 5, "head_node_type": "head",
              "available_node_types": {
                  "head": {"resources": {"CPU": 0}, "max_workers": 0},
                  "cpu": {"resources": {"CPU": 4, "memory": 1e9}, "min_workers": 0, "max_workers": 2},
                  "gpu": {"resources": {"CPU": 3, "GPU": 1}},  # max from the cluster's max_workers
                  "off": {"resources": {"CPU": 8}, "max_workers": 0}}}

    types = node_types_from_autoscaling_config(config)

    assert types == [NodeType("cpu", {"CPU": 4.0, "memory": 1e9}, 2), NodeType("gpu", {"CPU": 3.0, "GPU": 1.0}, 5)]


def test_the_monitor_of_the_cluster_on_this_port_names_the_config(tmp_path):
    proc = tmp_path / "proc"

    def process(pid: int, *arguments: str) -> None:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in arguments) + b"\0")

    process(10, "/usr/bin/python", "-u", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=10.0.0.1:6379",
            "--autoscaling-config=/other.yaml")
    process(11, "/usr/bin/python", "-u", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=10.0.0.1:41234",
            "--autoscaling-config=/home/ray/ray_bootstrap_config.yaml")
    process(12, "/usr/bin/python", "vaepipe", "--autoscaling-config=/not-a-monitor.yaml", "--gcs-address=x:41234")

    found = monitor_autoscaling_config_path("127.0.0.1:41234", proc)
    assert found is not None and found.as_posix() == "/home/ray/ray_bootstrap_config.yaml"
    assert monitor_autoscaling_config_path("127.0.0.1:5555", proc) is None


# --- packing and capacity ----------------------------------------------------------------------------------


def test_bundles_pack_whole_onto_one_node_each():
    assert pack([{"CPU": 2}, {"CPU": 2}], [{"CPU": 4}])
    assert not pack([{"CPU": 3}, {"CPU": 2}], [{"CPU": 4}])  # 5 CPUs in all, and no node holds both
    assert not pack([{"CPU": 5}], [{"CPU": 4}, {"CPU": 4}])


def test_new_nodes_come_from_node_types_up_to_their_max():
    two_gpu_workers = worker_bundles(2, 0.5, 1.0, use_gpu=True) + [{"CPU": 1}]
    assert pack(two_gpu_workers, [HEAD], [CPU_NODE, GPU_NODE])
    assert not pack(worker_bundles(5, 0.5, 1.0, use_gpu=True), [HEAD], [CPU_NODE, GPU_NODE])  # 4 GPU nodes at most
    assert not pack([{"CPU": 1, "GPU": 2}], [HEAD], [CPU_NODE, GPU_NODE])  # no node type has 2 GPUs


def test_cpu_work_goes_to_cpu_nodes_and_leaves_the_gpu_nodes_to_gpu_work():
    # 2 CPU nodes (8 CPUs) + 1 GPU node: the CPU bundles must not take the GPU node the GPU bundle needs
    only_one_gpu = NodeType("gpu", {"CPU": 3.0, "GPU": 1.0}, max_nodes=1)
    assert pack([{"CPU": 3}, {"CPU": 3}, {"CPU": 3, "GPU": 1}], [HEAD], [CPU_NODE, only_one_gpu])


def test_capacity_totals_count_the_node_types_at_their_max():
    capacity = Capacity((HEAD,), (CPU_NODE, GPU_NODE), can_grow=True)
    assert capacity.total("CPU") == 4 * 2 + 3 * 4
    assert capacity.total("GPU") == 4


def test_trials_that_fit_an_autoscaling_cluster_at_its_largest():
    trial = worker_bundles(1, 0.5, 1.0, use_gpu=False) + [{"CPU": 1.0}, {"CPU": 0.01}]
    capacity = Capacity((HEAD,), (NodeType("cpu", {"CPU": 4.0}, 1),), can_grow=True)

    assert capacity.copies_that_fit(trial, limit=8) == 2  # 1.51 CPUs each on one 4-CPU node
    assert capacity.copies_that_fit(trial, limit=1) == 1
    assert capacity.copies_that_fit([{"CPU": 5.0}], limit=4) == 0


def test_an_autoscaler_whose_node_types_are_unknown_bounds_nothing():
    capacity = Capacity((), can_grow=True, known=False)
    assert capacity.total("GPU") >= 1e6
    assert capacity.holds([{"GPU": 64}])
    assert capacity.copies_that_fit([{"CPU": 1}], limit=3) == 3


def test_a_request_no_node_type_can_hold_fails_at_once_naming_it():
    capacity = Capacity((HEAD,), (CPU_NODE, GPU_NODE), can_grow=True, source="test")

    with pytest.raises(ScaleUpError) as raised:
        scale_up_for(capacity, [{"CPU": 1.0, "GPU": 2.0}], timeout_s=900, progress=print, purpose="two GPUs")

    message = str(raised.value)
    assert message.startswith("1 × {CPU: 1, GPU: 2} (two GPUs) can never be scheduled on this cluster")
    assert "cpu {CPU: 4} × 2, gpu {CPU: 3, GPU: 1} × 4" in message


def test_a_cluster_that_cannot_grow_is_not_asked():
    fixed = Capacity(({"CPU": 4.0},), source="test")
    assert scale_up_for(fixed, [{"GPU": 8.0}], timeout_s=1, progress=print, purpose="x") == 0.0


def test_totals_that_fit_do_not_place_a_worker_no_node_holds():
    two_nodes = Capacity(({"CPU": 2.0}, {"CPU": 2.0}), source="no autoscaler that adds nodes")
    assert two_nodes.total("CPU") >= 3.0 + 1.0  # the totals would let it through
    with pytest.raises(ValueError) as raised:
        check_placeable(two_nodes, [{"CPU": 3.0}, {"CPU": 1.0}], "one worker of 3 CPUs (x.cpus)", "lower x.cpus",
                        ValueError)
    assert str(raised.value) == (
        "one worker of 3 CPUs (x.cpus) — 1 × {CPU: 3} + 1 × {CPU: 1} — cannot be placed on this cluster's "
        "2 node(s), 2 × {CPU: 2} (no autoscaler that adds nodes): each must fit whole on one node; lower x.cpus")
    check_placeable(two_nodes, [{"CPU": 2.0}, {"CPU": 1.0}], "fits", "nothing", ValueError)

    grows = Capacity((HEAD,), (CPU_NODE, GPU_NODE), can_grow=True, source="test")
    with pytest.raises(ValueError, match="even at their max workers: each must fit whole on one node"):
        check_placeable(grows, [{"CPU": 5.0}], "a 5-CPU worker", "lower it", ValueError)
    check_placeable(grows, [{"CPU": 4.0}] * 2 + [{"CPU": 3.0, "GPU": 1.0}] * 4, "at its largest", "-", ValueError)


def test_the_monitor_of_a_plain_ray_start_cluster_is_read_only():
    """`ray start --head` without an autoscaling config runs a monitor that names each node's type after the
    node (the report below is one such monitor's, from two `ray start` nodes); a provider with node types
    names those. A read-only monitor can add no node: the cluster is of fixed size."""
    plain = {"active_nodes": {"node_42524c": 1, "node_9f00aa": 1},
             "node_type_mapping": {"42524c": "node_42524c", "9f00aa": "node_9f00aa"}, "legacy": True}
    assert read_only_report(plain)
    autoscaling = {"node_type_mapping": {"42524c": "ray.head.default", "9f00aa": "cpu"}, "legacy": True}
    assert not read_only_report(autoscaling)
    assert not read_only_report({"node_type_mapping": {}})  # nothing reported yet: no claim either way


def test_a_request_reads_as_counts_of_shapes():
    bundles = worker_bundles(2, 0.5, 1.0, use_gpu=True) + [{"CPU": 1.0}]
    assert describe_bundles(bundles) == "2 × {CPU: 0.5, GPU: 1} + 1 × {CPU: 1}"


# --- a Ray that vaepipe started is of fixed size ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_sessions_local_ray_is_one_this_process_started_and_fixed(ray_cluster):
    capacity = cluster_capacity.cluster_capacity()

    assert cluster_capacity.ray_started_here()
    assert not capacity.can_grow and capacity.known
    assert capacity.total("CPU") == 4  # the fixture's logical CPUs
