"""Uniformity metrics: h, coverage radius and mean nearest-neighbour distance, computed in chunks.

* ``h`` (:func:`min_pairwise_distance`): the smallest distance between two distinct rows of a subset,
  the quantity the paper's greedy maximises.
* ``coverage_radius``: the largest distance from any row of the full pool to its nearest subset row
  (the k-center objective; smaller is better).
* ``mean_nn_distance``: the mean distance from each subset row to its nearest other subset row.

All functions work in blocks of rows, so memory is ``O(block * n)`` and never ``n x n``. When faiss is
installed, :func:`nearest_distances` can use an exact faiss index (``backend="faiss"``); the torch path is
the reference and the fallback.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import UniformError
from .selection import check_embeddings, resolve_device

_BLOCK_ELEMS = 1 << 24  # distance-block budget (floats), ~64 MB


def _prep(x: np.ndarray | torch.Tensor, metric: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(x).to(device=device, dtype=torch.float64 if device.type == "cpu" else torch.float32)
    if metric == "cosine":
        t = t / torch.linalg.vector_norm(t, dim=1, keepdim=True)
    return t


def _block_distances(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        return (1.0 - a @ b.T).clamp_(min=0.0)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_distances(
    queries: np.ndarray | torch.Tensor,
    points: np.ndarray | torch.Tensor,
    *,
    metric: str = "cosine",
    exclude_self: bool = False,
    device: str | torch.device | None = "cpu",
    backend: str = "torch",
) -> np.ndarray:
    """Distance from each query row to its nearest row of ``points`` (exact, blocked).

    Args:
        queries: ``(m, d)`` rows.
        points: ``(p, d)`` rows.
        metric: ``"cosine"`` or ``"euclidean"``.
        exclude_self: ``queries`` *are* ``points``; ignore each row's distance to itself (by position, so
            duplicates elsewhere still count as distance 0).
        device: where to compute (float64 on CPU, float32 on GPU).
        backend: ``"torch"`` (reference) or ``"faiss"`` (exact flat index; float32).

    Example:
        >>> import numpy as np
        >>> nearest_distances(np.array([[0.0], [3.0]]), np.array([[1.0], [10.0]]), metric="euclidean").tolist()
        [1.0, 2.0]
    """
    if backend == "faiss":
        return _faiss_nearest(queries, points, metric=metric, exclude_self=exclude_self)
    if backend != "torch":
        raise UniformError(f"unknown backend {backend!r}; choose 'torch' or 'faiss'")
    dev = resolve_device(device)
    q = _prep(queries, metric, dev)
    p = _prep(points, metric, dev)
    block = max(1, _BLOCK_ELEMS // max(1, p.shape[0]))
    out = torch.empty(q.shape[0], dtype=q.dtype, device=dev)
    for i in range(0, q.shape[0], block):
        d = _block_distances(q[i:i + block], p, metric)
        if exclude_self:
            r = torch.arange(d.shape[0], device=dev)
            d[r, r + i] = math.inf
        out[i:i + block] = d.min(dim=1).values
    return out.double().cpu().numpy()


def _faiss_nearest(queries: Any, points: Any, *, metric: str, exclude_self: bool) -> np.ndarray:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the install
        raise UniformError("backend='faiss' needs faiss; pip install 'hf-uniform[faiss]'") from err
    q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
    p = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(p.shape[1])
    else:
        index = faiss.IndexFlatL2(p.shape[1])
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:  # pragma: no cover - GPU only
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(p)
    kk = 2 if exclude_self else 1
    scores, ids = index.search(q, kk)
    if exclude_self:  # drop the row itself (by position); a duplicate elsewhere still counts
        own = ids[:, 0] == np.arange(q.shape[0])
        best = np.where(own, scores[:, 1], scores[:, 0])
    else:
        best = scores[:, 0]
    best = best.astype(np.float64)
    if metric == "cosine":
        return np.clip(1.0 - best, 0.0, None)
    return np.sqrt(np.clip(best, 0.0, None))


def min_pairwise_distance(x: np.ndarray | torch.Tensor, *, metric: str = "cosine", **kwargs: Any) -> float:
    """``h``: the smallest distance between two distinct rows (``inf`` for fewer than two rows).

    Example:
        >>> import numpy as np
        >>> min_pairwise_distance(np.array([[0.0], [1.0], [3.0]]), metric="euclidean")
        1.0
    """
    if x.shape[0] < 2:
        return math.inf
    return float(nearest_distances(x, x, metric=metric, exclude_self=True, **kwargs).min())


def coverage_radius(subset: np.ndarray | torch.Tensor, full: np.ndarray | torch.Tensor, *,
                    metric: str = "cosine", **kwargs: Any) -> float:
    """Largest distance from a row of ``full`` to its nearest row of ``subset`` (the k-center objective).

    Example:
        >>> import numpy as np
        >>> coverage_radius(np.array([[0.0]]), np.array([[0.0], [2.0]]), metric="euclidean")
        2.0
    """
    return float(nearest_distances(full, subset, metric=metric, **kwargs).max())


def mean_nn_distance(x: np.ndarray | torch.Tensor, *, metric: str = "cosine", **kwargs: Any) -> float:
    """Mean distance from each row to its nearest other row (``inf`` for fewer than two rows).

    Example:
        >>> import numpy as np
        >>> mean_nn_distance(np.array([[0.0], [1.0], [3.0]]), metric="euclidean")
        1.3333333333333333
    """
    if x.shape[0] < 2:
        return math.inf
    return float(nearest_distances(x, x, metric=metric, exclude_self=True, **kwargs).mean())


def subset_stats(subset: np.ndarray | torch.Tensor, full: np.ndarray | torch.Tensor, *,
                 metric: str = "cosine", **kwargs: Any) -> dict[str, float]:
    """``{"k", "h", "coverage_radius", "mean_nn_distance"}`` of one subset of ``full``.

    Example:
        >>> import numpy as np
        >>> subset_stats(np.array([[0.0], [2.0]]), np.array([[0.0], [1.0], [2.0]]), metric="euclidean")["h"]
        2.0
    """
    nn = nearest_distances(subset, subset, metric=metric, exclude_self=True, **kwargs) \
        if subset.shape[0] > 1 else np.array([math.inf])
    return {
        "k": int(subset.shape[0]),
        "h": float(nn.min()),
        "coverage_radius": coverage_radius(subset, full, metric=metric, **kwargs),
        "mean_nn_distance": float(nn.mean()),
    }


def uniformity_report(
    subset: np.ndarray | torch.Tensor,
    full: np.ndarray | torch.Tensor,
    *,
    metric: str = "cosine",
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, dict[str, float]]:
    """h, coverage radius and mean NN distance of ``subset``, of a same-size random subset, and of ``full``.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(40, 3))
        >>> sorted(uniformity_report(x[:10], x, metric="euclidean"))
        ['full', 'random', 'subset']
    """
    check_embeddings(full, metric)
    check_embeddings(subset, metric)
    k = int(subset.shape[0])
    rnd = np.sort(np.random.default_rng(seed).choice(full.shape[0], size=k, replace=False))
    full_arr = full if isinstance(full, torch.Tensor) else np.asarray(full)
    return {
        "subset": subset_stats(subset, full, metric=metric, **kwargs),
        "random": subset_stats(full_arr[rnd], full, metric=metric, **kwargs),
        "full": subset_stats(full, full, metric=metric, **kwargs),
    }
