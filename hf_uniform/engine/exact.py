"""Exact picks for the pass-per-step engines (``plain``, ``sweep``; CPU and accelerators).

A full pass computes every row's distance to the new centre in the storage precision (a float32 or
float16/bfloat16 GEMV): fast, but each value carries a rounding error. That pass is only a *filter* here.
Its error is bounded by a proven constant ``eps`` (per row for euclidean; see :func:`filter_error`), so
the fast min-distance ``A`` of every row is within ``eps`` of the true one. A step then

1. takes the lower bound ``L = max(A - eps)`` of the largest true min-distance,
2. keeps as candidates the rows whose upper bound ``A + eps`` reaches ``L`` (all others provably lose),
3. brings the candidates' *exact* values up to date -- float64 sums over the float32 rows, rounded once to
   float32, the same definition as the lazy engine's :func:`~hf_uniform.engine._kernels.dist` -- against
   the centres added since each one was last checked (``E`` is exact over the first ``ep`` centres), in
   descending upper bound, stopping at the first bound below the best exact value,
4. returns the largest exact value, ties to the lowest row index.

So every method picks exactly what the lazy engine and the float64 greedy pick, duplicates get radius 0,
and distributed runs (each rank's best exact value, then the largest value and lowest global index) equal
one process bit for bit. On the CPU the exact kernel is numba (per row, bitwise reproducible); on other
devices float64 torch (normalisation-free ``1 - <a, b> / sqrt(|a|^2 |b|^2)`` for cosine, ``|a - b|`` from
differences for euclidean, so duplicates are exactly 0).

Example:
    >>> import numpy as np, torch
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    >>> p = ExactPicker(x, 3, 2, "euclidean", capacity=2)
    >>> p.add(x[0].numpy())
    >>> A = torch.tensor([-float("inf"), 3.0, 3.0])
    >>> p.pick(A)
    (3.0, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

U32 = 2.0 ** -24
_UNIT = {torch.float32: U32, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8, torch.float64: 2.0 ** -53}
#: largest absolute rounding error of one value in the subnormal range of each storage dtype (half its spacing)
_SUB = {torch.float32: 2.0 ** -150, torch.float16: 2.0 ** -25, torch.bfloat16: 2.0 ** -134, torch.float64: 0.0}
#: storage dtypes of the filter pass
STORAGE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
#: largest finite float16
F16_MAX = 65504.0


def filter_error(metric: str, d: int, storage: torch.dtype, device: torch.device | str = "cpu") -> float:
    """Bound on the *relative* error of one filter distance (cosine: absolute, unit rows; euclidean: per unit
    of ``|x| + |c|``); :func:`filter_error_abs` is the absolute part (subnormal and underflow ranges).

    The filter distance is ``1 - <x^, c^>`` (cosine, unit rows; or raw float32 rows times ``1/|x|``) or
    ``|x^ - c^|`` (euclidean) where ``x^``, ``c^`` are the rows stored in ``storage`` (relative rounding
    ``u_s``, at least one float32 ulp so that a differently normalised copy is covered too). The GEMV
    accumulates in float32 (any order: ``gamma_d = d u / (1 - d u)``; on CUDA the engine turns off the
    reduced-precision reductions of float16/bfloat16 GEMMs so that this holds) and rounds its output to
    ``storage``. On CUDA, TF32 GEMMs (float32 precision other than ``"highest"``) count as a 10-bit mantissa.

    Example:
        >>> filter_error("cosine", 384, torch.float32) < 1e-4
        True
    """
    dev = torch.device(device)
    us = max(_UNIT.get(storage, U32), 2.0 * U32)
    ua = U32
    if dev.type == "cuda" and storage == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        us = max(us, 2.0 ** -11)
    gam = 1.05 * d * ua / (1.0 - d * ua)
    uo = _UNIT.get(storage, U32) if storage != torch.float64 else U32
    if metric == "cosine":
        nrm = 1.0 + 1e-6
        r = us * nrm
        # + 4 u: the raw-row filter's multiplication by a float32 1/|x| (and its own rounding)
        return 2.0 * r * nrm + r * r + (gam + uo * (1.0 + gam)) * (nrm + r) ** 2 + 8.0 * U32 + 1e-12
    return 1.1 * (us + uo + gam + 4.0 * U32)


def filter_error_abs(metric: str, d: int, storage: torch.dtype, row_norm_min: float = 1.0) -> float:
    """Absolute part of the filter error bound: values in the storage dtype's subnormal range round with an
    absolute error (half the subnormal spacing: ``2^-25`` for float16), not a relative one, and float32
    products below ``2^-126`` underflow. Cosine rows are unit vectors (``row_norm_min`` is the smallest raw
    row norm when raw float32 rows are scaled by ``1/|x|`` instead); euclidean counts the row, the centre and
    their difference.

    Example:
        >>> filter_error_abs("euclidean", 4, torch.float16) > 1e-7
        True
    """
    sub = _SUB.get(storage, 0.0)
    under = 1.1 * d * 2.0 ** -149
    if metric == "cosine":
        # residual of each unit vector <= sqrt(d) sub; output rounding near 0; float32 underflow per product
        return 1.1 * (2.0 * math.sqrt(d) * sub + sub) + under / max(row_norm_min, 2.0 ** -126)
    return 1.1 * 3.0 * math.sqrt(d) * sub + 2.0 * math.sqrt(d * 2.0 ** -126)


def check_storage(dtype: Any, metric: str, row_abs_max: float | None = None) -> torch.dtype:
    """The filter's storage dtype, checked: a floating torch dtype (float32, float16, bfloat16, float64);
    float16 storage under euclidean needs every value and every difference within float16's range
    (``|v| <= 65504 / 2``). Raises a one-line :class:`~hf_uniform.errors.UniformError` otherwise.

    Example:
        >>> check_storage(torch.float16, "euclidean", 3.0)
        torch.float16
        >>> check_storage(torch.int8, "cosine")
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: dtype=torch.int8 is not a storage dtype of the filter pass; use torch.float32 (default), torch.float16 or torch.bfloat16
    """
    from ..errors import UniformError

    if dtype not in STORAGE_DTYPES:
        raise UniformError(f"dtype={dtype} is not a storage dtype of the filter pass; use torch.float32 (default), "
                           "torch.float16 or torch.bfloat16")
    if dtype == torch.float16 and metric == "euclidean" and row_abs_max is not None and \
            not 2.0 * row_abs_max <= F16_MAX:
        raise UniformError(f"dtype=torch.float16 with metric='euclidean' needs values within +-{F16_MAX / 2:g} "
                           f"(differences within float16's range, 65504), got |v| up to {row_abs_max:.3g}; use "
                           "dtype=torch.bfloat16 or torch.float32, or rescale the embeddings")
    return dtype


class ExactPicker:
    """Exact argmax (or argmin) of the min-distance array, given the fast pass's values ``A``.

    Args:
        rows: this shard's rows in the filter's storage (a device tensor), or ``None`` when streamed.
        n: rows in this shard.
        d: dimensions.
        metric: ``"cosine"`` or ``"euclidean"``.
        capacity: the most centres of the run.
        fetch: ``fetch(local ids) -> prepared float32 rows`` (numpy), for streamed or reduced-precision
            storage; when ``rows`` are float32 they are the exact rows and ``fetch`` is not needed.
        row_norm_max: largest row norm of the shard (euclidean bound); computed from ``rows`` when omitted.
        row_norm_min: smallest row norm of the shard when the cosine filter scales raw float32 rows by ``1/|x|``
            (float32 underflow bound; 1 for unit rows).
        backend: ``"numba"`` (CPU default) or ``"torch"`` (other devices).
    """

    def __init__(self, rows: torch.Tensor | None, n: int, d: int, metric: str, capacity: int, *,
                 fetch: Callable[[np.ndarray], np.ndarray] | None = None, row_norm_max: float | None = None,
                 storage: torch.dtype | None = None, device: torch.device | str | None = None,
                 backend: str | None = None, row_norm_min: float = 1.0):
        self.n, self.d, self.metric = int(n), int(d), metric
        self.dev = torch.device(device) if device is not None else (rows.device if rows is not None
                                                                      else torch.device("cpu"))
        self.storage = storage or (rows.dtype if rows is not None else torch.float32)
        self.exact_rows = rows if (rows is not None and rows.dtype == torch.float32) else None
        if self.exact_rows is None and fetch is None:
            raise ValueError("ExactPicker needs float32 rows or a fetch function")
        self.fetch = fetch
        self.backend = backend or ("numba" if self.dev.type == "cpu" else "torch")
        self.unit = filter_error(metric, d, self.storage, self.dev)
        self.abs_err = filter_error_abs(metric, d, self.storage, row_norm_min)
        if metric == "euclidean":
            if row_norm_max is None:
                row_norm_max = 0.0
                if rows is not None:
                    for a in range(0, self.n, 1 << 16):
                        blk = rows[a:a + (1 << 16)].float()
                        row_norm_max = max(row_norm_max, float(torch.linalg.vector_norm(blk, dim=1).max()))
            self.xmax = float(row_norm_max) * (1.0 + 1e-5 + 2.0 * _UNIT.get(self.storage, U32))
        else:
            self.xmax = 1.0
        self.cmax = 0.0
        cap = max(1, int(capacity)) + 1
        self.t = 0
        self.stats = {"candidates": 0, "exact_pairs": 0}
        if self.backend == "numba":
            from . import _kernels as K

            self.K = K
            self.mc = K.COSINE if metric == "cosine" else K.EUCLIDEAN
            self.E = np.full(self.n, np.inf, dtype=np.float32)
            self.ep = np.zeros(self.n, dtype=np.int64)
            self.C = np.zeros((cap, d), dtype=np.float32)
            self.cn2 = np.zeros(cap, dtype=np.float64)
            self._cnt = np.zeros(1, dtype=np.int64)
            self._np_rows = self.exact_rows.numpy() if self.exact_rows is not None else None
        else:
            self.E = torch.full((self.n,), math.inf, dtype=torch.float32, device=self.dev)
            self.ep = torch.zeros(self.n, dtype=torch.int64, device=self.dev)
            self.C = torch.zeros((cap, d), dtype=torch.float64, device=self.dev)

    # ------------------------------------------------------------------
    def eps(self) -> float:
        """Current bound on ``|A - true min-distance|`` for any row (grows with the centre norms, euclidean)."""
        if self.metric == "cosine":
            return self.unit + self.abs_err
        # + subnormal storage values and float32 underflow of the squares (filter_error_abs)
        return self.unit * (self.xmax + self.cmax) + self.abs_err

    def add(self, vec: Any) -> None:
        """Record the next centre (its prepared float32 vector)."""
        v = np.asarray(vec.detach().cpu() if isinstance(vec, torch.Tensor) else vec, dtype=np.float32)
        if self.metric == "euclidean":
            self.cmax = max(self.cmax, float(np.linalg.norm(v.astype(np.float64))) * (1.0 + 1e-6))
        if self.backend == "numba":
            self.C[self.t] = v
            self.cn2[self.t] = self.K.dot64(self.C[self.t], self.C[self.t])
        else:
            self.C[self.t] = torch.from_numpy(v).to(self.dev, torch.float64)
        self.t += 1

    def mark_chosen(self, local: int) -> None:
        """Row ``local`` of this shard was chosen."""
        if local >= 0:
            self.E[local] = -math.inf

    def reset_cache(self) -> None:
        """Forget the exact values (after a resume the cache is rebuilt on demand)."""
        if self.backend == "numba":
            self.E[:] = np.inf
            self.ep[:] = 0
        else:
            self.E.fill_(math.inf)
            self.ep.zero_()

    def _rows_np(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._np_rows is not None:
            return self._np_rows, ids
        return np.ascontiguousarray(self.fetch(ids), dtype=np.float32), np.arange(ids.size, dtype=np.int64)

    def value(self, local: int) -> float:
        """Exact min-distance of row ``local`` to the centres so far (``-inf`` once chosen)."""
        ids = np.array([local], dtype=np.int64)
        if self.backend == "numba":
            if self.E[local] == -np.inf:
                return -math.inf
            rows, rid = self._rows_np(ids)
            self.K.refine_rows(rows, rid, ids, self.E, self.ep, self.C, self.cn2, self.t, self.mc, self._cnt)
            return float(self.E[local])
        return float(self._refine_torch(torch.from_numpy(ids).to(self.dev))[0])

    def pick(self, A: torch.Tensor, objective: str = "max") -> tuple[float, int]:
        """``(exact value, local row)`` of the unchosen row with the largest (``"min"``: smallest) exact
        min-distance, ties to the lowest index; ``(-inf, -1)`` when no row is left. ``A`` holds the fast
        pass's min-distances with ``-inf`` at chosen rows."""
        live = A >= 0
        eps = self.eps()
        if objective == "max":
            m = A.max()
            if not bool(m >= 0):
                return -math.inf, -1
            lo = (float(m) - eps) * (1.0 - 2.0 * U32) - 1e-30
            cand_mask = live & (A >= lo - eps)
        else:
            masked = torch.where(live, A, torch.full_like(A, math.inf))
            m = masked.min()
            if not bool(torch.isfinite(m)) and not bool(live.any()):
                return -math.inf, -1
            hi = (float(m) + eps) * (1.0 + 2.0 * U32) + 1e-30
            cand_mask = live & (A <= hi + eps)
        cand = torch.nonzero(cand_mask).flatten()
        self.stats["candidates"] += int(cand.numel())
        if self.backend == "numba":
            ids = cand.cpu().numpy().astype(np.int64)
            ub = A[cand].cpu().numpy().astype(np.float64)
            if objective == "max":
                ub = (ub + eps) * (1.0 + 2.0 * U32)
                order = np.lexsort((ids, -ub))
            else:
                ub = (ub - eps) * (1.0 - 2.0 * U32)  # lower bounds for the min objective
                order = np.lexsort((ids, ub))
            ids, ub = ids[order], ub[order]
            rows, rid = self._rows_np(ids) if self._np_rows is not None else self._rows_np_sorted(ids)
            val, row = self.K.pick_exact(rows, rid, ids, ub, self.E, self.ep, self.C, self.cn2, self.t, self.mc,
                                         objective == "max", self._cnt)
            self.stats["exact_pairs"] = int(self._cnt[0])
            return float(val), int(row)
        vals = self._refine_torch(cand)
        if objective == "max":
            best = vals.max()
        else:
            best = vals.min()
        j = int(torch.nonzero(vals == best)[0])  # cand is ascending: the first hit is the lowest index
        return float(best), int(cand[j])

    def _rows_np_sorted(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fetch rows in ascending id order (cheapest for memmaps), map back to the walk order."""
        order = np.argsort(ids, kind="stable")
        rows = np.ascontiguousarray(self.fetch(ids[order]), dtype=np.float32)
        rid = np.empty(ids.size, dtype=np.int64)
        rid[order] = np.arange(ids.size)
        return rows, rid

    def _refine_torch(self, cand: torch.Tensor) -> torch.Tensor:
        """Bring ``E[cand]`` up to date (float64 torch) and return it. Candidates are processed in order of
        their epoch, so each centre block only meets the rows that have not seen it yet."""
        if cand.numel() == 0:
            return self.E[cand]
        t = self.t
        ep_all = self.ep[cand]
        e0 = int(ep_all.min())
        if e0 < t:
            order = torch.argsort(ep_all, stable=True)
            cs = cand[order]
            ep = ep_all[order]
            if self.exact_rows is not None:
                x = self.exact_rows.index_select(0, cs).double()
            else:
                x = torch.from_numpy(np.ascontiguousarray(self.fetch(cs.cpu().numpy()), dtype=np.float32))
                x = x.to(self.dev, torch.float64)
            xn2 = _sumsq(x) if self.metric == "cosine" else None
            cur = self.E[cs].double()
            step = 2048
            for c0 in range((e0 // step) * step, t, step):
                c1 = min(t, c0 + step)
                m = int(torch.searchsorted(ep, torch.tensor([c1], device=self.dev), right=False))
                if m == 0:
                    continue
                c = self.C[c0:c1]
                if self.metric == "cosine":  # normalisation-free, float64: same-direction rows are at 0
                    dd = _cosine64(x[:m], xn2[:m], c)
                else:
                    dd = torch.cdist(x[:m], c, compute_mode="donot_use_mm_for_euclid_dist")
                cols = torch.arange(c0, c1, device=self.dev)
                dd = torch.where(cols[None, :] >= ep[:m, None], dd, torch.full_like(dd, math.inf))
                cur[:m] = torch.minimum(cur[:m], dd.min(dim=1).values)
                self.stats["exact_pairs"] += m * (c1 - c0)
            self.E[cs] = cur.float()
            self.ep[cs] = t
        return self.E[cand]


def _sumsq(x: torch.Tensor) -> torch.Tensor:
    """``<x_i, x_i>`` per row by the same elementwise product and sum as :func:`_cosine64`'s dot products."""
    return (x[:, None, :] * x[:, None, :]).sum(dim=2)[:, 0]


def _cosine64(x: torch.Tensor, xn2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float64 ``max(1 - <x, c> / sqrt(|x|^2 |c|^2), 0)`` for rows ``x`` (squared norms ``xn2``) and centres
    ``c``, blockwise, with the dot products summed like :func:`_sumsq` (a row's distance to itself is 0)."""
    cn2 = _sumsq(c)
    out = torch.empty((x.shape[0], c.shape[0]), dtype=torch.float64, device=x.device)
    step = max(1, (1 << 22) // max(1, c.shape[0] * x.shape[1]))
    for a in range(0, x.shape[0], step):
        dots = (x[a:a + step, None, :] * c[None, :, :]).sum(dim=2)
        out[a:a + step] = (1.0 - dots / torch.sqrt(xn2[a:a + step, None] * cn2[None, :])).clamp_(min=0.0)
    return out
