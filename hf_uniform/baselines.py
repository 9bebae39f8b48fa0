"""Baseline subsets to compare a uniform subset against.

* :func:`random_subset`: ``k`` rows drawn without replacement with a seed.
* :func:`first_k`: the first ``k`` rows.
* :func:`mixed_subset`: the paper's TeaMs-RL "random" baseline: half the rows drawn at random, the other
  half added greedily to *minimise* distances (:func:`minmin_select`).
* :func:`minmin_select`: greedy min-min, the opposite of max-min: each step adds the unchosen row nearest
  to the rows chosen so far (exact like :func:`~hf_uniform.selection.maxmin_select`, ties to the lowest
  index).
* :func:`length_matched_subset`: random rows drawn to match another subset's length histogram (quantile
  bins of the pool's lengths, the same count per bin), the control that separates "uniform data trains
  faster" from "uniform data is shorter".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import UniformError
from .selection import Selection, check_k


def random_subset(n: int, k: int | float, *, seed: int | None = 0) -> np.ndarray:
    """Sorted indices of ``k`` rows of ``n`` drawn without replacement.

    Example:
        >>> random_subset(10, 3, seed=0).shape
        (3,)
    """
    k = check_k(k, n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)).astype(np.int64)


def first_k(n: int, k: int | float) -> np.ndarray:
    """Indices ``0 .. k-1``.

    Example:
        >>> first_k(10, 3).tolist()
        [0, 1, 2]
    """
    return np.arange(check_k(k, n), dtype=np.int64)


def minmin_select(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float,
    *,
    start: int | Sequence[int] | None = None,
    metric: str = "cosine",
    seed: int | None = 0,
    **options: Any,
) -> Selection:
    """Greedy min-min selection of ``k`` rows: after the ``start`` rows, each step adds the unchosen row
    *nearest* to the rows chosen so far (smallest exact min-distance, ties to the lowest row index).

    The selection runs on the pass-per-step engine (``method`` ``"auto"``, ``"plain"`` or ``"sweep"``); the
    other keyword arguments are those of :func:`~hf_uniform.selection.maxmin_select` (``device``,
    ``dtype``, ``chunk_size``, ``max_memory``, ``progress``, ``distributed``, checkpoints).
    ``Selection.min_distances`` holds each pick's distance to the rows before it.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0], [10.0], [1.0], [3.0]])
        >>> minmin_select(x, 3, start=[0], metric="euclidean").indices.tolist()
        [0, 2, 3]
    """
    from .selection import _greedy

    return _greedy(embeddings, k, start=start, metric=metric, seed=seed, nearest=True, **options)


def mixed_subset(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float,
    *,
    metric: str = "cosine",
    seed: int | None = 0,
    **kwargs: object,
) -> np.ndarray:
    """The paper's mixed baseline: ``k // 2`` random rows, then ``k - k // 2`` rows chosen by greedy min-min.

    Returned in selection order (the random half first). Keyword arguments go to :func:`minmin_select`.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(20, 3))
        >>> len(set(mixed_subset(x, 6).tolist()))
        6
    """
    n = int(embeddings.shape[0])
    k = check_k(k, n)
    half = max(1, k // 2)
    start = np.random.default_rng(seed).choice(n, size=half, replace=False).tolist()
    return minmin_select(embeddings, k, metric=metric, start=start, **kwargs).indices


def longest_subset(lengths: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` rows with the largest ``lengths`` ("Long Is More", arXiv 2402.04833), ties to the lower index.

    Sorted indices.

    Example:
        >>> longest_subset(np.array([5, 9, 1, 9, 3]), 2).tolist()
        [1, 3]
    """
    lengths = np.asarray(lengths)
    k = check_k(k, len(lengths))
    order = np.lexsort((np.arange(len(lengths)), -lengths.astype(np.float64)))
    return np.sort(order[:k]).astype(np.int64)


def length_bins(lengths: np.ndarray, bins: int = 10) -> np.ndarray:
    """Bin of every row: quantile bins of the pool's ``lengths`` (``bins`` equal-count bins, fewer when
    lengths repeat so much that quantile edges coincide).

    Bin ``b`` holds the rows with ``edges[b] <= length < edges[b + 1]`` over the unique inner quantile edges,
    so equal lengths always share a bin.

    Example:
        >>> length_bins(np.array([1, 2, 3, 4, 5, 6, 7, 8]), bins=4).tolist()
        [0, 0, 1, 1, 2, 2, 3, 3]
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if bins < 1:
        raise UniformError(f"bins must be >= 1, got {bins}")
    inner = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(inner, lengths, side="right").astype(np.int64)


def length_matched_subset(
    lengths: np.ndarray, target: np.ndarray, *, bins: int = 10, seed: int | None = 0, exclude_target: bool = False,
) -> np.ndarray:
    """Random rows with the same length histogram as the rows ``target`` (e.g. the uniform subset).

    The rows of the pool (``lengths``: one length per pool row) are put in :func:`length_bins`; for each
    bin, as many rows as ``target`` has in it are drawn at random without replacement from *all* pool rows
    of that bin (the target rows themselves included, nothing else excluded), with one seeded generator
    visiting bins in order. Always feasible, since the target's rows lie in their own bins. Sorted indices.

    ``exclude_target=True`` draws only from rows outside ``target`` (a control that shares no row with it);
    a bin with too few such rows raises :class:`~hf_uniform.errors.UniformError` (draw from a larger pool).

    Example:
        >>> lens = np.arange(100)
        >>> picked = length_matched_subset(lens, np.arange(10), bins=10, seed=0)
        >>> len(picked), int(lens[picked].max()) < 10
        (10, True)
    """
    lengths = np.asarray(lengths)
    target = np.asarray(target, dtype=np.int64)
    n = len(lengths)
    if len(np.unique(target)) != len(target) or (len(target) and (target.min() < 0 or target.max() >= n)):
        raise UniformError(f"target must be distinct row indices in [0, {n}), got {len(target)} rows")
    b = length_bins(lengths, bins)
    need = np.bincount(b[target], minlength=int(b.max()) + 1)
    rng = np.random.default_rng(seed)
    allowed = np.ones(n, dtype=bool)
    if exclude_target:
        allowed[target] = False
    picked = []
    for i, c in enumerate(need):
        if not c:
            continue
        rows = np.flatnonzero((b == i) & allowed)
        if len(rows) < c:
            raise UniformError(f"length bin {i} has {len(rows)} rows outside the target but needs {int(c)}; "
                               "draw the length-matched rows from a larger pool (length_matched_source: "
                               "training_pool)")
        picked.append(rng.choice(rows, size=int(c), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)
