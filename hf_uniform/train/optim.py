"""The paper's ℓ2-SGD optimizer and helpers to find the optimizer that really steps.

:class:`L2SGD` is plain SGD (momentum 0 and weight decay 0 by default, as in the paper's Table 3) written
as its own ``torch.optim.Optimizer`` subclass, so a run can prove which optimizer stepped: it counts its
``step()`` calls and the parameter elements it updated. DeepSpeed wraps the optimizer it is given (and,
with ZeRO-3, hands it flat fp32 partitions); :func:`unwrap_optimizer` walks the ``.optimizer`` chain of
those wrappers back to the innermost optimizer.

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> opt = L2SGD([w], lr=0.5)
>>> w.grad = torch.tensor([1.0, -2.0])
>>> opt.step()
>>> w.detach().tolist(), opt.num_steps
([0.5, 3.0], 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import UniformError


class L2SGD(torch.optim.Optimizer):
    """Stochastic gradient descent for the paper's ℓ2 regime: ``θ ← θ − lr · (g + wd·θ)``, optional momentum.

    Defaults are the paper's: momentum 0, weight decay 0. ``num_steps`` counts ``step()`` calls and
    ``num_updated`` the parameter elements updated, so a run can show that this optimizer (and not a
    replacement chosen by a launcher) did the updates. DeepSpeed ZeRO may call ``step()`` once per
    parameter sub-group, so ``num_steps`` can be a multiple of the trainer's optimizer steps.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: heavy-ball momentum (0 = plain SGD).
        weight_decay: L2 penalty added to the gradient (coupled, as in ``torch.optim.SGD``).

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.ones(3))
        >>> opt = L2SGD([p], lr=0.1)
        >>> p.grad = torch.ones(3)
        >>> opt.step()
        >>> [round(v, 6) for v in p.detach().tolist()]
        [0.9, 0.9, 0.9]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0):
        if not lr > 0:
            raise UniformError(f"L2SGD learning rate must be positive, got {lr}; set --learning_rate")
        if momentum < 0 or weight_decay < 0:
            raise UniformError(f"L2SGD momentum ({momentum}) and weight_decay ({weight_decay}) must be >= 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.num_steps = 0
        self.num_updated = 0

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns the closure's loss when one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if wd != 0:
                    d_p = d_p.add(p, alpha=wd)
                if momentum != 0:
                    buf = self.state[p].get("momentum_buffer")
                    if buf is None:
                        buf = self.state[p]["momentum_buffer"] = d_p.detach().clone()
                    else:
                        buf.mul_(momentum).add_(d_p)
                    d_p = buf
                p.add_(d_p.to(p.dtype), alpha=-lr)
                self.num_updated += p.numel()
        self.num_steps += 1
        return loss


def unwrap_optimizer(optimizer: Any) -> Any:
    """The innermost optimizer behind accelerate's and DeepSpeed's wrappers (``.optimizer`` chains).

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> inner = L2SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
        >>> unwrap_optimizer(SimpleNamespace(optimizer=SimpleNamespace(optimizer=inner))) is inner
        True
    """
    seen = set()
    while hasattr(optimizer, "optimizer") and id(optimizer) not in seen and optimizer.optimizer is not None:
        seen.add(id(optimizer))
        optimizer = optimizer.optimizer
    return optimizer


def optimizer_chain(optimizer: Any) -> list[str]:
    """Class names from the outermost wrapper to the optimizer that steps (for the run record).

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> inner = L2SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
        >>> optimizer_chain(SimpleNamespace(optimizer=inner))
        ['SimpleNamespace', 'L2SGD']
    """
    names, seen = [type(optimizer).__name__], set()
    while hasattr(optimizer, "optimizer") and id(optimizer) not in seen and optimizer.optimizer is not None:
        seen.add(id(optimizer))
        optimizer = optimizer.optimizer
        names.append(type(optimizer).__name__)
    return names
