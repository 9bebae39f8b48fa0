"""The sweep engine: one pass over all rows per step, kept entirely on the device.

This is the plain greedy loop rebuilt for accelerators: the argmax, the chosen index, its radius and the
next centre stay device tensors, so a step launches a handful of kernels and never waits for the host
(checkpoints and the end of the run are the only syncs). Each step reads the ``n x d`` matrix once, so its
floor is ``n * d * bytes / bandwidth``; store the rows in float16/bfloat16 to halve it (distances are then
those of the rounded rows, as in the plain loop). Under ``torch.distributed`` each rank sweeps its shard and
the ranks agree on the winner with one ``all_gather`` of ``(value, index, vector)``, also without a sync.

Example:
    >>> import numpy as np, torch
    >>> rows = torch.eye(3)
    >>> idx, rad, _ = run_sweep(rows, None, k=2, starts=[0], metric="cosine", chunk=3)
    >>> idx.tolist()
    [0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .. import distributed as D


def _point_distances(rows: torch.Tensor, centre: torch.Tensor, metric: str) -> torch.Tensor:
    from ..selection import point_distances

    return point_distances(rows, centre, metric)


def run_sweep(
    rows: torch.Tensor | None,
    chunks: Callable[[], Iterator[tuple[int, torch.Tensor]]] | None,
    *,
    k: int,
    starts: list[int],
    metric: str,
    chunk: int,
    n: int | None = None,
    lo: int = 0,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None,
    on_step: Callable[[int, Callable[[], Any]], None] | None = None,
    bar: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy max-min by full sweeps; returns device tensors ``(indices, radii, min_dist)``.

    Args:
        rows: prepared rows of this shard on the device (or ``None`` with ``chunks``).
        chunks: callable yielding ``(offset, prepared rows)`` blocks, for sources too large to hold.
        k: total number of centres.
        starts: the first centres (global indices).
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk: rows per distance block.
        n: rows in this shard (needed with ``chunks``).
        lo: global index of this shard's first row.
        state: ``(indices, radii, min_dist, t)`` to continue from (resume).
        on_step: called as ``on_step(t, snapshot)`` after each step; ``snapshot()`` syncs and returns
            ``(indices[:t], radii[:t], min_dist)`` on the host (checkpoints).
        bar: a tqdm bar to advance.
    """
    ctx = D.context()
    if rows is not None:
        dev, n_local, d, sdt = rows.device, rows.shape[0], rows.shape[1], rows.dtype
    else:
        first = next(iter(chunks()))[1]
        dev, n_local, d, sdt = first.device, int(n), first.shape[1], first.dtype

    def distances(centre: torch.Tensor) -> torch.Tensor:
        if rows is not None:
            if chunk >= n_local:
                return _point_distances(rows, centre, metric)
            return torch.cat([_point_distances(rows[i:i + chunk], centre, metric) for i in range(0, n_local, chunk)])
        return torch.cat([_point_distances(block, centre, metric) for _, block in chunks()])

    def row_at(local: torch.Tensor) -> torch.Tensor:
        if rows is not None:
            return rows.index_select(0, local.view(1))[0]
        loc = int(local)  # streamed sources read the row from the host anyway
        for off, block in chunks():
            if off <= loc < off + block.shape[0]:
                return block[loc - off]
        raise IndexError(loc)

    if state is not None:
        idx, rad, min_dist, t0 = state
    else:
        idx = torch.full((k,), -1, dtype=torch.int64, device=dev)
        rad = torch.full((k,), -math.inf, dtype=torch.float32, device=dev)
        min_dist = torch.full((n_local,), math.inf, dtype=torch.float32, device=dev)
        t0 = 0
    neg = torch.tensor(-math.inf, dtype=torch.float32, device=dev)
    lo_t = torch.tensor(lo, dtype=torch.int64, device=dev)

    def snapshot(t: int) -> Callable[[], Any]:
        return lambda: (idx[:t].cpu().numpy(), rad[:t].double().cpu().numpy(), min_dist.cpu().numpy())

    for t in range(t0, k):
        if ctx is None:
            if t < len(starts):
                local = torch.tensor(starts[t], dtype=torch.int64, device=dev)
                val = min_dist[local]
            else:
                local = torch.argmax(min_dist)  # documented: the first maximum, ties to the lowest index
                val = min_dist[local]
            centre = row_at(local)
            gidx = local + lo_t
        else:
            val, gidx, centre, local = _agree(t, starts, min_dist, row_at, lo, n_local, d, dev, sdt)
        idx[t] = gidx
        rad[t] = val
        torch.minimum(min_dist, distances(centre), out=min_dist)
        if ctx is None:
            min_dist.index_fill_(0, local.view(1), -math.inf)
        else:  # mark the winner if this shard owns it, without asking the host
            inside = (local >= 0) & (local < n_local)
            safe = local.clamp(0, n_local - 1).view(1)
            min_dist.index_put_((safe,), torch.where(inside, neg, min_dist[safe]))
        if bar is not None:
            bar.update(1)
        if on_step is not None:
            on_step(t + 1, snapshot(t + 1))
    return idx, rad, min_dist


def _agree(t: int, starts: list[int], min_dist: torch.Tensor, row_at: Callable, lo: int, n_local: int, d: int,
           dev: torch.device, sdt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One all_gather of every shard's candidate; returns the winner's (value, global index, vector, local)."""
    cdev = D.comm_device()
    row = torch.zeros(d + 2, dtype=torch.float64, device=cdev)
    if t < len(starts):
        s = starts[t]
        if lo <= s < lo + n_local:
            local = torch.tensor(s - lo, dtype=torch.int64, device=dev)
            row[0] = min_dist[local].to(cdev, torch.float64)
            row[1] = s
            row[2:] = row_at(local).to(cdev, torch.float64)
        else:
            row[0] = -math.inf
            row[1] = -1
    else:
        local = torch.argmax(min_dist)
        val = min_dist[local]
        row[0] = val.to(cdev, torch.float64)
        row[1] = (local + lo).to(cdev, torch.float64)
        row[2:] = row_at(local).to(cdev, torch.float64)
    out = [torch.empty_like(row) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(out, row)
    win = D.pick_winner(torch.stack(out)).to(dev)
    gidx = win[1].to(torch.int64)
    return win[0].to(torch.float32), gidx, win[2:].to(sdt), gidx - lo
