"""Every use of a Ray API that is not public, in one place, each behind a function that says why we need it.

Ray renames private things between releases; `tests/pipelines/runtime/test_ray_private.py` calls each
function here against the installed Ray, so an upgrade that removes one fails that test by name instead of
a job in the middle of a run.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

# Ray Data's v1 Parquet datasource logs its size sampling at INFO on every read (score, embed)
PARQUET_DATASOURCE_LOGGER = "ray.data._internal.datasource.parquet_datasource"


def node_ip_address() -> str:
    """The address Ray will give this node: the GCS address of a local Ray is fixed before `ray.init`
    (`runtime.ray_session.local_ray`), and Ray picks the node IP by its own rule."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def dialled_address(address: str) -> str:
    """The host:port a driver's `ray.init(address)` dials for a GCS `address`: Ray replaces a loopback host by this
    node's IP (`resolve_ip_for_localhost`), so a Ray started on 127.0.0.1 is reached at, and must answer on, the
    node's address."""
    from ray._private.services import canonicalize_bootstrap_address

    return canonicalize_bootstrap_address(address)


def answers_as_gcs(address: str, timeout_s: float) -> bool:
    """Whether a Ray GCS answers Ray's own client at `address` (host:port) within about `timeout_s` (Ray's client
    adds ~10 s to a timeout it is given when nothing answers). Something else listening there (the dashboard's
    port, another service) accepts the connection, and `ray.init` then waits for many minutes. Ray's C++ client
    logs each failed attempt to the process's stderr; those lines are dropped."""
    from ray._raylet import InnerGcsClient
    from ray.exceptions import AuthenticationError, RpcError

    sys.stderr.flush()
    console, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        InnerGcsClient.standalone(address, None, int(timeout_s * 1000))
        return True
    except AuthenticationError:  # a GCS, asking for a token: `ray.init` says so
        return True
    except RpcError:
        return False
    finally:
        os.dup2(console, 2)
        os.close(console)
        os.close(devnull)


def local_node():
    """The node object of the Ray this process started (its recorded daemon processes, logs dir), or None."""
    from ray._private.worker import _global_node

    return _global_node


def node_processes(node) -> dict[str, list[int]]:
    """Process type (dashboard, raylet, log_monitor, ...) → pids, as the node recorded them when it started."""
    return {kind: [info.process.pid for info in infos] for kind, infos in node.all_processes.items()}


def node_logs_dir(node) -> str:
    return node.get_logs_dir_path()


@contextmanager
def parquet_reader_v1() -> Iterator[None]:
    """Ray Data's v1 Parquet reader for the `read_parquet` calls inside the block. Ray 2.60's default v2
    reader (ListFiles → ReadFiles) costs 3–5 s more per read of a small split than v1's 0.1–1 s (measured on
    digits' val split, warm local Ray, docs/design.md "Reading splits"), which a sweep paid three times per
    trial; it bin-packs files into ~128 MiB read units and ignores `override_num_blocks` (seen: 8 digits
    shards read as one block, one of two model actors idle); and its ListFiles work queue can print an
    InterruptedError traceback to the driver when a job ends. The flag is read by `read_parquet` when it
    is called."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before = context.use_datasource_v2
    context.use_datasource_v2 = False
    try:
        yield
    finally:
        context.use_datasource_v2 = before


def quiet_parquet_datasource() -> None:
    logging.getLogger(PARQUET_DATASOURCE_LOGGER).setLevel(logging.WARNING)


def stop_tune_propagating(names: set[str]) -> None:
    """Ray Tune copies some variables of the driver's environment into every trial actor's runtime_env
    (`ray/tune/execution/class_cache.py`), where the runtime-env agent logs them and the dashboard shows them
    (ray#28276). Trials read storage credentials from the cluster's own environment instead."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(names)


# The private Ray names runtime.cluster_capacity reads, as "module:attribute", each reached through
# ray_internal() (a test imports every one).
def drop_cluster_messages(drop: Callable[[str], bool]) -> None:
    """Messages the raylet and GCS push to the driver (`(raylet) WARNING: 8 PYTHON worker processes have been
    started ...`) are printed by the driver's `listen_error_messages` thread through
    `ray._private.worker.print_to_stdstream`, whatever `log_to_driver` says: wrap it so that the lines `drop`
    accepts are not printed. Idempotent; worker log lines (`log_to_driver`) pass through unchanged."""
    from ray._private import worker

    printer = worker.print_to_stdstream
    if getattr(printer, "vaepipe_drop", None) is not None:
        printer.vaepipe_drop = drop
        return

    def print_to_stdstream(data, ignore_prefix: bool):
        if data.get("pid") == "raylet":
            data = {**data, "lines": [line for line in data.get("lines", []) if not wrapped.vaepipe_drop(line)]}
            if not data["lines"]:
                return
        return printer(data, ignore_prefix)

    wrapped = print_to_stdstream
    wrapped.vaepipe_drop = drop
    worker.print_to_stdstream = wrapped


# Ray's config setting (read by the raylet from its environment) that starts a default worker per logical CPU, up
# to one per core, when the first driver connects. Those workers have no runtime environment, so a train or tune
# job's tasks and actors, which carry one (the idle hook: `runtime.ray_session.job_runtime_env`), never run on
# them: they only wake ~90 times a second each at normal priority beside the training threads.
# tests/pipelines/runtime/test_ray_session.py starts a Ray with it and finds none.
NO_PRESTARTED_WORKERS = {"RAY_prestart_worker_first_driver": "0"}


RAY_INTERNALS = (
    "ray._private.state:state",  # .get_cluster_config(): the GCS cluster config (source 1)
    "ray.autoscaler._private.kuberay.autoscaling_config:AutoscalingConfigProducer",  # source 2
    "ray._private.ray_constants:DEBUG_AUTOSCALING_STATUS",  # the v1 autoscaler's status key in the GCS KV
    "ray.experimental.internal_kv:_internal_kv_get",  # reads that key
    "ray.autoscaler.v2.utils:is_autoscaler_v2",  # whether the cluster runs autoscaler v2
    # the node type the v1 monitor's read-only provider (a `ray start` cluster: it reports, never adds) gives a node
    "ray.autoscaler._private.util:format_readonly_node_type",
    # Ray's torch backend, run in Train's workers by `training.process_group` (its controller imports no torch)
    "ray.train._internal.utils:get_address_and_port",
    "ray.train.torch.config:TorchConfigContextManager",
    "ray.train.torch.config:_set_torch_distributed_env_vars",
    "ray.train.torch.config:_setup_torch_process_group",
    "ray.train.torch.config:_shutdown_torch",
)


class RayInternalsChanged(RuntimeError):
    """A private Ray name vaepipe reads is gone: the installed Ray is not the one this module was written for."""


def ray_internal(path: str) -> Any:
    """The object at `path` ("module:attribute", one of RAY_INTERNALS); raises RayInternalsChanged naming it."""
    module_name, attribute = path.split(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        import ray

        raise RayInternalsChanged(f"vaepipe reads Ray's private {path}, which Ray {ray.__version__} does not "
                                  f"have ({err}); update pipelines/runtime/ray_private.py and the module that "
                                  "reads it") from None
