"""Adam for the training loops: `torch.optim.Adam(fused=True)`, with the per-step bookkeeping taken out of the
common case.

A table's MLP step is small enough that torch.optim's bookkeeping around the fused kernel costs as much as
the kernel: regrouping the parameters by device and dtype and rebuilding the lists of their state every step,
the compiler guards, `zero_grad`'s profiler range. Without it the in-process fit of a 309-row table (3,000
steps, one thread) took 3.70-3.75 s instead of 3.99-4.02 s (three alternating runs each, quiet machine).

`FusedAdam.step` keeps the lists of parameters and their Adam state after the first step and calls the kernel
`torch.optim.Adam` calls (`torch._fused_adam_`), so the weights come out bit for bit the same
(tests/pipelines/training/test_optimizer.py). torch adds 1 to each parameter's step count with `_foreach_add_`,
one small kernel per parameter on a CPU; here a group's counts live in one tensor, each parameter's state holding
a view of its own, and one add counts the step for all of them. Anything outside the common case (a
parameter without a gradient, an AMP grad scaler, a tensor learning rate, amsgrad, decoupled weight decay,
several devices or dtypes) takes torch's own `step`. Step hooks (an instance's or torch's global ones) and the
profiler's `Optimizer.step#FusedAdam.step` range are there as for any optimizer whenever there are hooks or a
profiler runs; without either the step skips torch's wrapper around it (its record_function range alone cost
0.2 s of that 3,000-step fit: 3.45-3.79 s against 3.27-3.29 s, interleaved). The state dict is Adam's, so
checkpoints load either way.

Nor does a process that trains import torch's compiler: `Optimizer.add_param_group`, `state_dict` and
`load_state_dict` carry `torch._disable_dynamo`, whose first call imports `torch._dynamo` (~2.5 CPU-s, in every
process that builds an optimizer: each Ray Train worker, each in-process fit), and torch's step imports it too.
Nothing here is compiled, so these call the methods under that wrapper, and the first lean step creates Adam's
state as torch's first step would (`Adam._init_group`). Where `torch._dynamo` is loaded already (a caller who
compiles), torch's wrapped methods run as they are.
"""
from __future__ import annotations

import sys

import torch
# torch's registries of global step hooks (private names): a torch that moves them fails this import, loudly
from torch.optim.optimizer import Optimizer, _global_optimizer_post_hooks, _global_optimizer_pre_hooks


def _without_compiler(method):
    """`method` without its `torch._disable_dynamo` wrapper, unless the compiler is loaded already."""
    return method if "torch._dynamo" in sys.modules else getattr(method, "__wrapped__", method)


# torch's private kernel entry, the one torch.optim.adam._fused_adam calls; tests/pipelines/training/
# test_optimizer.py fails when a torch version lacks it or changes what it computes
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)


class FusedAdam(torch.optim.Adam):
    """`torch.optim.Adam(params, lr, weight_decay=..., fused=True)` with a lean `step` and `zero_grad`."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, **kwargs):
        super().__init__(params, lr=lr, weight_decay=weight_decay, fused=True, **kwargs)
        self._lists = None  # per group: (group, params, exp_avgs, exp_avg_sqs, steps, counts), once the state exists
        self.lean_steps = 0  # steps that took the lean path (what the test checks)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for group in self.param_groups:
            for parameter in group["params"]:
                parameter.grad = None

    def __setstate__(self, state) -> None:
        # a pickled or deep-copied optimizer carries only torch's fields (`Optimizer.__getstate__`)
        super().__setstate__(state)
        self._lists, self.lean_steps = None, 0

    def state_dict(self):
        return _without_compiler(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict) -> None:
        _without_compiler(Optimizer.load_state_dict)(self, state_dict)
        self._lists = None  # the state's tensors were replaced

    def add_param_group(self, param_group) -> None:
        _without_compiler(Optimizer.add_param_group)(self, param_group)
        self._lists = None

    def step(self, closure=None):
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _global_optimizer_pre_hooks
                or _global_optimizer_post_hooks or torch.autograd._profiler_enabled()):
            return self._hooked_step(closure)
        return self._step(closure)

    step.hooked = True  # torch wraps an optimizer class's `step` with its hooks unless it says it has them

    @torch.no_grad()
    def _step(self, closure=None):
        if closure is not None or not self._lean():
            # the lists stay valid: torch's step updates the same state tensors in place
            # Adam's step without torch's hook wrapper (if it has one): ours already ran the hooks
            adam_step = torch.optim.Adam.step
            return (adam_step.__wrapped__ if getattr(adam_step, "hooked", False) else adam_step)(self, closure)
        for group, params, exp_avgs, exp_avg_sqs, steps, counts in self._lists:
            beta1, beta2 = group["betas"]
            counts.add_(1)  # every parameter's step count: `steps` are views of it
            _FUSED_ADAM(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                        lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
        self.lean_steps += 1
        return None

    # torch's own wrapper (hooks, the profiler's range) around the step, for when there is a hook or a profiler
    _hooked_step = Optimizer.profile_hook_step(_step)

    def _lean(self) -> bool:
        """Whether this step can skip torch's `step`: every parameter has a gradient and its state, one device and
        dtype per group, and no grad scaler's attributes."""
        if _FUSED_ADAM is None or getattr(self, "grad_scale", None) is not None \
                or getattr(self, "found_inf", None) is not None:
            return False
        if self._lists is None:
            if not self.state:  # the first step: Adam's state as torch's first step creates it
                for group in self.param_groups:
                    self._init_group(group, [], [], [], [], [], [])
            self._lists = self._build_lists()
        return self._lists is not None and all(
            p.grad is not None and not p.grad.is_sparse for _, params, *_ in self._lists for p in params)

    def _build_lists(self):
        lists = []
        for group in self.param_groups:
            params = list(group["params"])
            if (not params or group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]
                    or group.get("decoupled_weight_decay") or isinstance(group["lr"], torch.Tensor)
                    or any(p not in self.state or "exp_avg" not in self.state[p] for p in params)
                    or len({(p.device, p.dtype) for p in params}) != 1 or any(p.is_complex() for p in params)):
                return None
            state = [self.state[p] for p in params]
            steps = [s["step"] for s in state]
            if any(step.dim() != 0 or (step.device, step.dtype) != (steps[0].device, steps[0].dtype)
                   for step in steps):
                return None
            # One tensor holds the group's step counts and each parameter's state holds a view of its own count:
            # one add per step instead of torch's `_foreach_add_` over a scalar per parameter (on a CPU that is
            # a kernel call per tensor, 13 of them for a table's MLP). torch's own step (a parameter without a
            # gradient) adds to the views it needs, so counts that diverge stay each parameter's own; a state dict
            # keeps the values (torch.save keeps views of one storage as views, a load hands us fresh lists).
            counts = torch.stack(steps)
            steps = list(counts.unbind())
            for entry, step in zip(state, steps):
                entry["step"] = step
            lists.append((group, params, [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], steps,
                          counts))
        return lists
