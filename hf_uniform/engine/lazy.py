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

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import _kernels as K
from ._kernels import bf16_floor_keys, skip_keys  # noqa: F401 - public here since the start
from ._lazy_support import (  # noqa: F401 - public here
    STATE_BYTES_PER_ROW,
    CheckpointState,
    Dormancy,
    SweepFallback,
    Waking,
    _cat,
    cpu_has_fast_bf16,
    default_filter_dtype,
    gemm_threads,
    memory_plan,
    trim_heap,
)
from .store import unit_rows

logger = logging.getLogger(__name__)

#: bfloat16 GEMM shapes: rows and centres are padded up to one of these (oneDNN JIT-compiles and keeps a
#: kernel of ~0.7 MB for every shape it sees; measured in benchmarks/memory_bench.py)
GEMM_ROWS = (128, 512, 2048)
GEMM_COLS = (64, 512)


def _round_up32(r: np.ndarray) -> np.ndarray:
    """float64 values rounded up to float32 (each result >= its input)."""
    r32 = r.astype(np.float32)
    low = r32 < r
    r32[low] = np.nextafter(r32[low], np.float32(np.inf))
    return r32


def _bucket(n: int, sizes: tuple[int, ...]) -> int:
    for s in sizes:
        if n <= s:
            return s
    return n


#: GEMMs with fewer multiply-adds than this run on one thread (an OpenMP barrier costs more than they do)
_MT_WORK = 1 << 24
_UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


class LazyEngine(Dormancy, Waking, SweepFallback, CheckpointState):
    """Exact greedy max-min over the rows of a source (one shard, in distributed runs).

    Args:
        source: an :class:`~hf_uniform.engine.store.InMemorySource` or ``StreamSource`` of prepared rows.
        capacity: the most centres this run will hold (``k``).
        metric: ``"cosine"`` or ``"euclidean"``.
        block: centres per flush (GEMM width). Results do not depend on it.
        chunk_rows: rows per GEMM call. Results do not depend on it.
        filter_dtype: GEMM precision (``torch.bfloat16`` or ``torch.float32``); default per CPU.
        max_active: cap on the rows held in the active cache (streamed sources: bounds memory).
        max_memory: bytes (streamed sources): sets ``max_active``, ``chunk_rows`` and the source's read chunk
            from :func:`memory_plan`, so that the engine's own peak stays within it.
        fallback: ``"auto"`` (default; ``HF_UNIFORM_LAZY_FALLBACK`` overrides), ``"never"`` or ``"always"``:
            in-memory single-process runs switch to exact full sweeps (:func:`~hf_uniform.engine._kernels.sweep_steps`)
            when the measured cost of a lazy step exceeds the predicted cost of a sweep step (flat or
            low-dimensional data, where pruning stops paying). Results do not depend on it.

    The driver calls :meth:`value_of` / :meth:`add` for start rows, then either :meth:`run` (single
    process, compiled loop) or :meth:`best` / :meth:`add` per step (distributed). See the module docstring
    for the algorithm and :mod:`hf_uniform.selection` for the public entry point.
    """

    def __init__(self, source: Any, capacity: int, metric: str, *, block: int | None = None,
                 chunk_rows: int | None = None, filter_dtype: torch.dtype | None = None,
                 max_active: int | None = None, fallback: str | None = None, max_memory: int | None = None):
        self.src = source
        self.n, self.d = int(source.n), int(source.d)
        self.metric = metric
        self.mc = K.COSINE if metric == "cosine" else K.EUCLIDEAN
        self.block = max(1, int(block or 512))
        self.cols = max(self.block, 512)  # centres per GEMM (independent of the flush cadence)
        self.chunk_rows = max(1, int(chunk_rows or 2048))
        self.fdt = filter_dtype or default_filter_dtype(self.d, capacity)
        if max_memory is not None and not source.in_memory:
            plan = memory_plan(self.n, self.d, capacity, int(max_memory), filter_dtype)
            self.fdt = plan.get("filter_dtype", self.fdt)
            if plan["stream"]:
                self._trim = True
                max_active = plan["max_active"] if max_active is None else min(max_active, plan["max_active"])
                self.chunk_rows = min(self.chunk_rows, plan["chunk_rows"])
                source.chunk_rows = min(source.chunk_rows, plan["read_rows"])
        # flush as soon as scalar refreshes cost more than a GEMM of the active rows would (~10x cheaper/pair)
        self.eval_ratio = 0.1
        if self.fdt not in (torch.float32, torch.bfloat16):
            raise ValueError(f"filter dtype must be float32 or bfloat16, got {self.fdt}")
        self.max_active = max_active
        self.fallback = fallback or os.environ.get("HF_UNIFORM_LAZY_FALLBACK", "auto")
        if self.fallback not in ("auto", "never", "always"):
            raise ValueError(f"fallback must be auto, never or always, got {self.fallback!r}")
        self._trim = getattr(self, "_trim", False)  # streamed with a budget: free pages back after each flush
        self.swept = False  # True once run() has switched to full sweeps
        self.stopped = False  # True once run() stopped at its radius
        self._live = np.empty(0, np.int64)
        self._Sbuf = torch.empty(self.chunk_rows * self.cols, dtype=self.fdt)  # GEMM output, reused
        self._Gbuf: np.ndarray | None = None  # in-memory rows gathered for one GEMM chunk, reused
        self._zres = np.zeros(self.chunk_rows)  # the residual norms of a float32 filter chunk (all zero)
        self._Pbuf: torch.Tensor | None = None  # bf16: one GEMM chunk rounded / padded to a row bucket
        self._row_buckets = tuple(sorted({min(b, self.chunk_rows) for b in GEMM_ROWS} | {self.chunk_rows}))
        self.base_cap = max(8 * self.block, 4096) if max_active is None else max(1, min(max_active, 8 * self.block))
        self.wake_cap = self.base_cap
        d = self.d
        u = _UNIT_ROUNDOFF[self.fdt]
        ua = 2.0 ** -24
        self.gam = 1.05 * d * ua / (1.0 - d * ua)  # float32 accumulation of d exact products
        # output rounding of a bf16 GEMM: budget 2u (correct even for truncation, not only round-to-nearest)
        self.err_out = 0.0 if self.fdt == torch.float32 else 2.0 * u / (1.0 - 2.0 * u)
        self.nrm = 1.0 + 1e-6  # bound on |c| of the centres' unit filter copies (cosine; rows: in units of |x|)
        cap = max(1, int(capacity))
        self.cap = cap
        self.m = np.full(self.n, np.inf, dtype=np.float32)
        self.ep = np.zeros(self.n, dtype=np.int32)  # int32: per-row state is what max_memory must hold
        self.pos_of = np.full(self.n, -1, dtype=np.int32)
        self.C = np.zeros((cap + 1, d), dtype=np.float32)
        self.Cf = torch.zeros((cap + 1 + (GEMM_COLS[-1] if self.fdt == torch.bfloat16 else 0), d), dtype=self.fdt)
        self.cres = np.zeros(cap + 2, dtype=np.float64)
        self.cn2 = np.zeros(cap + 1, dtype=np.float64)  # squared norms of the centres (float64)
        self.sel_idx = np.full(cap + 1, -1, dtype=np.int64)
        self.sel_rad = np.full(cap + 1, -np.inf, dtype=np.float64)
        self.t = 0
        self.tf = 0
        self.tau = math.inf  # +inf: nothing flushed yet
        # dormant rows: runs [ids, -keys] sorted by key (the row's m when it fell asleep) descending, plus a
        # read pointer; each row's own epoch is in ep.
        # row ids (dormant runs, active set) are int32 when n < 2^31: 4 B/row less of the state max_memory holds
        self._idt = np.int32 if self.n < 2 ** 31 else np.int64
        self.runs: list[list[Any]] = [[np.arange(self.n, dtype=self._idt), np.full(self.n, -np.inf, np.float32), 0]]
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
        self._set_active(np.empty(0, self._idt), np.empty((0, d), np.float32))
        self._cnt = np.zeros(4, dtype=np.int64)  # walk rows scanned, walk exact evals, flush exact evals, rows
        self.stats = {"flushes": 0, "early_flushes": 0, "gemm_pairs": 0, "woken_rows": 0, "steps": 0,
                      "path": "lazy"}

    # ------------------------------------------------------------------ helpers
    def _precompute(self) -> None:
        """In-memory sources: the filter copy, residual norms and squared norms of every row, once."""
        X = self.src.x
        self.Xn2 = np.empty(self.n, dtype=np.float64)
        K.sq_norms64(X, self.Xn2)
        self.Xres: np.ndarray | None = None  # float32 filter: no residuals (zeros per row set, not per row)
        if self.fdt == torch.bfloat16:  # residual norms only: each GEMM chunk is rounded when it is gathered
            # kept as float32 rounded up (an upper bound still): 4 B/row instead of 8
            self.Xres = np.empty(self.n, dtype=np.float32)
            step = max(1, (1 << 20) // max(1, self.d))
            bits = np.empty((min(step, self.n), self.d), dtype=np.uint16)
            r64 = np.empty(min(step, self.n), dtype=np.float64)
            for a in range(0, self.n, step):
                b = min(self.n, a + step)
                r = r64[:b - a]
                K.to_bf16(X[a:b], bits[:b - a], r, self._xu, self._xf)
                r *= 1.0 + 1e-12
                r += 1e-37
                self.Xres[a:b] = _round_up32(r)

    def _rowset(self, ids: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                 torch.Tensor | None,
                                                                                 np.ndarray, np.ndarray]:
        """``(rows array, row index into it, filter copy or None (in memory), residual norms or None (all zero),
        squared norms indexed like the rows array)``."""
        if self.src.in_memory:  # no filter copy: _refresh gathers each GEMM chunk's rows when it needs them
            # res None: all zero; squared norms: the kernels read Xn2[rid] (no per-row-set copy)
            res = None if self.Xres is None else self.Xres[ids].astype(np.float64)
            return self.src.x, ids, None, res, self.Xn2
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
        self.am = self.m[ids]  # (a copy: fancy indexing)
        self.v = self.am.copy()
        self.q = np.zeros(ids.size, dtype=np.int32)  # < block centres
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
        """The centres' filter copy: unit vectors (normalised in float64) under cosine, whose residual also
        counts the float32 rounding of the exact direction (``2^-22``, generous); raw rows under euclidean."""
        if self.mc == K.COSINE:
            f, res = self._filter_copy(unit_rows(self.C[c0:c1]))
            res = res + 2.0 ** -22
        else:
            f, res = self._filter_copy(self.C[c0:c1])
        self.Cf[c0:c1] = f
        self.cres[c0:c1] = res

    def _update(self, rows: np.ndarray, rid: np.ndarray, rows_f: torch.Tensor, res: np.ndarray, rn2: np.ndarray,
                v: np.ndarray, q: np.ndarray, c0: int, c1: int) -> None:
        """Bring ``v`` of rows ``rows[rid]`` up to date against centres ``C[c0:c1]`` (q: centres already folded)."""
        p = c1 - c0
        r = rid.shape[0]
        rb, pb = r, p
        if self.fdt == torch.bfloat16:  # a few GEMM shapes only: oneDNN keeps ~0.7 MB per shape it has seen
            rb, pb = _bucket(r, self._row_buckets), _bucket(p, GEMM_COLS)
            if rows_f.shape[0] != rb:
                if self._Pbuf is None:
                    self._Pbuf = torch.zeros((self.chunk_rows, self.d), dtype=self.fdt)
                self._Pbuf[:r] = rows_f
                rows_f = self._Pbuf[:rb]
        S = self._Sbuf[:rb * pb].view(rb, pb)
        nt = torch.get_num_threads()
        small = nt > 1 and rb * pb * self.d < _MT_WORK
        if small:
            torch.set_num_threads(1)
        try:
            torch.mm(rows_f, self.Cf[c0:c0 + pb].T, out=S)
        finally:
            if small:
                torch.set_num_threads(nt)
        if (rb, pb) != (r, p):
            S = S[:r, :p]
        self.stats["gemm_pairs"] += rid.shape[0] * p
        if self.fdt == torch.bfloat16:
            keys = skip_keys(v, res, float(self.cres[c0:c1].max()), self.nrm, self.gam, self.err_out, rn2, self.d) \
                if self.mc == K.COSINE else self._nokeys
            K.update_rows(self._dS, True, S.view(torch.int16).numpy(), rows, rid, res, rn2, v, q, self.C, c0, p, self.mc,
                          self.cres, self.cn2, self.err_out, self.gam, self.nrm, self._su, self._sf, self._cnt, keys)
        else:
            K.update_rows(S.numpy(), False, self._dS16, rows, rid, res, rn2, v, q, self.C, c0, p, self.mc,
                          self.cres, self.cn2, self.err_out, self.gam, self.nrm, self._su, self._sf, self._cnt,
                          self._nokeys)

    def _gather(self, rid: np.ndarray) -> torch.Tensor:
        """The filter copy of in-memory rows ``rid`` (at most ``chunk_rows``), in a reused buffer."""
        r = rid.shape[0]
        if self.fdt == torch.bfloat16:  # gathered and rounded to bf16 in one pass, padded to a row bucket
            if self._Pbuf is None:
                self._Pbuf = torch.zeros((self.chunk_rows, self.d), dtype=self.fdt)
                self._P16 = self._Pbuf.view(torch.int16).numpy().view(np.uint16)
            K.gather_bf16(self.src.x, rid, self._P16[:r])
            return self._Pbuf[:_bucket(r, self._row_buckets)]
        if self._Gbuf is None:
            self._Gbuf = np.empty((self.chunk_rows, self.d), dtype=np.float32)
        out = self._Gbuf[:r]
        np.take(self.src.x, rid, axis=0, out=out)
        return torch.from_numpy(out)

    def _refresh(self, rows: np.ndarray, rid: np.ndarray, rows_f: torch.Tensor | None, res: np.ndarray | None,
                 rn2: np.ndarray, v: np.ndarray, c0: int, c1: int, q: np.ndarray | None = None) -> None:
        """Fold centres ``C[c0:c1]`` into ``v`` in GEMM chunks of at most ``cols`` centres and chunk_rows rows
        (``rows_f is None``: in-memory rows, gathered chunk by chunk)."""
        for a in range(0, rid.shape[0], self.chunk_rows):
            b = min(rid.shape[0], a + self.chunk_rows)
            fa = self._gather(rid[a:b]) if rows_f is None else rows_f[a:b]
            rn2a = rn2[rid[a:b]]  # squared norms are indexed like the rows array
            qa = q[a:b] if q is not None else None
            for cs in range(c0, c1, self.cols):
                ce = min(c1, cs + self.cols)
                if qa is None or cs > c0:
                    qq = np.zeros(b - a, dtype=np.int32)
                else:
                    qq = qa
                self._update(rows, rid[a:b], fa, self._zres[:b - a] if res is None else res[a:b], rn2a, v[a:b],
                             qq, cs, ce)

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
        if kept_rows is not None:  # streamed: the old active copy is no longer needed (memory)
            self.rows_arr = self.Af = None
        # memory: every list of row ids below is emptied as soon as it is concatenated, sleepers are held as
        # int32, and runs that were read to the end are dropped before their rows are woken (the peak of an
        # in-memory run is the per-row state plus one flush's transient, measured by benchmarks/memory_bench.py)
        sleep = [self.aid[live & ~keep].astype(self._idt)]
        del live, keep
        # the old active set is read: free its arrays (up to ~40 B per active row) before the new one is built;
        # aid stays until _set_active clears its positions
        self.am = self.v = self.q = self.ares = self.an = self.rid = None
        woken, run = [], None
        for run in self.runs:
            end = int(np.searchsorted(run[1], -tau, side="right")) if tau > -math.inf else run[0].size
            if end > run[2]:
                woken.append(run[0][run[2]:end])
                run[2] = end
        del run  # (no loop variable may keep a read run alive)
        runs = self.runs = [r for r in self.runs if r[2] < r[0].size]
        for r in runs:  # a run read past its middle keeps only its unread part (the read prefix is dead memory)
            if 2 * r[2] >= r[0].size:
                r[0], r[1], r[2] = r[0][r[2]:].copy(), r[1][r[2]:].copy(), 0
        if woken:
            wake = _cat(woken, self._idt)
            wake = wake[self.m[wake] > -np.inf]
            if wake.size:
                self._wake_cut = -math.inf
                trim = None
                if self.max_active is not None and kept_rows is not None:  # streamed: bound the transient too
                    trim = self.max_active if self.t >= 2 * self.block else \
                        min(self.max_active, max(self.wake_cap, self.base_cap))
                elif kept_rows is None and self.t < 2 * self.block:
                    # in memory, start-up: the cap below keeps the top max(wake_cap, base_cap) rows; trimming to
                    # it while waking keeps the same rows (a cut over part of them is never above the final cut)
                    # without holding every woken id at once
                    trim = max(self.wake_cap, self.base_cap)
                self._wake(wake, tau, kept_ids, kept_rows, sleep, trim, hint)
                tau = max(tau, self._wake_cut)
            del wake
        ids = _cat(kept_ids, self._idt)
        rows = None if kept_rows is None else (np.concatenate(kept_rows) if len(kept_rows) > 1 else kept_rows[0])
        cap = self.max_active
        if self.t < 2 * self.block:  # start-up: bounds were unknown before this flush, cap afterwards
            cap = min(cap or ids.size, max(self.wake_cap, self.base_cap))
        if cap is not None and ids.size > cap:
            vals = self.m[ids]
            kth = ids.size - cap
            cut = float(np.partition(vals, kth)[kth])  # the cap-th largest value
            if hint is not None and hint > -math.inf and rows is None:  # in memory: keep every row that could
                cut = min(cut, hint)  # beat an early flush's best (streamed: the cap wins; tau below keeps it exact)
            hold = vals >= cut
            del vals
            tau = max(tau, cut)
            sleep.append(ids[~hold].astype(self._idt))
            ids, rows = ids[hold], (None if rows is None else rows[hold])
        self.tau = tau
        sleepers = _cat(sleep, self._idt)
        if sleepers.size:
            runs.append(self._make_run(sleepers))
        del sleepers
        if len(runs) > 12:  # merge: keeps the per-flush scan short
            parts = [r[0][r[2]:] for r in runs]
            runs.clear()  # the old runs are freed once their unread parts are copied
            runs = self.runs = [self._make_run(_cat(parts, self._idt))]
        self.runs = runs
        order = np.lexsort((ids, -self.m[ids]))
        ids, rows = ids[order], (None if rows is None else rows[order])
        del order
        self._set_active(ids, rows)
        if self._trim:
            trim_heap()

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
        if self.swept:  # fold the centre into every row at once
            K.sweep_fold(self.src.x, self.Xn2, self._rinv, self._live, self.m, self.C, self.cn2, t, self.mc)
            self.ep[self._live] = self.tf = self.t
        elif self.t - self.tf >= self.block:
            self.flush()

    def best(self) -> tuple[float, int]:
        """``(value, local row)`` of the unchosen row farthest from the centres; ``(-inf, -1)`` if none."""
        if self.swept:
            val, row = K.sweep_argmax(self._live, self.m)
            return float(val), int(row)
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

    def exclude(self, local: np.ndarray) -> None:
        """Never pick these local rows (group quotas): their value becomes ``-inf``; they are not centres."""
        ids = np.asarray(local, dtype=np.int64)
        self.m[ids] = -np.inf
        pos = self.pos_of[ids]
        self.v[pos[pos >= 0]] = -np.inf

    def run(self, t_end: int, should_stop: Callable[[], bool] | None = None,
            on_block: Callable[[int], None] | None = None, radius: float | None = None) -> int:
        """Greedy steps until ``t_end`` centres (single process); returns the centre count reached.

        Returns early, at a flush boundary, when ``should_stop()`` becomes true (checkpoints), and for good
        (``stopped`` set) before a step whose best value is ``<= radius``.
        """
        rstop = -math.inf if radius is None else float(radius)
        self._ready()
        auto = self.fallback != "never" and self.src.in_memory
        clock, t_clock = time.thread_time(), self.t  # CPU time: waiting for a busy CPU is not the engine's cost
        while self.t < t_end:
            if self.swept:
                self._sweep_run(min(t_end, self.t + self.block), rstop)
                if self.stopped:
                    break
                if on_block is not None:
                    on_block(self.t)
                if should_stop is not None and self.t < t_end and should_stop():
                    break
                continue
            flushes = self.stats["flushes"]
            dormant = self._has_dormant()
            tau = self.tau if dormant else -math.inf
            blk_end = min(t_end, self.tf + self.block)
            t0 = self.t
            t, R, status, best = K.run_block(self.rows_arr, self.rid, self.an, self.aid, self.am, self.v, self.q, self.C, self.cn2,
                                             self.tf, self.t,
                                             blk_end, self.mc, self.R, tau, self.sel_idx, self.sel_rad, self.m,
                                             self._cnt, self.eval_ratio, rstop)
            self.t, self.R = int(t), int(R)
            self.stats["steps"] += self.t - t0
            if status == 3:  # the best value reached the radius: exact (no dormant row can beat it)
                self.stopped = True
                break
            if status == 1:
                if not dormant:
                    raise RuntimeError("no unchosen rows left")  # k <= n is checked by the caller
                self.flush(hint=float(best))
            elif status == 2 or self.t - self.tf >= self.block:
                self.flush()
            if auto and self.stats["flushes"] > flushes:
                now = time.thread_time()
                if self._should_sweep(now - clock, self.t - t_clock, t_end):
                    self._switch_to_sweep()
                clock, t_clock = now, self.t
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
