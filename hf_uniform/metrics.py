"""Uniformity metrics: h, coverage radius and mean nearest-neighbour distance, computed in chunks.

* ``h`` (:func:`min_pairwise_distance`): the smallest distance between two distinct rows of a subset,
  the quantity the paper's greedy maximises.
* ``coverage_radius``: the largest distance from any row of the full pool to its nearest subset row
  (the k-center objective; smaller is better).
* ``mean_nn_distance``: the mean distance from each subset row to its nearest other subset row.

All functions work in blocks of rows, so memory is ``O(block * n)`` and never ``n x n``.
:func:`nearest_distances` backends: ``"auto"`` (default: ``"filtered"``), ``"filtered"`` (float32 GEMM
blocks as a filter with a proven error bound, then an exact float64 re-check of every pair that could be the
nearest -- the float64 answer at float32 GEMM speed), ``"torch"`` (blocked float64, the reference) and
``"faiss"`` (exact flat index, float32 results).

:func:`selection_report` is the report of ``hf-uniform select``: the subset's h and coverage come from the
greedy trace; other figures are computed exactly while they need at most ``REPORT_MAX_PAIRS`` distance
pairs, and above that are *estimated* from a stated uniform sample of query rows (and say so).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import UniformError, missing_extra
from .selection import check_embeddings, resolve_device

_BLOCK_ELEMS = 1 << 24  # distance-block budget (floats), ~64 MB
#: most distance pairs one report figure is computed from exactly; above it the figure is estimated from a
#: uniform sample of ``REPORT_MAX_PAIRS / points`` query rows (the sample size is recorded)
REPORT_MAX_PAIRS = 5 * 10 ** 7
_U32 = 2.0 ** -24


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
    backend: str = "auto",
) -> np.ndarray:
    """Distance from each query row to its nearest row of ``points`` (exact, blocked).

    Args:
        queries: ``(m, d)`` rows.
        points: ``(p, d)`` rows.
        metric: ``"cosine"`` or ``"euclidean"``.
        exclude_self: ``queries`` *are* ``points``; ignore each row's distance to itself (by position, so
            duplicates elsewhere still count as distance 0).
        device: where to compute.
        backend: ``"auto"``/``"filtered"`` (float32 GEMM filter + float64 re-check: float64 results),
            ``"torch"`` (float64 blocks on CPU, float32 on GPU; the reference) or ``"faiss"`` (float32).

    Example:
        >>> import numpy as np
        >>> nearest_distances(np.array([[0.0], [3.0]]), np.array([[1.0], [10.0]]), metric="euclidean").tolist()
        [1.0, 2.0]
    """
    if backend == "faiss":
        return _faiss_nearest(queries, points, metric=metric, exclude_self=exclude_self)
    if backend in ("auto", "filtered"):
        return _filtered_nearest(queries, points, metric=metric, exclude_self=exclude_self,
                                 device=resolve_device(device))
    if backend != "torch":
        raise UniformError(f"unknown backend {backend!r}; choose 'auto', 'filtered', 'torch' or 'faiss'")
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


def _rows64(x: Any, ids: torch.Tensor | None, metric: str, device: torch.device) -> torch.Tensor:
    """float64 rows (all, or ``ids``) from the caller's array, as given (cosine is evaluated
    normalisation-free, :func:`_exact_pairs`)."""
    if ids is not None:
        x = x[ids.cpu().numpy()] if isinstance(x, np.ndarray) else x[ids.to(x.device)]
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device, torch.float64)


def _exact_pairs(q: torch.Tensor, p: torch.Tensor, metric: str) -> torch.Tensor:
    """float64 distances of matched rows ``q[i]``, ``p[i]``: normalisation-free cosine
    ``1 - <q, p> / sqrt(<q, q> <p, p>)`` (rows pointing the same way are at 0, as in the engines and
    :mod:`hf_uniform.engine.reference`), euclidean ``|q - p|``."""
    if metric == "cosine":
        return (1.0 - (q * p).sum(dim=1) / torch.sqrt((q * q).sum(dim=1) * (p * p).sum(dim=1))).clamp_(min=0.0)
    return torch.linalg.vector_norm(q - p, dim=1)


def _filtered_nearest(queries: Any, points: Any, *, metric: str, exclude_self: bool,
                      device: torch.device, exclude_cols: np.ndarray | None = None) -> np.ndarray:
    """Exact float64 nearest distances: float32 GEMM blocks filter, float64 re-check of every pair the
    filter's error bound cannot rule out.

    Filter error: the float32 copies are the float64-prepared rows (unit rows for cosine) rounded (relative ``u`` each), and the
    GEMM accumulates in float32 in any order, so ``|S - <q, p>| <= (2u + u^2 + gamma_d (1 + u)^2) |q| |p|``
    (``gamma_d = d u / (1 - d u)``). Cosine: rows are unit vectors, so the distance error is at most that
    constant ``e`` (plus the rounding of ``1 - S``); a pair can be the nearest only if its filter distance
    is within ``2 e`` of the row's filter minimum. Euclidean works on squared distances with the norms in
    float64: error ``2 e |q| |p|``.
    """
    qa = queries if isinstance(queries, torch.Tensor) else np.asarray(queries)
    pa = points if isinstance(points, torch.Tensor) else np.asarray(points)
    if exclude_self:
        exclude_cols = np.arange(qa.shape[0])
    skip = None if exclude_cols is None else torch.as_tensor(np.asarray(exclude_cols, dtype=np.int64), device=device)
    q64 = _rows64(qa, None, metric, device)
    p64 = q64 if (exclude_self and pa is qa) else _rows64(pa, None, metric, device)
    if metric == "cosine":  # the filter works on unit rows (normalised in float64); the re-check on the rows
        q32 = (q64 / torch.linalg.vector_norm(q64, dim=1, keepdim=True)).float()
        p32 = q32 if p64 is q64 else (p64 / torch.linalg.vector_norm(p64, dim=1, keepdim=True)).float()
    else:
        q32, p32 = q64.float(), p64.float()
    d = q64.shape[1]
    gam = 1.05 * d * _U32 / (1.0 - d * _U32)
    unit = (2.0 * _U32 + _U32 ** 2 + gam * (1.0 + _U32) ** 2) * 1.01
    if metric == "euclidean":
        qn = torch.linalg.vector_norm(q64, dim=1)
        pn = torch.linalg.vector_norm(p64, dim=1)
        pn2f = (pn ** 2)[None, :].float()
        pmax = float(pn.max()) if pn.numel() else 0.0
    n_q, n_p = q64.shape[0], p64.shape[0]
    out = torch.full((n_q,), math.inf, dtype=torch.float64, device=device)
    block = max(1, _BLOCK_ELEMS // max(1, n_p))
    for a in range(0, n_q, block):
        b = min(n_q, a + block)
        D = q32[a:b] @ p32.T  # float32 throughout: one GEMM, then in-place passes
        if metric == "cosine":  # nearest = largest S: work on -S (distance minus 1; same order and gaps)
            D.neg_()
            slack = 2.0 * (unit + 4.0 * _U32) + 1e-12
        else:  # |q|^2 + |p|^2 - 2S in float32: + 4u (|q|^2 + |p|^2) for the roundings of the sum
            qq = (qn[a:b, None] ** 2).float()
            D.mul_(-2.0).add_(pn2f).add_(qq)
            slack = (2.0 * (2.0 * unit * qn[a:b, None] * pmax * 1.01
                            + 4.0 * _U32 * (qn[a:b, None] ** 2 + pmax ** 2)) + 1e-30).float()
        if skip is not None:
            D[torch.arange(b - a, device=device), skip[a:b]] = math.inf
        lo = D.min(dim=1, keepdim=True).values
        rows, cols = torch.nonzero(D <= lo + slack, as_tuple=True)
        del D
        if rows.numel() == 0:
            continue
        ex = _exact_pairs(q64[rows + a], p64[cols], metric)
        best = torch.full((b - a,), math.inf, dtype=torch.float64, device=device)
        best.scatter_reduce_(0, rows, ex, reduce="amin")
        out[a:b] = best
    return out.cpu().numpy()


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def selection_report(
    pool: np.ndarray | torch.Tensor,
    subsets: dict[str, np.ndarray],
    *,
    metric: str = "cosine",
    known: dict[str, tuple[float, float]] | None = None,
    max_pairs: float = REPORT_MAX_PAIRS,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """h, coverage radius and mean NN distance of each subset (pool positions) and of the full pool, at scale.

    ``known[name] = (h, coverage_radius)`` supplies figures already known (the greedy trace of the uniform
    subset), which are then not recomputed. Every other figure is exact (float64, :func:`nearest_distances`
    with the filtered backend) while it needs at most ``max_pairs`` distance pairs; above that it is
    estimated from a uniform sample (seeded) of query rows: ``mean_nn_distance`` is then an unbiased
    estimate, ``h`` an upper bound and ``coverage_radius`` a lower bound, and the set's entry gets
    ``"estimated": {figure: "... sample of s of m rows"}``. The full pool's coverage radius is 0.

    Returns ``(report, info)``; ``info`` holds ``"seconds"`` per set and the settings.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(200, 4))
        >>> rep, info = selection_report(x, {"random": np.arange(20)}, metric="euclidean", max_pairs=1000)
        >>> sorted(rep), rep["full"]["coverage_radius"], "estimated" in rep["full"]
        (['full', 'random'], 0.0, True)
    """
    import time

    known = known or {}
    pool_a = pool if isinstance(pool, torch.Tensor) else np.asarray(pool)
    n = int(pool_a.shape[0])
    report: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    kw = {"metric": metric, "device": device}

    def within(rows: Any, k: int, note: dict[str, str], what: str) -> np.ndarray:
        """NN distance of each (or a sample of) subset row(s) to the other subset rows."""
        if k < 2:
            return np.array([math.inf])
        if k * k <= max_pairs:
            return nearest_distances(rows, rows, exclude_self=True, **kw)
        s = max(2, int(max_pairs // k))
        ids = _sample(k, s, seed)
        note["h"] = note["mean_nn_distance"] = f"{what}: nearest other row of a sample of {s} of {k} rows"
        return _filtered_nearest(rows[ids], rows, metric=metric, exclude_self=False,
                                 device=resolve_device(device), exclude_cols=ids)

    for name, idx in subsets.items():
        t0 = time.perf_counter()
        idx = np.asarray(idx, dtype=np.int64)
        rows = pool_a[idx]
        k = int(idx.size)
        note: dict[str, str] = {}
        nn = within(rows, k, note, name)
        if name in known:
            h, cov = known[name]
        else:
            h = float(nn.min())
            if n * k <= max_pairs:
                cov = float(nearest_distances(pool_a, rows, **kw).max())
            else:
                s = max(1, int(max_pairs // k))
                cov = float(nearest_distances(pool_a[_sample(n, s, seed)], rows, **kw).max())
                note["coverage_radius"] = f"lower bound: largest NN distance of a sample of {s} of {n} pool rows"
        report[name] = {"k": k, "h": float(h), "coverage_radius": float(cov), "mean_nn_distance": float(nn.mean())}
        if note:
            report[name]["estimated"] = note
        seconds[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    note = {}
    nn = within(pool_a, n, note, "full")
    report["full"] = {"k": n, "h": float(nn.min()), "coverage_radius": 0.0, "mean_nn_distance": float(nn.mean())}
    if note:
        report["full"]["estimated"] = note
    seconds["full"] = time.perf_counter() - t0
    return report, {"seconds": seconds, "max_pairs": max_pairs, "seed": seed, "backend": "filtered float32 GEMM + "
                    "float64 re-check", "known_from_trace": sorted(known)}


def _faiss_nearest(queries: Any, points: Any, *, metric: str, exclude_self: bool) -> np.ndarray:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the install
        raise missing_extra("backend='faiss' needs faiss", "faiss") from err
    q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
    p = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
    kk = 2 if exclude_self else 1
    if hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0:  # pragma: no cover - GPU only
        scores, ids = faiss.knn_gpu(faiss.StandardGpuResources(), q, p, kk, metric=kind)
    else:
        scores, ids = faiss.knn(q, p, kk, metric=kind)
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
