"""The lazy blocked max-min engine: exact greedy selection at GEMM speed on CPUs.

Why it is exact. A row's min-distance to the chosen set only falls as centres are added, so a value
computed against fewer centres is an *upper bound*. The engine keeps, for every row, its exact min-distance
``m`` over the first ``ep`` centres, and for the rows it is working on a refreshed value ``v`` over more
centres. A greedy step walks the active rows in descending bound and refreshes a row against the pending
centres only while it can still beat the best exact value found; it stops at the first bound below that
value. Ties go to the lowest row index. So every step returns the exact argmax of the current
min-distances -- the same row the plain loop picks.

Why it is fast.

* Matrix-matrix work. Centres are added to a pending block; every ``block`` steps the active rows are
  brought up to date against the whole block with one GEMM (a *flush*), instead of one pass over the matrix
  per step.
* Reduced-precision filter, exact answers. The flush GEMM runs in bfloat16 (where the CPU has native bf16
  dot products) and is only a filter: with the rounding residuals ``r`` of each row and centre, the GEMM
  error is at most ``|r_x||c| + |x^||r_c| + gamma_d |x^||c^| + u|S|`` (Cauchy-Schwarz, float32
  accumulation, output rounding), and a pair is re-evaluated by the exact float64-accumulated kernel unless
  that bound proves it cannot lower the row's minimum.
* Dormant rows. Rows whose bound is below ``tau`` (a prediction of the radius at the end of the next block)
  are not flushed at all: they sleep, grouped by the centre count they are exact for, and are woken --
  brought up to date with one GEMM per group -- only when the radius approaches them. With ``k = n/2``
  most of the rows never need most of the centres.
* No Python per step. The walk and the selection run in compiled numba code for a whole block.
* Cost-adaptive cadence. A block ends early when the walk's scalar refreshes would cost more than one GEMM
  over the active rows (k << n, concentrated distances), and the number of rows woken per flush is capped
  (doubling after each early flush) so that start-up does not wake the whole pool at once.
* One GEMM thread by default (``HF_UNIFORM_THREADS``): the GEMMs are small, and on a shared machine an
  OpenMP barrier costs a scheduler time slice (~4 ms measured), more than the GEMM itself.

Example:
    >>> import numpy as np
    >>> from hf_uniform.engine.store import InMemorySource
    >>> x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> eng = LazyEngine(InMemorySource(x, "cosine"), capacity=20, metric="cosine")
    >>> eng.add(eng.vector(0), 0, float("inf"))
    >>> eng.run(20)
    20
    >>> eng.selected()[0][:3].tolist()
    [0, 62, 74]
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from . import _kernels as K

logger = logging.getLogger(__name__)

_UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bfloat16 dot products (AVX512-BF16 or AMX), so bf16 GEMMs pay off.

    Example:
        >>> isinstance(cpu_has_fast_bf16(), bool)
        True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags) and torch.backends.mkldnn.is_available()
    except OSError:  # pragma: no cover - non-Linux
        pass
    return False


def default_filter_dtype() -> torch.dtype:
    """bfloat16 on CPUs with native bf16 dot products, float32 elsewhere (``HF_UNIFORM_FILTER_DTYPE`` overrides).

    Example:
        >>> default_filter_dtype() in (torch.float32, torch.bfloat16)
        True
    """
    env = os.environ.get("HF_UNIFORM_FILTER_DTYPE")
    if env:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[env]
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


@contextlib.contextmanager
def gemm_threads(n: int | None = None) -> Iterator[int]:
    """Run torch with ``n`` intra-op threads inside the block (default ``HF_UNIFORM_THREADS`` or 1).

    The lazy engine's GEMMs are small (a few thousand rows by at most a few hundred centres). With more than
    one OpenMP thread each call pays a synchronisation that, on a shared or busy machine, costs a scheduler
    time slice (~4 ms measured) -- far more than the GEMM itself -- so one thread is the robust default.

    Example:
        >>> with gemm_threads(1) as nt:
        ...     torch.get_num_threads() == nt == 1
        True
    """
    if n is None:
        n = int(os.environ.get("HF_UNIFORM_THREADS", "1"))
    old = torch.get_num_threads()
    n = max(1, int(n))
    if n != old:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if n != old:
            torch.set_num_threads(old)


def bf16_floor_keys(t: np.ndarray) -> np.ndarray:
    """Order keys (``b ^ ((b >> 15) & 0x7FFF)`` of bfloat16 bits ``b``) of bfloat16 values ``<= t``.

    Example:
        >>> bf16_floor_keys(np.array([1.0, -1.0])).tolist()
        [16256, -16257]
    """
    t = np.clip(np.asarray(t, dtype=np.float64), -3.0e38, 3.0e38)
    f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    u = f.view(np.uint32)
    hi = u >> np.uint32(16)
    hi = hi + (((u >> np.uint32(31)) == 1) & ((u & np.uint32(0xFFFF)) != 0)).astype(np.uint32)
    b = hi.astype(np.uint16).view(np.int16)
    keys = b ^ ((b >> np.int16(15)) & np.int16(0x7FFF))
    keys[t == 0.0] = -1  # -0 compares equal to 0: its key (-1) must not count as below
    return keys


def skip_keys(v: np.ndarray, res: np.ndarray, crmax: float, nrm: float, gam: float, err_out: float) -> np.ndarray:
    """Per-row bfloat16 order keys below which a row's largest cosine estimate proves it unchanged.

    A row with value ``v`` is unchanged by a block when every estimate satisfies
    ``S + base + err_out |S| < 1 - v - 2^-20`` with ``base`` the row's error budget (see
    :func:`hf_uniform.engine._kernels.update_rows`); solved for ``S`` and rounded down to a bfloat16 key.
    """
    xh = nrm + res
    base = res * nrm + xh * crmax + gam * xh * (nrm + crmax) + 1e-30
    r = 1.0 - v.astype(np.float64) - 2.0 ** -20 - base
    thr = np.where(r >= 0, r / (1.0 + err_out), r / (1.0 - err_out))
    return bf16_floor_keys(np.nan_to_num(thr, nan=-3.0e38, neginf=-3.0e38, posinf=3.0e38))


class LazyEngine:
    """Exact greedy max-min over the rows of a source (one shard, in distributed runs).

    Args:
        source: an :class:`~hf_uniform.engine.store.InMemorySource` or ``StreamSource`` of prepared rows.
        capacity: the most centres this run will hold (``k``).
        metric: ``"cosine"`` or ``"euclidean"``.
        block: centres per flush (GEMM width). Results do not depend on it.
        chunk_rows: rows per GEMM call. Results do not depend on it.
        filter_dtype: GEMM precision (``torch.bfloat16`` or ``torch.float32``); default per CPU.
        max_active: cap on the rows held in the active cache (streamed sources: bounds memory).

    The driver calls :meth:`value_of` / :meth:`add` for start rows, then either :meth:`run` (single
    process, compiled loop) or :meth:`best` / :meth:`add` per step (distributed). See the module docstring
    for the algorithm and :mod:`hf_uniform.selection` for the public entry point.
    """

    def __init__(self, source: Any, capacity: int, metric: str, *, block: int | None = None,
                 chunk_rows: int | None = None, filter_dtype: torch.dtype | None = None,
                 max_active: int | None = None):
        self.src = source
        self.n, self.d = int(source.n), int(source.d)
        self.metric = metric
        self.mc = K.COSINE if metric == "cosine" else K.EUCLIDEAN
        self.block = max(1, int(block or 512))
        self.cols = max(self.block, 512)  # centres per GEMM (independent of the flush cadence)
        self.chunk_rows = max(1, int(chunk_rows or 2048))
        # flush as soon as scalar refreshes cost more than a GEMM of the active rows would (~10x cheaper/pair)
        self.eval_ratio = 0.1
        self.fdt = filter_dtype or default_filter_dtype()
        if self.fdt not in (torch.float32, torch.bfloat16):
            raise ValueError(f"filter dtype must be float32 or bfloat16, got {self.fdt}")
        self.max_active = max_active
        self.base_cap = max(8 * self.block, 4096) if max_active is None else max(1, min(max_active, 8 * self.block))
        self.wake_cap = self.base_cap
        d = self.d
        u = _UNIT_ROUNDOFF[self.fdt]
        ua = 2.0 ** -24
        self.gam = 1.05 * d * ua / (1.0 - d * ua)  # float32 accumulation of d exact products
        # output rounding of a bf16 GEMM: budget 2u (correct even for truncation, not only round-to-nearest)
        self.err_out = 0.0 if self.fdt == torch.float32 else 2.0 * u / (1.0 - 2.0 * u)
        self.nrm = 1.0 + 1e-6  # bound on |x| for unit-normalised float32 rows
        cap = max(1, int(capacity))
        self.cap = cap
        self.m = np.full(self.n, np.inf, dtype=np.float32)
        self.ep = np.zeros(self.n, dtype=np.int64)
        self.pos_of = np.full(self.n, -1, dtype=np.int64)
        self.C = np.zeros((cap + 1, d), dtype=np.float32)
        self.Cf = torch.zeros((cap + 1, d), dtype=self.fdt)
        self.cres = np.zeros(cap + 2, dtype=np.float64)
        self.cn2 = np.zeros(cap + 1, dtype=np.float64)  # squared norms of the centres (float64)
        self.sel_idx = np.full(cap + 1, -1, dtype=np.int64)
        self.sel_rad = np.full(cap + 1, -np.inf, dtype=np.float64)
        self.t = 0
        self.tf = 0
        self.tau = math.inf  # +inf: nothing flushed yet
        # dormant rows: runs [ids, -keys] sorted by key (the row's m when it fell asleep) descending, plus a
        # read pointer; each row's own epoch is in ep.
        self.runs: list[list[Any]] = [[np.arange(self.n, dtype=np.int64), np.full(self.n, -np.inf, np.float32), 0]]
        self._su = np.zeros(self.cols + 1, dtype=np.uint32)
        self._sf = self._su.view(np.float32)
        self._xu = np.zeros(d, dtype=np.uint32)
        self._xf = self._xu.view(np.float32)
        self._dS = np.zeros((1, 1), dtype=np.float32)
        self._dS16 = np.zeros((1, 1), dtype=np.int16)
        self._nokeys = np.zeros(0, dtype=np.int16)
        self._early = 0
        self._wake_cut = -math.inf
        if source.in_memory:
            self._precompute()
        self._set_active(np.empty(0, np.int64), np.empty((0, d), np.float32))
        self._cnt = np.zeros(4, dtype=np.int64)  # walk rows scanned, walk exact evals, flush exact evals, rows
        self.stats = {"flushes": 0, "early_flushes": 0, "gemm_pairs": 0, "woken_rows": 0, "steps": 0}

    # ------------------------------------------------------------------ helpers
    def _precompute(self) -> None:
        """In-memory sources: the filter copy, residual norms and squared norms of every row, once."""
        X = self.src.x
        self.Xn2 = np.empty(self.n, dtype=np.float64)
        K.sq_norms64(X, self.Xn2)
        if self.fdt == torch.bfloat16:
            self.X16 = np.empty(X.shape, dtype=np.int16)
            self.Xres = np.empty(self.n, dtype=np.float64)
            K.to_bf16(X, self.X16.view(np.uint16), self.Xres, self._xu, self._xf)
            self.Xres = self.Xres * (1.0 + 1e-12) + 1e-37
        else:
            self.X16, self.Xres = None, np.zeros(self.n, dtype=np.float64)

    def _rowset(self, ids: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                 torch.Tensor, np.ndarray,
                                                                                 np.ndarray]:
        """``(rows array, row index into it, filter copy, residual norms, squared norms)`` for ``ids``."""
        if self.src.in_memory:
            X = self.src.x
            if self.X16 is not None:
                f = torch.from_numpy(self.X16[ids]).view(torch.bfloat16)
            else:
                f = torch.from_numpy(X[ids])
            return X, ids, f, self.Xres[ids], self.Xn2[ids]
        if rows is None:
            rows = self.src.rows(ids)
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        f, res = self._filter_copy(rows)
        an = np.empty(rows.shape[0], dtype=np.float64)
        K.sq_norms64(rows, an)
        return rows, np.arange(rows.shape[0], dtype=np.int64), f, res, an

    def _set_active(self, ids: np.ndarray, rows: np.ndarray | None) -> None:
        if hasattr(self, "aid") and self.aid.size:
            K.fill_positions(self.pos_of, self.aid, -1)
        self.aid = ids
        self.rows_arr, self.rid, self.Af, self.ares, self.an = self._rowset(ids, rows)
        self.am = self.m[ids].copy()
        self.v = self.am.copy()
        self.q = np.zeros(ids.size, dtype=np.int64)
        self.R = 0
        K.fill_positions(self.pos_of, ids, -2)

    def _filter_copy(self, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Reduced-precision copy for the GEMMs and each row's rounding-residual norm (an upper bound)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.fdt == torch.float32:
            return torch.from_numpy(rows), np.zeros(rows.shape[0], dtype=np.float64)
        bits = np.empty(rows.shape, dtype=np.int16)
        res = np.empty(rows.shape[0], dtype=np.float64)
        K.to_bf16(rows, bits.view(np.uint16), res, self._xu, self._xf)
        return torch.from_numpy(bits).view(torch.bfloat16), res * (1.0 + 1e-12) + 1e-37

    def _prep_centres(self, c0: int, c1: int) -> None:
        f, res = self._filter_copy(self.C[c0:c1])
        self.Cf[c0:c1] = f
        self.cres[c0:c1] = res

    def _update(self, rows: np.ndarray, rid: np.ndarray, rows_f: torch.Tensor, res: np.ndarray, rn2: np.ndarray,
                v: np.ndarray, q: np.ndarray, c0: int, c1: int) -> None:
        """Bring ``v`` of rows ``rows[rid]`` up to date against centres ``C[c0:c1]`` (q: centres already folded)."""
        p = c1 - c0
        S = torch.mm(rows_f, self.Cf[c0:c1].T)
        self.stats["gemm_pairs"] += rid.shape[0] * p
        if self.fdt == torch.bfloat16:
            keys = skip_keys(v, res, float(self.cres[c0:c1].max()), self.nrm, self.gam, self.err_out) \
                if self.mc == K.COSINE else self._nokeys
            K.update_rows(self._dS, True, S.view(torch.int16).numpy(), rows, rid, res, rn2, v, q, self.C, c0, p, self.mc,
                          self.cres, self.cn2, self.err_out, self.gam, self.nrm, self._su, self._sf, self._cnt, keys)
        else:
            K.update_rows(S.numpy(), False, self._dS16, rows, rid, res, rn2, v, q, self.C, c0, p, self.mc,
                          self.cres, self.cn2, self.err_out, self.gam, self.nrm, self._su, self._sf, self._cnt,
                          self._nokeys)

    def _refresh(self, rows: np.ndarray, rid: np.ndarray, rows_f: torch.Tensor, res: np.ndarray, rn2: np.ndarray,
                 v: np.ndarray, c0: int, c1: int, q: np.ndarray | None = None) -> None:
        """Fold centres ``C[c0:c1]`` into ``v`` in GEMM chunks of at most ``cols`` centres and chunk_rows rows."""
        for a in range(0, rid.shape[0], self.chunk_rows):
            b = min(rid.shape[0], a + self.chunk_rows)
            qa = q[a:b] if q is not None else None
            for cs in range(c0, c1, self.cols):
                ce = min(c1, cs + self.cols)
                if qa is None or cs > c0:
                    qq = np.zeros(b - a, dtype=np.int64)
                else:
                    qq = qa
                self._update(rows, rid[a:b], rows_f[a:b], res[a:b], rn2[a:b], v[a:b], qq, cs, ce)

    def _has_dormant(self) -> bool:
        return any(r[2] < r[0].size for r in self.runs)

    def _choose_tau(self, hint: float | None) -> float:
        """Dormancy threshold: rows whose bound is below it sleep until the radius gets near it.

        Normal flushes predict the radius one block ahead from the drop over the last block. Early flushes
        (the walk's best value ``hint`` fell below the threshold) go below ``hint`` by the gap it fell,
        doubling on repeats. Only performance depends on it, never the result.
        """
        t = self.t
        r_last = self.sel_rad[t - 1] if t else math.inf
        pred, drop = None, math.inf
        if t >= 2 and math.isfinite(r_last):
            lo = max(0, t - 1 - self.block)
            while lo < t - 1 and not math.isfinite(self.sel_rad[lo]):
                lo += 1
            span = t - 1 - lo
            if span >= max(16, self.block // 4):
                drop = max(float(self.sel_rad[lo] - r_last), 0.0) * self.block / span
                drop = max(drop, 1e-6 * abs(r_last) + 1e-12)
                pred = r_last - 1.25 * drop
        if hint is None:
            self._early = 0
            return -math.inf if pred is None else pred
        self._early += 1
        self.stats["early_flushes"] += 1
        if pred is None or self._early > 8:  # no trace yet: the start-up cap in flush() decides
            return -math.inf
        if not (math.isfinite(hint) and math.isfinite(self.tau)):
            return pred - drop * (2 ** self._early)
        gap = max(self.tau - hint, 1e-3 * drop, 1e-6 * abs(hint) + 1e-12) * (2 ** (self._early - 1))
        return hint - gap

    # ------------------------------------------------------------------ flush
    def flush(self, hint: float | None = None) -> None:
        """Fold the pending centres into the active rows, pick a new dormancy threshold, wake/sleep rows."""
        t, tf = self.t, self.tf
        self.stats["flushes"] += 1
        if t > tf:
            self._prep_centres(tf, t)
            if self.aid.size:
                self._refresh(self.rows_arr, self.rid, self.Af, self.ares, self.an, self.v, tf, t, q=self.q)
        if self.aid.size:
            self.m[self.aid] = self.v
            self.ep[self.aid] = t
        self.tf = t
        if hint is not None:  # the walk ran dry: allow more rows next time
            self.wake_cap = min(self.n, 2 * self.wake_cap, self.max_active or self.n)
        else:
            self.wake_cap = max(self.base_cap, int(self.wake_cap * 0.75))
        tau = self._raise_to_cap(self._choose_tau(hint), hint)
        live = self.v > -np.inf
        keep = live & (self.v >= tau)
        kept_ids = [self.aid[keep]]
        kept_rows = None if self.src.in_memory else [self.rows_arr[self.rid[keep]]]
        sleep = [self.aid[live & ~keep]]
        woken = []
        for run in self.runs:
            ids, keys, ptr = run
            end = int(np.searchsorted(keys, -tau, side="right")) if tau > -math.inf else ids.size
            if end > ptr:
                woken.append(ids[ptr:end])
                run[2] = end
        runs = [r for r in self.runs if r[2] < r[0].size]
        if woken:
            wake = np.concatenate(woken)
            wake = wake[self.m[wake] > -np.inf]
            if wake.size:
                self._wake_cut = -math.inf
                trim = None
                if kept_rows is not None and self.max_active is not None:  # streamed: bound the transient too
                    trim = self.max_active if self.t >= 2 * self.block else \
                        min(self.max_active, max(self.wake_cap, self.base_cap))
                self._wake(wake, tau, kept_ids, kept_rows, sleep, trim, hint)
                tau = max(tau, self._wake_cut)
        ids = np.concatenate(kept_ids)
        rows = None if kept_rows is None else (np.concatenate(kept_rows) if len(kept_rows) > 1 else kept_rows[0])
        cap = self.max_active
        if self.t < 2 * self.block:  # start-up: bounds were unknown before this flush, cap afterwards
            cap = min(cap or ids.size, max(self.wake_cap, self.base_cap))
        if cap is not None and ids.size > cap:
            vals = self.m[ids]
            kth = ids.size - cap
            cut = float(np.partition(vals, kth)[kth])  # the cap-th largest value
            if hint is not None:  # an early flush must wake every row that could beat the walk's best
                cut = min(cut, hint)
            hold = vals >= cut
            tau = max(tau, cut)
            sleep.append(ids[~hold])
            ids, rows = ids[hold], (None if rows is None else rows[hold])
        self.tau = tau
        sleepers = np.concatenate(sleep)
        if sleepers.size:
            runs.append(self._make_run(sleepers))
        if len(runs) > 12:  # merge: keeps the per-flush scan short
            runs = [self._make_run(np.concatenate([r[0][r[2]:] for r in runs]))]
        self.runs = runs
        order = np.lexsort((ids, -self.m[ids]))
        self._set_active(ids[order], None if rows is None else rows[order])

    def _raise_to_cap(self, tau: float, hint: float | None) -> float:
        """Raise ``tau`` so that at most ``wake_cap`` rows are active or woken (by bound, largest first);
        an early flush never goes above the walk's best ``hint`` (those rows may beat it)."""
        cap = self.wake_cap
        heads = [self.v[self.v >= tau]]
        total = heads[0].size
        for ids, keys, ptr in self.runs:
            end = int(np.searchsorted(keys, -tau, side="right")) if tau > -math.inf else ids.size
            total += max(end - ptr, 0)
            heads.append(-keys[ptr:min(end, ptr + cap)])
        if total <= cap:
            return tau
        vals = np.concatenate(heads)
        cut = float(np.partition(vals, vals.size - cap)[vals.size - cap])
        if hint is not None:
            cut = min(cut, hint)
        return max(tau, cut) if math.isfinite(cut) else tau  # +inf keys: not yet computed (start-up)

    def _make_run(self, ids: np.ndarray) -> list[Any]:
        neg = -self.m[ids]
        so = np.argsort(neg)  # the order among equal keys does not matter: runs are only cut by key
        return [ids[so], neg[so], 0]

    def _wake(self, wake: np.ndarray, tau: float, kept_ids: list, kept_rows: list | None, sleep: list,
              trim: int | None = None, hint: float | None = None) -> None:
        """Bring dormant rows up to date, centre chunk by centre chunk, in order of the centre count they
        are exact for; a row goes back to sleep as soon as its value drops below ``tau`` (it is then exact
        over a prefix of the centres, which is all a dormant row needs). Rows that stay at or above ``tau``
        become active."""
        self.stats["woken_rows"] += int(wake.size)
        t, B = self.t, self.cols
        step = max(4 * self.chunk_rows, 16384)
        if self.max_active is not None:  # streamed: rows read per wake batch stay within the budget
            step = min(step, max(1024, self.max_active // 2))
        wake = wake[np.argsort(self.ep[wake], kind="stable")]
        for a in range(0, wake.size, step):
            ids = wake[a:a + step]
            e = self.ep[ids].copy()  # non-decreasing, and stays so: rows advance in prefix order
            v = self.m[ids].copy()
            rows, rid, rows_f, res, rn2 = self._rowset(ids)
            awake = np.ones(ids.size, dtype=bool)
            n_dead = 0
            cs = (int(e[0]) // B) * B
            while cs < t:
                ce = min(t, cs + B)
                npart = int(np.searchsorted(e, ce, side="left"))  # rows not yet exact over C[:ce]
                if npart:
                    q = np.clip(e[:npart] - cs, 0, ce - cs)
                    q[~awake[:npart]] = ce - cs  # asleep again: skip
                    vq = v[:npart]
                    self._refresh(rows, rid[:npart], rows_f[:npart], res[:npart], rn2[:npart], vq, cs, ce, q=q)
                    moved = awake[:npart]
                    e[:npart][moved] = ce
                    low = moved & (vq < tau)
                    if low.any():
                        awake[:npart][low] = False
                        n_dead += int(low.sum())
                        if 2 * n_dead > int(awake.size):  # compact: drop sleepers from the GEMMs
                            self._settle(ids[~awake], v[~awake], e[~awake], sleep)
                            ids, v, e, rid, res, rn2 = (ids[awake], v[awake], e[awake], rid[awake], res[awake],
                                                        rn2[awake])
                            rows_f = rows_f[torch.from_numpy(awake)]
                            awake = np.ones(ids.size, dtype=bool)
                            n_dead = 0
                            if not ids.size:
                                break
                cs = ce
            self._settle(ids[~awake], v[~awake], e[~awake], sleep)
            ids, v, e, rid = ids[awake], v[awake], e[awake], rid[awake]
            self.m[ids] = v
            self.ep[ids] = e
            hold = v >= tau
            kept_ids.append(ids[hold])
            if kept_rows is not None:
                kept_rows.append(rows[rid[hold]])
            sleep.append(ids[~hold])
            if trim is not None and sum(k.size for k in kept_ids) > 2 * trim:
                self._trim_kept(trim, hint, kept_ids, kept_rows, sleep)

    def _trim_kept(self, cap: int, hint: float | None, kept_ids: list, kept_rows: list, sleep: list) -> None:
        """Streamed sources: keep only the ``cap`` largest exact values among the rows held so far (never
        one that could beat an early flush's ``hint``); the rest sleep, and the cut raises the dormancy
        threshold (recorded in ``_wake_cut``, applied by :meth:`flush`) so that they are woken again when
        the radius approaches them."""
        ids = np.concatenate(kept_ids)
        rows = np.concatenate(kept_rows)
        vals = self.m[ids]
        kth = ids.size - cap
        cut = float(np.partition(vals, kth)[kth])
        if hint is not None:
            cut = min(cut, hint)
        hold = vals >= cut
        sleep.append(ids[~hold])
        kept_ids[:] = [ids[hold]]
        kept_rows[:] = [rows[hold]]
        self._wake_cut = max(self._wake_cut, cut)

    def _settle(self, ids: np.ndarray, v: np.ndarray, e: np.ndarray, sleep: list) -> None:
        """Record rows going back to sleep: exact value ``v`` over the first ``e`` centres."""
        if ids.size:
            self.m[ids] = v
            self.ep[ids] = e
            sleep.append(ids)

    # ------------------------------------------------------------------ steps
    def _ready(self) -> None:
        if self.tau == math.inf:
            self.flush()

    def vector(self, row: int) -> np.ndarray:
        """The prepared float32 vector of local row ``row``."""
        if self.src.in_memory:
            return self.src.x[row].copy()
        pos = int(self.pos_of[row])
        if pos >= 0:
            return self.rows_arr[self.rid[pos]].copy()
        return self.src.rows(np.array([row], dtype=np.int64))[0]

    def value_of(self, row: int) -> float:
        """Exact min-distance of local ``row`` to the centres so far (``-inf`` once chosen)."""
        if self.m[row] == -np.inf:
            return -math.inf
        pos = int(self.pos_of[row])
        if pos >= 0:
            val = K.exact_value(self.rows_arr[self.rid[pos]], self.v[pos], self.C, self.cn2, self.tf + int(self.q[pos]), self.t,
                                self.mc)
            return float(val)
        x = self.vector(row)
        return float(K.exact_value(x, self.m[row], self.C, self.cn2, int(self.ep[row]), self.t, self.mc))

    def add(self, vec: np.ndarray, row: int, radius: float) -> None:
        """Record a centre (``row`` is its local index, -1 when another shard owns it) chosen at ``radius``."""
        t = self.t
        self.C[t] = vec
        self.cn2[t] = K.dot64(self.C[t], self.C[t])
        self.sel_idx[t] = row
        self.sel_rad[t] = radius
        if row >= 0:
            self.m[row] = -np.inf
            pos = int(self.pos_of[row])
            if pos >= 0:
                self.v[pos] = -np.inf
        self.t = t + 1
        if self.t - self.tf >= self.block:
            self.flush()

    def best(self) -> tuple[float, int]:
        """``(value, local row)`` of the unchosen row farthest from the centres; ``(-inf, -1)`` if none."""
        self._ready()
        while True:
            R, bpos, best = K.walk(self.rows_arr, self.rid, self.an, self.aid, self.am, self.v, self.q, self.C, self.cn2, self.tf,
                                   self.t, self.mc,
                                   self.R, self._cnt)
            self.R = R
            if (bpos < 0 or best < self.tau) and self._has_dormant():
                self.flush(hint=float(best))
                continue
            return (float(best), int(self.aid[bpos])) if bpos >= 0 else (-math.inf, -1)

    def run(self, t_end: int, should_stop: Callable[[], bool] | None = None,
            on_block: Callable[[int], None] | None = None) -> int:
        """Greedy steps until ``t_end`` centres (single process); returns the centre count reached.

        Returns early, at a flush boundary, when ``should_stop()`` becomes true (checkpoints).
        """
        self._ready()
        while self.t < t_end:
            dormant = self._has_dormant()
            tau = self.tau if dormant else -math.inf
            blk_end = min(t_end, self.tf + self.block)
            t0 = self.t
            t, R, status, best = K.run_block(self.rows_arr, self.rid, self.an, self.aid, self.am, self.v, self.q, self.C, self.cn2,
                                             self.tf, self.t,
                                             blk_end, self.mc, self.R, tau, self.sel_idx, self.sel_rad, self.m,
                                             self._cnt, self.eval_ratio)
            self.t, self.R = int(t), int(R)
            self.stats["steps"] += self.t - t0
            if status == 1:
                if not dormant:
                    raise RuntimeError("no unchosen rows left")  # k <= n is checked by the caller
                self.flush(hint=float(best))
            elif status == 2 or self.t - self.tf >= self.block:
                self.flush()
            if on_block is not None and self.t > t0:
                on_block(self.t)
            if should_stop is not None and self.t < t_end and should_stop():
                break
        return self.t

    def coverage(self) -> float:
        """Largest exact min-distance over the unchosen rows (the k-center radius); -inf if none."""
        return self.best()[0]

    def selected(self) -> tuple[np.ndarray, np.ndarray]:
        """``(local rows, radii)`` of the centres so far (-1 for centres owned by other shards)."""
        return self.sel_idx[:self.t].copy(), self.sel_rad[:self.t].copy()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, np.ndarray]:
        """Exact, compact state: per-row min-distance ``m`` over the first ``ep`` centres (flushes first)."""
        if self.t > self.tf or self.tau == math.inf:
            self.flush()
        return {"m": self.m.copy(), "ep": self.ep.copy()}

    def load_state(self, m: np.ndarray, ep: np.ndarray, centres: np.ndarray, local_rows: np.ndarray,
                   radii: np.ndarray) -> None:
        """Restore a state written by :meth:`state_dict` (``centres`` are the prepared centre vectors)."""
        t = int(centres.shape[0])
        if m.shape != (self.n,) or ep.shape != (self.n,) or (ep > t).any():
            raise ValueError("checkpoint state does not fit this shard")
        self.m[:] = m
        self.ep[:] = ep
        self.C[:t] = centres
        K.sq_norms64(self.C[:t], self.cn2[:t])
        self.sel_idx[:t] = local_rows
        self.sel_rad[:t] = radii
        self.t = self.tf = t
        if t:
            self._prep_centres(0, t)
        self._set_active(np.empty(0, np.int64), np.empty((0, self.d), np.float32))
        live = np.flatnonzero(self.m > -np.inf)
        self.runs = [self._make_run(live)]
        self.tau = math.inf
