"""Composable core-sets: max-min selection for pools larger than one machine.

Two rounds: run greedy max-min on every shard separately to ``k' >= k`` rows (in parallel, on different
machines or ranks), then run greedy max-min on the union of the shard selections to ``k`` rows. Only the
``shards * k'`` selected rows travel; no process ever holds more than one shard. The result is *not* the
exact greedy selection of the whole pool (use :func:`~hf_uniform.selection.maxmin_select`, possibly with
``max_memory=`` or ``distributed=True``, for that); it carries these guarantees instead.

Guarantees, for a metric distance ``delta`` (euclidean; for the cosine metric use the chord distance
``delta = sqrt(2 * d_cos)`` of the unit vectors, which orders pairs exactly as ``d_cos`` does, so the greedy
choices are the same). Write ``OPT_r`` for the smallest possible k-center radius of the pool and ``OPT_h``
for the largest possible minimum pairwise distance of ``k`` pool rows.

* k-center (coverage): greedy is a 2-approximation (Gonzalez 1985). Every row lies within ``2 OPT_r`` of
  its shard's selection (that selection is greedy on a subset of the pool, ``k' >= k``), and the second
  round covers the union within ``2 OPT_r``, so the coverage radius is at most ``4 OPT_r`` (the two-round
  bound of Malkomes et al., NeurIPS 2015).
* dispersion (``h``, the quantity the paper maximises): greedy is a 2-approximation; the union of greedy
  shard selections is a 3-composable core-set for the remote-edge objective (Indyk, Mahabadi, Mahdian,
  Mirrokni, PODS 2014): it contains ``k`` rows with pairwise distance ``>= OPT_h / 3``. Hence
  ``h >= OPT_h / 6 >= h_exact_greedy / 6``. Larger ``k'`` tightens the core-set in data of low doubling
  dimension (Ceccarello et al., VLDB 2017).
* In cosine-distance units square the factors: ``coverage <= 16 OPT_r`` and ``h >= OPT_h / 36``. These are
  worst cases; ``benchmarks/select_bench.py`` measures the actual ratio on real data (close to 1).

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(400, 8))
    >>> sel = coreset_select(x, 20, shards=4)
    >>> sel.k, len(set(sel.indices.tolist()))
    (20, 20)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import UniformError
from .selection import Selection, check_k, maxmin_select

logger = logging.getLogger(__name__)


def _shard_ids(n: int, shards: int | Sequence[Sequence[int]]) -> list[np.ndarray]:
    if isinstance(shards, (int, np.integer)):
        if not 1 <= int(shards) <= n:
            raise UniformError(f"shards must be between 1 and n={n}, got {shards}")
        from .distributed import shard_bounds

        return [np.arange(a, b, dtype=np.int64) for a, b in shard_bounds(n, int(shards))]
    out = [np.asarray(s, dtype=np.int64) for s in shards]
    allrows = np.concatenate(out) if out else np.empty(0, np.int64)
    if allrows.size == 0 or allrows.min() < 0 or allrows.max() >= n or np.unique(allrows).size != allrows.size:
        raise UniformError("shards must be disjoint, non-empty lists of row indices in [0, n)")
    return out


def coreset_select(
    embeddings: Any,
    k: int | float,
    *,
    shards: int | Sequence[Sequence[int]] = 4,
    k_prime: int | None = None,
    metric: str = "cosine",
    seed: int | None = 0,
    distributed: bool = False,
    **kwargs: Any,
) -> Selection:
    """Greedy max-min per shard to ``k_prime`` rows, then greedy on the union to ``k`` rows.

    Args:
        embeddings: ``(n, d)`` array-like (memmap welcome: each shard is read on its own).
        k: rows to select, or a fraction in (0, 1) of ``n``.
        shards: number of contiguous shards, or explicit disjoint lists of row indices (ignored with
            ``distributed=True``: one contiguous shard per rank).
        k_prime: rows per shard (default ``k``; at least ``k`` keeps the guarantees, see module docs).
        metric: ``"cosine"`` or ``"euclidean"``.
        seed: seeds the start row of each shard (shard ``i`` uses ``seed + i``).
        distributed: run as one rank of the initialised ``torch.distributed`` process group: each rank
            selects from its own contiguous shard, the shard selections are exchanged with one
            ``all_gather``, and every rank returns the same result.
        **kwargs: passed to :func:`~hf_uniform.selection.maxmin_select` (``method``, ``max_memory``, ...).

    Returns:
        A :class:`~hf_uniform.selection.Selection` with pool indices; ``min_distances`` is the radius trace
        of the second round (so ``h`` is the subset's exact minimum pairwise distance) and
        ``coverage_radius`` is measured over the union only (``info["coverage_over"] == "union"``; use
        :func:`hf_uniform.metrics.coverage_radius` for the pool).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).normal(size=(100, 4))
        >>> coreset_select(x, 5, shards=2, metric="euclidean").info["shards"]
        2
    """
    from .engine.store import shape_of, take_rows

    n, _ = shape_of(embeddings)
    k = check_k(k, n)
    kp = k if k_prime is None else int(k_prime)
    if kp < 1:
        raise UniformError(f"k_prime must be at least 1, got {k_prime}")
    if kp < k:
        logger.warning("k_prime=%d < k=%d: the core-set guarantees need k_prime >= k", kp, k)
    comm = None
    if distributed:
        from .distributed import TorchComm

        comm = TorchComm()
    parts = _shard_ids(n, comm.world_size if comm is not None else shards)
    mine = [comm.rank] if comm is not None else range(len(parts))
    chosen: list[np.ndarray] = []
    for i in mine:
        ids = parts[i]
        sub = take_rows(embeddings, ids) if not (ids.size and ids[-1] - ids[0] + 1 == ids.size) \
            else _contiguous(embeddings, int(ids[0]), int(ids[-1]) + 1)
        s = maxmin_select(sub, min(kp, ids.size), metric=metric, seed=None if seed is None else seed + i,
                          **_local(kwargs))
        chosen.append(ids[s.indices])
    if comm is not None:
        chosen = [np.asarray(c, dtype=np.int64) for c in comm.gather_ints(chosen[0].tolist(), kp)]
    union = np.sort(np.concatenate(chosen))
    if union.size < k:
        raise UniformError(f"the shards hold only {union.size} rows together; raise k_prime or lower k={k}")
    x_union = take_rows(embeddings, union)
    final = maxmin_select(x_union, k, metric=metric, start=0, **_local(kwargs))
    info = {**final.info, "method": f"coreset/{final.info.get('method')}", "shards": len(parts), "k_prime": kp,
            "union_size": int(union.size), "coverage_over": "union", "world_size": 1 if comm is None else comm.world_size}
    return Selection(union[final.indices], final.min_distances, final.coverage_radius, metric, n, info)


def _contiguous(embeddings: Any, lo: int, hi: int) -> Any:
    from .engine.store import slice_rows

    return embeddings[lo:hi] if hasattr(embeddings, "__getitem__") and hasattr(embeddings, "shape") \
        else slice_rows(embeddings, lo, hi)


def _local(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Engine options for the per-shard runs (local themselves, never checkpointed together)."""
    bad = {"start", "checkpoint_dir", "resume"} & set(kwargs)
    if bad:
        raise UniformError(f"coreset_select does not take {sorted(bad)}; run maxmin_select for those options")
    return kwargs
