"""The torch process group of a Ray Train run, joined without importing torch in Train's controller.

Ray's own `TorchConfig` lives in a module that imports torch, and Train's controller unpickles the backend
config and runs its `on_start`, so every run's (and every Tune trial's) controller process imported torch:
2.1-2.7 s of CPU on this project's 2-core machine while the training worker started beside it, and ~180 MiB of
its memory. `TorchProcessGroup` is the same backend, defined here: the controller asks rank 0 for an address (the
trainer chose gloo or NCCL), and the workers do everything that needs torch, with Ray's own functions
(`runtime.ray_private.RAY_INTERNALS`), so the process group is the one `TorchConfig` would set up.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError
from ray.train.backend import Backend, BackendConfig
from ray.train.constants import DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S, TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S

from pipelines.runtime.ray_private import ray_internal

logger = logging.getLogger(__name__)


@dataclass
class TorchProcessGroup(BackendConfig):
    """`ray.train.torch.TorchConfig`'s fields and behaviour (env:// rendezvous at rank 0's address)."""

    backend: str  # "gloo", or "nccl" for a GPU run: `trainer.build_trainer` chooses, as TorchTrainer does
    timeout_s: int = 1800

    @property
    def backend_cls(self):
        return _ProcessGroupBackend

    @property
    def train_func_context(self):
        return _TorchDeviceContext


class _TorchDeviceContext:
    """Around the training function in each worker: Ray's context, which selects the worker's CUDA device."""

    def __enter__(self):
        self._context = ray_internal("ray.train.torch.config:TorchConfigContextManager")()
        return self._context.__enter__()

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)


class _ProcessGroupBackend(Backend):
    share_cuda_visible_devices: bool = True  # as Ray's torch backend: a node's workers see each other's GPUs

    def on_start(self, worker_group, backend_config: TorchProcessGroup) -> None:
        address, port = worker_group.execute_single(0, _address_and_port)
        worker_group.execute(_set_rendezvous, address=address, port=port)
        size = len(worker_group)
        ray.get([worker_group.execute_single_async(rank, _join_process_group, backend=backend_config.backend,
                                                   world_rank=rank, world_size=size, timeout_s=backend_config.timeout_s)
                 for rank in range(size)])

    def on_shutdown(self, worker_group, backend_config: TorchProcessGroup) -> None:
        timeout_s = float(os.environ.get(TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
                                         DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S))
        futures = worker_group.execute_async(_leave_process_group, destroy=len(worker_group) > 1)
        try:
            ray.get(futures, timeout=timeout_s)
        except GetTimeoutError:
            logger.warning("the torch process group did not shut down within %s s", timeout_s)


# --- run in the workers (pickled by reference to this module, which imports no torch) ---

def _address_and_port() -> tuple[str, int]:
    return ray_internal("ray.train._internal.utils:get_address_and_port")()


def _set_rendezvous(address: str, port: int) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = address, str(port)


def _join_process_group(backend: str, world_rank: int, world_size: int, timeout_s: int) -> None:
    # LOCAL_RANK, RANK, WORLD_SIZE and the rest before init_process_group, as Ray's backend sets them
    ray_internal("ray.train.torch.config:_set_torch_distributed_env_vars")()
    ray_internal("ray.train.torch.config:_setup_torch_process_group")(
        backend=backend, world_rank=world_rank, world_size=world_size, init_method="env://", timeout_s=timeout_s)


def _leave_process_group(destroy: bool) -> None:
    ray_internal("ray.train.torch.config:_shutdown_torch")(destroy_process_group=destroy)
