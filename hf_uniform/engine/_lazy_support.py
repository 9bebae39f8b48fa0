"""Parts of the lazy engine (:mod:`hf_uniform.engine.lazy`): CPU capabilities and GEMM threads, the
``max_memory`` split, and the exact full-sweep fallback for data where pruning stops paying.

Example:
    >>> memory_plan(1000, 8, 10, 10**9)["stream"]
    False
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from . import _kernels as K

logger = logging.getLogger("hf_uniform.engine.lazy")


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


#: the bfloat16 filter is used from these sizes on (CPUs with native bf16 dot products only): measured by
#: ``benchmarks/filter_bench.py`` on an AMX CPU (results/filter_bench.json; RESULTS.md section 0b) -- below
#: them the float32 filter was as fast or faster (d = 128: bf16 1.35-1.42x slower at k = 300, equal at k = 5000)
BF16_MIN_DIMS = 192
BF16_MIN_CENTRES = 1000


def default_filter_dtype(d: int | None = None, k: int | None = None) -> torch.dtype:
    """The lazy engine's GEMM filter by a measured cost model: bfloat16 on CPUs with native bf16 dot products
    (AVX512-BF16 / AMX) for ``d >= BF16_MIN_DIMS`` dimensions and ``k >= BF16_MIN_CENTRES`` centres, where it
    was measured faster in memory; float32 elsewhere (and when ``d``/``k`` are not given; streamed runs use
    float32 by default, see :func:`memory_plan`). ``HF_UNIFORM_FILTER_DTYPE``
    (``float32`` or ``bfloat16``) overrides. The selection does not depend on it.

    Example:
        >>> default_filter_dtype(128, 300)
        torch.float32
    """
    env = os.environ.get("HF_UNIFORM_FILTER_DTYPE")
    if env:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[env]
    if d is None or k is None or d < BF16_MIN_DIMS or k < BF16_MIN_CENTRES:
        return torch.float32
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


#: bytes per row of the lazy engine's per-row state (m, ep, pos_of, dormant runs) with its transient copies and the
#: allocator's slack (measured: 1e6 rows at 100 MB peaked at 111 MB with 80, 74 MB with 96)
STATE_BYTES_PER_ROW = 96
#: memory oneDNN keeps for the bfloat16 GEMM kernels of the lazy engine's padded shapes (6 shapes, ~0.7 MB
#: each, measured on an AMX CPU; every new shape would add as much, hence the padding)
GEMM_KERNEL_BYTES = 6 * 800_000


def memory_plan(n: int, d: int, k: int, budget: int, filter_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Split ``budget`` bytes for a lazy run over ``n`` rows of ``d`` dims with ``k`` centres.

    In memory when the prepared float32 rows, the state and one GEMM chunk's buffers (the bfloat16 filter
    rounds each chunk when it is gathered: no copy of all rows) fit with room for the working set; otherwise
    streamed, with the per-row state, centres, GEMM buffers and (bfloat16) oneDNN's kernels counted first and the rest
    shared by the active rows, wake batches and row reads (``max_active``, ``chunk_rows``, ``read_rows``).
    Streamed, the default filter is float32 (the bfloat16 one measured slower when rows are read and rounded
    per flush: ``benchmarks/memory_bench.py``); a budget too small for an explicit bfloat16 filter's extras
    (its GEMM kernels and padded buffers) gets a float32 plan (``"filter_dtype"`` in the result; the selection is the same). Raises a one-line
    :class:`~hf_uniform.errors.UniformError` naming the smallest workable budget when the budget cannot hold
    the mandatory per-row state.

    Example:
        >>> memory_plan(100_000, 128, 300, 16 * 10**6, torch.float32)["stream"]
        True
        >>> memory_plan(100_000, 128, 300, 2 * 10**6, torch.float32)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: max_memory=2.0MB is below what the lazy engine needs for 100000 rows of 128 dims (per-row state 96 B/row, centres, buffers): at least 10.3MB; raise max_memory or pass fewer rows
    """
    from ..errors import UniformError

    fdt = filter_dtype or default_filter_dtype(d, k)
    bf16 = fdt == torch.bfloat16
    fb = 2 if bf16 else 4
    filt = d * fb if bf16 else 0  # streamed active rows: their bf16 copy (float32 filter: the rows themselves)
    state = STATE_BYTES_PER_ROW * n
    centres = (k + 1) * d * 4 + (k + 1 + (512 if bf16 else 0)) * d * fb + 40 * (k + 2)
    kernels = GEMM_KERNEL_BYTES if bf16 else 0  # oneDNN's kernels for the padded bf16 GEMM shapes
    # in memory: prepared rows, squared norms (+ residual norms, bf16), per-row state; one GEMM chunk gathered
    # (float32, + its bf16 rounding) and one GEMM output (2048 x 512 at most)
    chunk = 2048 * (d * 4 + d * fb * bf16 + 512 * fb)
    in_memory = n * (d * 4 + STATE_BYTES_PER_ROW + 8 + 8 * bf16) + centres + chunk + kernels + 8 * 2**20
    if in_memory <= budget:
        return {"stream": False}
    if bf16 and filter_dtype is None and not os.environ.get("HF_UNIFORM_FILTER_DTYPE"):
        # streamed, the default filter is float32 (bf16 measured slower there); the variable is an explicit choice
        return {**memory_plan(n, d, k, budget, torch.float32), "filter_dtype": torch.float32}
    row = d * 4 + filt + 48  # an active row: float32 copy, filter copy, bounds and bookkeeping
    fixed = state + centres + kernels
    per_chunk_row = 512 * fb + d * fb * bf16  # GEMM output row, padded bf16 row
    smallest = fixed + 64 * per_chunk_row + 8 * 64 * row  # a 64-row GEMM chunk and working set
    if budget < smallest and bf16:  # the bf16 extras do not fit: the float32 filter (same selection) may
        plan = memory_plan(n, d, k, budget, torch.float32)
        return {**plan, "filter_dtype": torch.float32}
    if budget < smallest:
        raise UniformError(f"max_memory={budget / 1e6:.1f}MB is below what the lazy engine needs for {n} rows of {d} "
                           f"dims (per-row state {STATE_BYTES_PER_ROW} B/row, centres, buffers): at least "
                           f"{smallest / 1e6:.1f}MB; raise max_memory or pass fewer rows")
    work = int(0.9 * budget) - fixed  # 10 % of the budget left to the allocator's slack (measured variance)
    chunk_rows = int(min(2048, max(64, work // 8 // per_chunk_row)))
    work -= chunk_rows * per_chunk_row
    max_active = int(max(64, work // (8 * row)))
    return {"stream": True, "max_active": max_active, "chunk_rows": chunk_rows,
            "read_rows": int(max(64, max_active // 4))}


@lru_cache(maxsize=1)
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``; a no-op elsewhere).

    glibc raises its mmap threshold after each free of an mmapped block (up to 32 MB); arrays of a few MB then
    come from the heap, whose free space stays resident: measured, a streamed 3e5 x 128 run at 32 MB peaked
    at 32-36 MiB that way and at 20-23 MiB with the free pages returned. Streamed runs with ``max_memory``
    call this after every flush. Returns whether it ran.

    Example:
        >>> isinstance(trim_heap(), bool)
        True
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class Dormancy:
    """Mixin of :class:`~hf_uniform.engine.lazy.LazyEngine`: the dormancy threshold and the dormant runs
    (only performance depends on them, never the result)."""

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

    def _raise_to_cap(self, tau: float, hint: float | None) -> float:
        """Raise ``tau`` so that at most ``wake_cap`` rows are active or woken (by bound, largest first);
        an early flush never goes above the walk's best ``hint`` (those rows may beat it)."""
        cap = self.wake_cap
        heads = [self.v[self.v >= tau]] if tau > -math.inf else [self.v]
        total = heads[0].size
        for ids, keys, ptr in self.runs:
            end = int(np.searchsorted(keys, -tau, side="right")) if tau > -math.inf else ids.size
            total += max(end - ptr, 0)
            heads.append(-keys[ptr:min(end, ptr + cap)])
        if total <= cap:
            return tau
        vals = np.concatenate(heads)
        del heads
        vals.partition(vals.size - cap)  # in place: no second copy of the bounds
        cut = float(vals[vals.size - cap])
        if hint is not None and hint > -math.inf:
            cut = min(cut, hint)
        return max(tau, cut) if math.isfinite(cut) else tau  # +inf keys: not yet computed (start-up)

    def _make_run(self, ids: np.ndarray) -> list[Any]:
        """A dormant run of ``ids`` (stored as ``self._idt``), sorted by key ``-m`` (in place where it can:
        the transient is one key copy and the sort's index array)."""
        neg = self.m[ids]
        np.negative(neg, out=neg)
        so = np.argsort(neg)  # the order among equal keys does not matter: runs are only cut by key
        neg = neg[so]
        ids = ids[so].astype(self._idt, copy=False)
        return [ids, neg, 0]


class SweepFallback:
    """Mixin of :class:`~hf_uniform.engine.lazy.LazyEngine`: switch an in-memory single-process run to exact
    full sweeps (:func:`~hf_uniform.engine._kernels.sweep_steps`, the same exact kernel, so the same picks)
    when the measured CPU cost of a lazy step exceeds twice the predicted cost of a sweep step, including the
    one-off catch-up of the dormant rows. ``fallback="always"`` forces the switch at the first flush (tests).
    """

    # ------------------------------------------------------------------ fallback: exact full sweeps
    def _should_sweep(self, secs: float, steps: int, t_end: int) -> bool:
        """Whether full sweeps would finish the remaining steps sooner than lazy steps at the measured rate,
        including the one-off catch-up of the dormant rows (flat or low-dimensional data)."""
        if self.fallback == "always":
            return True
        if steps < self.block // 4 or self.t < 2 * self.block or t_end - self.t < 4 * self.block:
            return False  # start-up (waking the pool) costs more than steady state; too little left to gain
        if not hasattr(self, "_row_s"):
            self._row_s = self._sweep_row_seconds()
        live = self.m > -np.inf
        n_live = int(live.sum())
        lazy_step, sweep_step = secs / steps, n_live * self._row_s
        if lazy_step < 2.0 * sweep_step:
            return False
        catch = (self.t * n_live - int(self.ep[live].sum())) * self._row_s
        return (t_end - self.t) * (lazy_step - sweep_step) > 2.0 * catch

    def _rinv_of(self) -> np.ndarray:
        if getattr(self, "_rinv", None) is None:
            self._rinv = 1.0 / np.sqrt(self.Xn2) if self.mc == K.COSINE else np.zeros(1)
        return self._rinv

    def _sweep_row_seconds(self) -> float:
        """Measured seconds per row of one sweep step (best of 3 on up to 8192 live rows)."""
        live = np.flatnonzero(self.m > -np.inf)
        sample = live[::max(1, live.size // 8192)][:8192]
        best = math.inf
        for _ in range(3):
            t0 = time.thread_time()
            K.sweep_probe(self.src.x, self.Xn2, self._rinv_of(), sample, self.C, self.cn2, max(self.t - 1, 0), self.mc)
            best = min(best, time.thread_time() - t0)
        return best / max(1, sample.size)

    def _switch_to_sweep(self) -> None:
        """Bring every row exactly up to date (scalar kernel) and continue with full sweeps."""
        if self.aid.size:
            self.m[self.aid] = self.v
            self.ep[self.aid] = self.tf + self.q
        self._set_active(np.empty(0, self._idt), np.empty((0, self.d), np.float32))
        self.runs = []
        live = np.flatnonzero(self.m > -np.inf)
        pairs = K.catch_up(self.src.x, self.Xn2, live, self.m, self.ep, self.C, self.cn2, self.t, self.mc)
        self._live, self.swept, self.tf, self.tau = live, True, self.t, -math.inf
        self._rinv_of()
        self.stats["path"] = f"lazy, then full sweeps from step {self.t}"
        self.stats["catch_up_pairs"] = int(pairs)
        logger.debug("lazy engine: pruning stopped paying at step %d; full sweeps from here", self.t)

    def _sweep_run(self, t_end: int, rstop: float = -math.inf) -> None:
        live = self._live
        if live.size > 256 and 4 * int((self.m[live] == -np.inf).sum()) > live.size:
            live = self._live = live[self.m[live] > -np.inf]
        t, stopped = K.sweep_steps(self.src.x, self.Xn2, self._rinv, live, self.m, self.C, self.cn2, self.t, t_end,
                                   self.mc, self.sel_idx, self.sel_rad, rstop)
        t = int(t)
        self.stats["steps"] += t - self.t
        self.t = self.tf = t
        self.ep[live] = t
        self.stopped = bool(stopped)
        if t < t_end and not self.stopped:
            raise RuntimeError("no unchosen rows left")  # k <= n is checked by the caller


class CheckpointState:
    """Mixin of :class:`~hf_uniform.engine.lazy.LazyEngine`: its exact, compact checkpoint state."""

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
        self.swept, self._live, self.stats["path"] = False, np.empty(0, np.int64), "lazy"
        if t:
            self._prep_centres(0, t)
        self._set_active(np.empty(0, self._idt), np.empty((0, self.d), np.float32))
        live = np.flatnonzero(self.m > -np.inf).astype(self._idt)
        self.runs = [self._make_run(live)]
        self.tau = math.inf


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    """Concatenate ``parts`` as ``dtype`` and empty the list (its pieces are freed before the caller goes on)."""
    out = np.concatenate(parts, dtype=dtype, casting="same_kind") if parts else np.empty(0, dtype)
    parts.clear()
    return out


class Waking:
    """The lazy engine's wake-up of dormant rows at a flush: wake, trim the kept set to its cap, settle."""

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
            step = min(step, max(64, self.max_active // 2))
        ew = self.ep[wake]
        if ew.size and ew.min() != ew.max():  # (start-up: all rows at epoch 0, no sort, no index array)
            wake = wake[np.argsort(ew, kind="stable")]
        del ew
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
                    q = np.clip(e[:npart] - cs, 0, ce - cs).astype(np.int32)
                    q[~awake[:npart]] = ce - cs  # asleep again: skip
                    vq = v[:npart]
                    self._refresh(rows, rid[:npart], None if rows_f is None else rows_f[:npart],
                                  None if res is None else res[:npart], rn2, vq, cs, ce, q=q)
                    moved = awake[:npart]
                    e[:npart][moved] = ce
                    low = moved & (vq < tau)
                    if low.any():
                        awake[:npart][low] = False
                        n_dead += int(low.sum())
                        if 2 * n_dead > int(awake.size):  # compact: drop sleepers from the GEMMs
                            self._settle(ids[~awake], v[~awake], e[~awake], sleep)
                            ids, v, e, rid = ids[awake], v[awake], e[awake], rid[awake]
                            res = None if res is None else res[awake]
                            if rows_f is not None:
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
            sleep.append(ids[~hold].astype(self._idt))
            if trim is not None and sum(k.size for k in kept_ids) > 2 * trim:
                self._trim_kept(trim, hint, kept_ids, kept_rows, sleep)

    def _trim_kept(self, cap: int, hint: float | None, kept_ids: list, kept_rows: list | None, sleep: list) -> None:
        """Streamed sources: keep only the ``cap`` largest exact values among the rows held so far (never
        one that could beat an early flush's ``hint``); the rest sleep, and the cut raises the dormancy
        threshold (recorded in ``_wake_cut``, applied by :meth:`flush`) so that they are woken again when
        the radius approaches them."""
        ids = _cat(kept_ids, self._idt)
        vals = self.m[ids]
        kth = ids.size - cap
        cut = float(np.partition(vals, kth)[kth])
        if kept_rows is None and hint is not None and hint > -math.inf:  # in memory: as the cap in flush()
            cut = min(cut, hint)
        hold = vals >= cut
        sleep.append(ids[~hold].astype(self._idt))
        kept_ids[:] = [ids[hold]]
        if kept_rows is not None:
            rows = np.concatenate(kept_rows)
            kept_rows[:] = [rows[hold]]
        self._wake_cut = max(self._wake_cut, cut)

    def _settle(self, ids: np.ndarray, v: np.ndarray, e: np.ndarray, sleep: list) -> None:
        """Record rows going back to sleep: exact value ``v`` over the first ``e`` centres."""
        if ids.size:
            self.m[ids] = v
            self.ep[ids] = e
            sleep.append(ids.astype(self._idt))

    # ------------------------------------------------------------------ steps
