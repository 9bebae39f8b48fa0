"""Baseline subsets to compare a uniform subset against.

* :func:`random_subset`: ``k`` rows drawn without replacement with a seed.
* :func:`first_k`: the first ``k`` rows.
* :func:`mixed_subset`: the paper's TeaMs-RL "random" baseline: half the rows drawn at random, the other
  half added greedily to *minimise* distances (each step adds the unchosen row nearest to the chosen set).
"""

from __future__ import annotations

import numpy as np
import torch

from .selection import check_k, maxmin_select


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


def mixed_subset(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float,
    *,
    metric: str = "cosine",
    seed: int | None = 0,
    **kwargs: object,
) -> np.ndarray:
    """The paper's mixed baseline: ``k // 2`` random rows, then ``k - k // 2`` rows chosen by greedy min-min.

    Returned in selection order (the random half first). Keyword arguments go to
    :func:`~hf_uniform.selection.maxmin_select`.

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
    sel = maxmin_select(embeddings, k, metric=metric, start=start, objective="min", **kwargs)
    return sel.indices
