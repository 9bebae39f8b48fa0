"""The pass-per-step engine (methods ``plain`` and ``sweep``): one pass over all rows per step, on the
device that holds them (GPU or CPU).

Each step reads the ``n x d`` matrix once (a GEMV in the storage dtype), so its floor is
``n * d * bytes / bandwidth``; store the rows in float16/bfloat16 to halve it. That pass is a *filter*: the
pick is made exactly by :class:`~hf_uniform.engine.exact.ExactPicker`, which re-evaluates in float64, on the
float32 rows, every row the pass's proven error bound cannot separate from the maximum. The selection is the
exact greedy on the float32 rows whatever the storage dtype (float16 storage only makes the candidate sets
larger). ``plain`` and ``sweep`` run this same engine (the names are kept for the CLI, checkpoints and
benchmarks); the greedy loop around it -- start rows, ranks, checkpoints -- is
:func:`hf_uniform.engine.driver.drive`.

Example:
    >>> import numpy as np, torch
    >>> from hf_uniform.engine.driver import drive
    >>> eng = pass_engine(np.eye(3), None, metric="cosine", k=2, device=torch.device("cpu"))
    >>> drive(eng, k=2, starts=[0]).indices
    [0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .distance import point_distances, shard_rows, stream_chunks
from .exact import ExactPicker
from .store import unit_rows


class PassEngine:
    """Greedy steps by full passes: the filter min-distances ``min_dist`` of this shard's rows (``-inf`` once
    chosen) and an :class:`~hf_uniform.engine.exact.ExactPicker` that decides each pick exactly.

    Implements :class:`hf_uniform.engine.driver.Engine`. ``nearest=True`` makes :meth:`best` return the
    *nearest* unchosen row (the min-min baseline, :func:`hf_uniform.baselines.minmin_select`).

    Args:
        rows: prepared rows of this shard on the device, in the storage dtype (or ``None`` with ``chunks``).
        chunks: callable yielding ``(offset, prepared rows)`` blocks, for sources too large to hold.
        n: rows in this shard.
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk: rows per distance block (bounds the temporaries; results do not depend on it).
        picker: the exact picker of this shard.
        storage: the storage dtype of the pass.
        device: where ``min_dist`` and the pass live.
    """

    def __init__(self, rows: torch.Tensor | None, chunks: Callable[[], Iterator[tuple[int, torch.Tensor]]] | None,
                 n: int, metric: str, chunk: int, picker: ExactPicker, storage: torch.dtype,
                 device: torch.device, *, nearest: bool = False, rinv: torch.Tensor | None = None):
        self.rows, self.chunks, self.n, self.d, self.metric = rows, chunks, int(n), picker.d, metric
        self.rinv = rinv  # cosine over raw rows: 1/|x| per row (None: the filter rows are unit rows)
        self.chunk = max(1, int(chunk))
        self.picker, self.storage, self.dev = picker, storage, device
        self.objective = "min" if nearest else "max"
        self.min_dist = torch.full((self.n,), math.inf, dtype=torch.float32, device=device)

    def _distances(self, centre: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return torch.cat([point_distances(b, centre, self.metric) for _, b in self.chunks()])
        ri = self.rinv
        if self.chunk >= self.n:
            return point_distances(self.rows, centre, self.metric, ri)
        return torch.cat([point_distances(self.rows[i:i + self.chunk], centre, self.metric,
                                          None if ri is None else ri[i:i + self.chunk])
                          for i in range(0, self.n, self.chunk)])

    def vector(self, local: int) -> np.ndarray:
        """The prepared float32 vector of local row ``local`` (exact, whatever the storage dtype)."""
        if self.picker.exact_rows is not None:
            return self.picker.exact_rows[local].cpu().numpy().copy()
        return np.asarray(self.picker.fetch(np.array([local], dtype=np.int64))[0], dtype=np.float32)

    def value_of(self, local: int) -> float:
        """Exact min-distance of local row ``local`` to the centres so far (``-inf`` once chosen)."""
        return self.picker.value(local)

    def best(self) -> tuple[float, int]:
        """``(exact value, local row)`` of the farthest (``nearest=True``: nearest) unchosen row."""
        return self.picker.pick(self.min_dist, self.objective)

    def add(self, vec: np.ndarray, local: int, radius: float) -> None:
        """Add a centre: one pass folds its distances into ``min_dist`` (``local`` is -1 when another
        shard owns the row)."""
        v32 = np.asarray(vec.cpu() if isinstance(vec, torch.Tensor) else vec, dtype=np.float32)
        cf = unit_rows(v32[None, :])[0] if self.metric == "cosine" else v32  # cosine filters: unit centre
        centre = torch.from_numpy(cf).to(device=self.dev, dtype=self.storage)
        torch.minimum(self.min_dist, self._distances(centre), out=self.min_dist)
        self.picker.add(v32)
        if local >= 0:
            self.min_dist[local] = -math.inf
            self.picker.mark_chosen(local)

    def exclude(self, local: np.ndarray) -> None:
        """Never pick these local rows (group quotas); they are not centres."""
        ids = torch.from_numpy(np.asarray(local, dtype=np.int64)).to(self.dev)
        self.min_dist[ids] = -math.inf
        self.picker.E[ids if self.picker.backend == "torch" else np.asarray(local, dtype=np.int64)] = -math.inf

    def coverage(self) -> float:
        """Largest exact min-distance over this shard's unchosen rows; ``-inf`` when none is left."""
        return self.picker.pick(self.min_dist, "max")[0]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Checkpoint state: the filter min-distances (exact values are rebuilt on demand after a resume)."""
        return {"m": self.min_dist.cpu().numpy(), "ep": np.full(self.n, self.picker.t, dtype=np.int64)}

    def load_state(self, m: np.ndarray, ep: np.ndarray, centres: np.ndarray, local_rows: np.ndarray,
                   radii: np.ndarray) -> None:
        """Restore :meth:`state_dict` of a run that had chosen ``centres`` (prepared float32 vectors)."""
        if m.shape != (self.n,):
            raise ValueError("checkpoint state does not fit this shard")
        self.min_dist = torch.from_numpy(np.asarray(m, dtype=np.float32)).to(self.dev)
        for v in centres:
            self.picker.add(v)
        for local in np.asarray(local_rows).tolist():
            self.picker.mark_chosen(int(local))


def pass_engine(embeddings: Any, stream: Any, *, metric: str, k: int, device: torch.device,
                dtype: torch.dtype = torch.float32, lo: int = 0, hi: int | None = None,
                chunk_size: int | None = None, nearest: bool = False, backend: str | None = None) -> PassEngine:
    """A :class:`PassEngine` over rows ``lo:hi`` of ``embeddings`` (or over the streamed source ``stream``).

    The exact picker gets the float32 rows when the pass stores float32, else fetches and prepares rows
    from the source (streamed or reduced-precision storage); on accelerators a float32 copy stays on the
    device too. ``backend`` picks the exact picker's kernel (``"numba"`` or ``"torch"``; default by device).

    Example:
        >>> pass_engine(np.eye(4), None, metric="euclidean", k=2, device=torch.device("cpu"), lo=1).n
        3
    """
    from .exact import check_storage
    from .store import prepare_rows, shape_of, take_rows

    n_all, d = shape_of(embeddings)
    hi = n_all if hi is None else hi
    n_local = hi - lo
    check_storage(dtype, metric)
    cos = metric == "cosine"
    # cosine filter rows: raw float32 rows scaled by 1/|x| in memory (one copy, exact too), unit rows when
    # streamed or stored in reduced precision (values within range whatever the scale of the input)
    raw_filter = cos and stream is None and dtype == torch.float32
    if stream is not None:
        fetch = stream.rows
    else:
        def fetch(ids: np.ndarray) -> np.ndarray:
            return prepare_rows(take_rows(embeddings, np.asarray(ids, dtype=np.int64) + lo), metric)
    xmax, absmax, rinv, nmin = None, 0.0, None, 1.0
    if metric == "euclidean" and stream is not None:
        xmax = 0.0
        for _, raw in stream.raw_chunks():
            x = prepare_rows(raw, metric).astype(np.float64)
            xmax = max(xmax, float(np.sqrt(np.einsum("ij,ij->i", x, x).max())))
            absmax = max(absmax, float(np.abs(x).max(initial=0.0)))
    if metric == "euclidean" and dtype == torch.float16:  # float16 saturates to inf beyond 65504: refuse first
        if stream is None:
            step = max(1, (1 << 20) // max(1, d))
            absmax = max(float(np.abs(fetch(np.arange(a, min(n_local, a + step)))).max(initial=0.0))
                         for a in range(0, n_local, step))
        check_storage(dtype, metric, absmax)
    rows = None if stream is not None else shard_rows(embeddings, metric, device, dtype, lo, hi,
                                                      unit=cos and not raw_filter)
    chunks = stream_chunks(stream, metric, device, dtype, unit=cos) if stream is not None else None
    if chunk_size is None:  # euclidean differences need a (rows, d) temporary: bound it
        chunk_size = n_local if cos else max(1, (1 << 24) // max(1, d))
    if raw_filter:
        nrm = torch.sqrt(_sumsq64(rows))
        nmin = float(nrm.min())
        rinv = (1.0 / nrm).float()
    exact = rows  # float32 storage rows are the exact rows (cosine: raw_filter); else the picker fetches
    if rows is not None and rows.dtype != torch.float32 and device.type != "cpu":  # accelerators: keep the
        exact = shard_rows(embeddings, metric, device, torch.float32, lo, hi)  # exact rows on the device too
    if device.type == "cuda":  # the bounds assume float32 accumulation in reduced-precision GEMVs
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    picker = ExactPicker(exact, n_local, d, metric, k, fetch=fetch, row_norm_max=xmax, storage=dtype, device=device,
                         row_norm_min=nmin, backend=backend)
    return PassEngine(rows, chunks, n_local, metric, chunk_size, picker, dtype, device, nearest=nearest, rinv=rinv)


def _sumsq64(rows: torch.Tensor) -> torch.Tensor:
    """float64 squared norms of the rows, blockwise (bounded temporaries)."""
    out = torch.empty(rows.shape[0], dtype=torch.float64, device=rows.device)
    step = max(1, (1 << 19) // max(1, rows.shape[1]))  # 4 MB float64 temporaries
    for a in range(0, rows.shape[0], step):
        blk = rows[a:a + step].double()
        out[a:a + step] = (blk * blk).sum(dim=1)
    return out


__all__ = ["PassEngine", "pass_engine"]
