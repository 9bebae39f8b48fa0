"""Exact multi-process selection with ``torch.distributed`` (NCCL on GPUs, gloo on CPUs).

When a process group with more than one rank is initialised, :func:`~hf_uniform.selection.maxmin_select`
splits the rows into contiguous shards, one per rank. Each step every rank finds the best row of its own
shard, the ranks exchange ``(value, global index, vector)`` with one ``all_gather``, and every rank picks the
same winner: the largest value, ties to the lowest global index -- the single-process rule. The winner's
vector travels with it, so no second collective is needed. Every rank returns the full selection.

Run it with ``torchrun --nproc_per_node N script.py`` where the script calls ``init_process_group`` and
then ``maxmin_select`` on the same embeddings (a memmap keeps each rank's memory to its shard).

Example:
    >>> shard_bounds(10, 3)
    [(0, 4), (4, 7), (7, 10)]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

_LOCAL = [False]


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Run selections inside this block as single-process, even under an initialised process group.

    Example:
        >>> with local_only():
        ...     context() is None
        True
    """
    old = _LOCAL[0]
    _LOCAL[0] = True
    try:
        yield
    finally:
        _LOCAL[0] = old


def context() -> tuple[int, int] | None:
    """``(rank, world_size)`` when torch.distributed is initialised with more than one rank, else ``None``.

    Example:
        >>> context() is None
        True
    """
    dist = torch.distributed
    if _LOCAL[0]:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def shard_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ``[lo, hi)`` row ranges, one per rank (the first ``n % world`` get one more).

    Example:
        >>> shard_bounds(5, 2)
        [(0, 3), (3, 5)]
    """
    base, extra = divmod(n, world)
    out, lo = [], 0
    for r in range(world):
        hi = lo + base + (1 if r < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def comm_device() -> torch.device:
    """Device for collective tensors: the current CUDA device under NCCL, the CPU otherwise.

    Example:
        >>> callable(comm_device)
        True
    """
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def pick_winner(table: torch.Tensor) -> torch.Tensor:
    """Row of ``table`` (``[key, global index, vector...]`` per rank) with the largest key, ties to the
    lowest index; entries with index < 0 are empty. Works on any device without a host sync.

    Example:
        >>> t = torch.tensor([[0.5, 7.0, 1.0], [0.5, 3.0, 2.0], [-math.inf, -1.0, 0.0]], dtype=torch.float64)
        >>> pick_winner(t)[1].item()
        3.0
    """
    key = torch.where(table[:, 1] >= 0, table[:, 0], torch.full_like(table[:, 0], -math.inf))
    best = key.max()
    idx = torch.where(key == best, table[:, 1], torch.full_like(table[:, 1], math.inf))
    return table[torch.argmin(idx)]


def exchange(key: float, gidx: int, vec: np.ndarray | torch.Tensor, d: int) -> tuple[float, int, np.ndarray]:
    """All-gather every rank's candidate and return the winner ``(key, global index, vector)`` (host).

    Example:
        >>> callable(exchange)
        True
    """
    dev = comm_device()
    row = torch.empty(d + 2, dtype=torch.float64, device=dev)
    row[0] = key
    row[1] = gidx
    if gidx >= 0:
        row[2:] = torch.as_tensor(vec).to(device=dev, dtype=torch.float64)
    else:
        row[2:] = 0.0
    world = torch.distributed.get_world_size()
    out = [torch.empty_like(row) for _ in range(world)]
    torch.distributed.all_gather(out, row)
    win = pick_winner(torch.stack(out)).cpu()
    return float(win[0]), int(win[1]), win[2:].numpy()


def all_reduce_max(value: float) -> float:
    """Largest ``value`` over the ranks.

    Example:
        >>> callable(all_reduce_max)
        True
    """
    t = torch.tensor([value], dtype=torch.float64, device=comm_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())


def all_reduce_min_int(value: int) -> int:
    """Smallest integer over the ranks.

    Example:
        >>> callable(all_reduce_min_int)
        True
    """
    t = torch.tensor([value], dtype=torch.int64, device=comm_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())


def all_gather_ints(values: list[int], width: int = 4) -> list[list[int]]:
    """Every rank's short list of integers (padded with -1 to ``width``).

    Example:
        >>> callable(all_gather_ints)
        True
    """
    row = torch.full((width,), -1, dtype=torch.int64, device=comm_device())
    vals = values[-width:]
    if vals:
        row[:len(vals)] = torch.tensor(vals, dtype=torch.int64)
    out = [torch.empty_like(row) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(out, row)
    return [[int(v) for v in o.cpu().tolist() if v >= 0] for o in out]


def any_true(flag: bool) -> bool:
    """Whether ``flag`` is true on some rank.

    Example:
        >>> callable(any_true)
        True
    """
    return all_reduce_max(1.0 if flag else 0.0) > 0.5


__all__ = ["all_gather_ints", "local_only", "all_reduce_max", "all_reduce_min_int", "any_true", "comm_device",
                      "context", "exchange", "pick_winner", "shard_bounds"]
