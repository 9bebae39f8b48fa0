"""The sweep engine: one pass over all rows per step, on the device that holds them (GPU or CPU).

Each step reads the ``n x d`` matrix once (a GEMV in the storage dtype), so its floor is
``n * d * bytes / bandwidth``; store the rows in float16/bfloat16 to halve it. That pass is a *filter*: the
pick is made exactly by :class:`~hf_uniform.engine.exact.ExactPicker`, which re-evaluates in float64, on the
float32 rows, every row the pass's proven error bound cannot separate from the maximum. The selection is the
exact greedy on the float32 rows whatever the storage dtype (float16 storage only makes the candidate sets
larger). Each step syncs with the host once (the candidate count). Under ``torch.distributed`` each rank
sweeps its shard and the ranks agree on the winner (largest exact value, lowest global index) with one
``all_gather`` of ``(value, index, vector)``.

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

import numpy as np
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
    picker: Any = None,
    centres: np.ndarray | None = None,
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
        picker: the :class:`~hf_uniform.engine.exact.ExactPicker` (built from float32 ``rows`` if omitted).
        centres: prepared float32 vectors of the first ``t`` centres when resuming from ``state``.
    """
    from .exact import ExactPicker

    ctx = D.context()
    if rows is not None:
        dev, n_local, d, sdt = rows.device, rows.shape[0], rows.shape[1], rows.dtype
    else:
        first = next(iter(chunks()))[1]
        dev, n_local, d, sdt = first.device, int(n), first.shape[1], first.dtype
    if picker is None:
        picker = ExactPicker(rows, n_local, d, metric, k)

    def distances(centre: torch.Tensor) -> torch.Tensor:
        if rows is not None:
            if chunk >= n_local:
                return _point_distances(rows, centre, metric)
            return torch.cat([_point_distances(rows[i:i + chunk], centre, metric) for i in range(0, n_local, chunk)])
        return torch.cat([_point_distances(block, centre, metric) for _, block in chunks()])

    def vector(local: int) -> np.ndarray:
        if picker.exact_rows is not None:
            return picker.exact_rows[local].cpu().numpy().copy()
        return np.asarray(picker.fetch(np.array([local], dtype=np.int64))[0], dtype=np.float32)

    if state is not None:
        idx, rad, min_dist, t0 = state
        for j in range(t0):
            picker.add(centres[j])
            g = int(idx[j])
            if lo <= g < lo + n_local:
                picker.mark_chosen(g - lo)
    else:
        idx = torch.full((k,), -1, dtype=torch.int64, device=dev)
        rad = torch.full((k,), -math.inf, dtype=torch.float32, device=dev)
        min_dist = torch.full((n_local,), math.inf, dtype=torch.float32, device=dev)
        t0 = 0

    def snapshot(t: int) -> Callable[[], Any]:
        return lambda: (idx[:t].cpu().numpy(), rad[:t].double().cpu().numpy(), min_dist.cpu().numpy())

    for t in range(t0, k):
        if t < len(starts):
            s = starts[t]
            local = s - lo if lo <= s < lo + n_local else -1
            val = picker.value(local) if local >= 0 else -math.inf
        else:
            val, local = picker.pick(min_dist)
        if ctx is None:
            gidx, vec = lo + local, vector(local)
        else:
            val, gidx, vec64 = D.exchange(val, lo + local if local >= 0 else -1,
                                          vector(local) if local >= 0 else None, d)
            local = gidx - lo if lo <= gidx < lo + n_local else -1
            vec = vec64.astype(np.float32)
        idx[t] = gidx
        rad[t] = val
        centre = torch.from_numpy(vec).to(device=dev, dtype=sdt)
        torch.minimum(min_dist, distances(centre), out=min_dist)
        picker.add(vec)
        if local >= 0:
            min_dist[local] = -math.inf
            picker.mark_chosen(local)
        if bar is not None:
            bar.update(1)
        if on_step is not None:
            on_step(t + 1, snapshot(t + 1))
    return idx, rad, min_dist
