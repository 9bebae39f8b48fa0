"""Exact greedy max-min selection (farthest-first traversal, k-center greedy).

The core is :func:`maxmin_select`, a pure function on an ``(n, d)`` array. It starts from a seeded random
row (as in the paper) or from given rows, then repeatedly adds the row whose minimum distance to the rows
already chosen is largest. Everything else in the package (the ``datasets`` adapter, the CLI, distributed and
resumable runs) wraps this function and never re-implements the greedy rule.

Definitions used everywhere:

* ``metric="cosine"``: ``d(x, y) = 1 - <x, y> / (|x| |y|)``, in ``[0, 2]``.
* ``metric="euclidean"``: ``d(x, y) = |x - y|``.
* Ties are broken towards the lowest row index, so results are deterministic.
* ``Selection.min_distances[j]`` is the distance of the ``j``-th chosen row to the rows chosen before it
  (``inf`` for the first). Hence ``h`` (the minimum pairwise distance of the subset) is
  ``min(min_distances[1:])`` and the first ``k'`` rows of a run are the run for ``k'`` (greedy prefix).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import UniformError

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class Selection:
    """The result of a greedy max-min run.

    Attributes:
        indices: row indices in selection order (``int64``).
        min_distances: distance of each chosen row to the rows chosen before it, in selection order
            (``float64``; ``inf`` for the first row). This is the radius trace.
        coverage_radius: largest distance from any row of the pool to its nearest chosen row (the
            k-center objective), ``0.0`` when every row is chosen.
        metric: ``"cosine"`` or ``"euclidean"``.
        n: number of rows in the pool.
        info: engine details (method, device, dtype, world size, ...), for provenance.

    Example:
        >>> import numpy as np
        >>> sel = maxmin_select(np.eye(3, dtype=np.float32), 2, start=[0])
        >>> sel.indices.tolist(), round(sel.h, 6)
        ([0, 1], 1.0)
    """

    indices: np.ndarray
    min_distances: np.ndarray
    coverage_radius: float
    metric: str
    n: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of chosen rows."""
        return int(self.indices.shape[0])

    @property
    def h(self) -> float:
        """Minimum pairwise distance of the chosen rows (``inf`` when fewer than two)."""
        return float(self.min_distances[1:].min()) if self.k > 1 else math.inf

    def prefix(self, k: int) -> Selection:
        """The selection for a smaller budget ``k`` (the greedy order is a prefix).

        The coverage radius of a prefix is the min-distance of the next row that would be picked.

        Example:
            >>> import numpy as np
            >>> sel = maxmin_select(np.random.default_rng(0).normal(size=(50, 4)), 10)
            >>> sel.prefix(5).indices.tolist() == sel.indices[:5].tolist()
            True
        """
        if not 0 < k <= self.k:
            raise UniformError(f"prefix size must be in [1, {self.k}], got {k}")
        cov = self.coverage_radius if k == self.k else float(self.min_distances[k])
        return Selection(self.indices[:k].copy(), self.min_distances[:k].copy(), cov, self.metric, self.n,
                         dict(self.info))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: parameters, h, coverage and the radius trace.

        Example:
            >>> import numpy as np
            >>> maxmin_select(np.eye(3, dtype=np.float32), 2, start=[0]).to_dict()["k"]
            2
        """
        finite = [None if not math.isfinite(v) else float(v) for v in self.min_distances.tolist()]
        return {
            "metric": self.metric,
            "n": self.n,
            "k": self.k,
            "h": None if not math.isfinite(self.h) else self.h,
            "coverage_radius": self.coverage_radius,
            "duplicates_selected": bool(self.k > 1 and self.h == 0.0),
            "indices": self.indices.tolist(),
            "min_distances": finite,
            "engine": dict(self.info),
        }


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick ``cuda`` when available and ``device`` is ``None``; otherwise use the given device.

    Example:
        >>> resolve_device("cpu").type
        'cpu'
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_embeddings(
    embeddings: np.ndarray | torch.Tensor,
    metric: str = "cosine",
) -> None:
    """Raise :class:`UniformError` if ``embeddings`` cannot be used for selection.

    The rows are checked as the engine sees them -- cast to float32 and, for cosine, normalised -- chunk by
    chunk (no full-size temporaries): finite values within the float32 range, and under cosine no zero rows
    (their direction is undefined; drop them with ``drop_zero_vectors=True`` / ``--drop-zero-vectors``) and
    no norms that are subnormal or overflow in float32 (see
    :func:`hf_uniform.engine.store.check_chunk`).

    Example:
        >>> import numpy as np
        >>> check_embeddings(np.ones((2, 3)))
        >>> check_embeddings(np.zeros((2, 3)))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: 2 zero vector(s) under the cosine metric at rows [0, 1]; drop them with drop_zero_vectors=True (CLI: --drop-zero-vectors) or use metric='euclidean'
    """
    from .engine.store import check_chunk, slice_rows

    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    shape = tuple(embeddings.shape)
    if len(shape) != 2:
        raise UniformError(f"embeddings must be a 2-D array (rows, dims), got shape {shape}")
    if shape[0] == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if shape[1] == 0:
        raise UniformError("embeddings have zero dimensions; check the embedding column")
    if isinstance(embeddings, torch.Tensor) and (embeddings.is_complex() or embeddings.dtype == torch.bool):
        raise UniformError(f"embeddings must be real numbers, got dtype {embeddings.dtype}")
    if isinstance(embeddings, np.ndarray) and embeddings.dtype == np.bool_:
        raise UniformError(f"embeddings must be real numbers, got dtype {embeddings.dtype}")
    step = max(1, (1 << 22) // max(1, shape[1]))
    for a in range(0, shape[0], step):
        with warnings.catch_warnings():  # read-only memmaps: only read here
            warnings.simplefilter("ignore", UserWarning)
            check_chunk(slice_rows(embeddings, a, min(shape[0], a + step)), metric, a)


_CAST_LOGGED: set[str] = set()


def _log_cast(embeddings: Any) -> None:
    """Say once per dtype that wider input is cast to the float32 rows the selection is exact on."""
    dt = str(getattr(embeddings, "dtype", ""))
    if dt in ("float64", "torch.float64", "double") and dt not in _CAST_LOGGED:
        _CAST_LOGGED.add(dt)
        logger.info("embeddings are %s: selection runs (exactly) on their float32 rounding", dt)


def check_k(k: int | float, n: int) -> int:
    """Turn ``k`` (an int, or a fraction in (0, 1)) into a row count in ``[1, n]``.

    Example:
        >>> check_k(0.5, 10), check_k(3, 10)
        (5, 3)
    """
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise UniformError(f"k must be an int or a fraction in (0, 1), got {k!r}")
    if isinstance(k, (float, np.floating)) and not float(k).is_integer():
        if not 0 < k < 1:
            raise UniformError(f"fractional k must lie in (0, 1), got {k}")
        return max(1, int(round(float(k) * n)))
    k = int(k)
    if k <= 0:
        raise UniformError(f"k must be at least 1, got {k}")
    if k > n:
        raise UniformError(f"k={k} exceeds the number of rows n={n}; pass k <= {n}")
    return k


def _as_rows(embeddings: np.ndarray | torch.Tensor, metric: str, device: torch.device,
             dtype: torch.dtype) -> torch.Tensor:
    """Prepared rows on ``device`` in ``dtype``: the float32 rows of :func:`~hf_uniform.engine.store.prepare_rows`
    (unit-normalised with a float64 norm for cosine) -- the rows every engine selects on -- then cast."""
    from .engine.store import prepare_rows

    with warnings.catch_warnings():  # read-only memmaps: copied below
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(embeddings, torch.Tensor) and embeddings.device.type != "cpu":
            x = embeddings.to(torch.float32)
            if metric == "cosine":
                nrm = torch.sqrt((x.double() ** 2).sum(dim=1, keepdim=True)).float()
                x = x / nrm
            return x.to(device=device, dtype=dtype).contiguous()
        arr = embeddings.numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    x = torch.from_numpy(prepare_rows(arr, metric))
    return x.to(device=device, dtype=dtype).contiguous()


def point_distances(rows: torch.Tensor, centre: torch.Tensor, metric: str) -> torch.Tensor:
    """Filter distances (float32) from each of ``rows`` to one ``centre``; rows prepared by the engine.

    For cosine the rows are unit vectors and the distance is ``1 - <x, c>``; for euclidean it is computed
    from differences. These values carry the storage dtype's and the GEMV's rounding; the ``plain`` and
    ``sweep`` engines use them only as a filter with a proven error bound and decide every pick with exact
    float64 re-evaluations (:mod:`hf_uniform.engine.exact`).

    Example:
        >>> import torch
        >>> point_distances(torch.eye(2), torch.tensor([1.0, 0.0]), "cosine").tolist()
        [0.0, 1.0]
    """
    if metric == "cosine":
        return (1.0 - (rows @ centre).float()).clamp_(min=0.0)
    return torch.linalg.vector_norm((rows - centre).float(), dim=1)


def _start_rows(n: int, k: int, start: int | Sequence[int] | None, seed: int | None) -> list[int]:
    if start is None:
        return [int(np.random.default_rng(seed).integers(n))]
    items = [start] if isinstance(start, (int, np.integer, str, float, np.floating)) else list(start)
    if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) for s in items):
        raise UniformError(f"start must be a row index (an int) or a list of them, got {start!r}")
    starts = [int(s) for s in items]
    if not starts:
        raise UniformError("start is empty; pass at least one row index or None for a seeded random start")
    bad = [s for s in starts if not 0 <= s < n]
    if bad:
        raise UniformError(f"start rows {bad[:10]} are out of range for n={n}")
    if len(set(starts)) != len(starts):
        raise UniformError("start rows contain repeats; pass each row once")
    if len(starts) > k:
        raise UniformError(f"{len(starts)} start rows exceed k={k}; raise k or pass fewer start rows")
    return starts


class MaxMinState:
    """The state of a greedy run: chosen rows, their radii, and every row's min-distance to the chosen set.

    The engine advances it one row at a time; :mod:`hf_uniform.checkpoint` saves and restores it. It is
    exposed so adapters (distributed, resumable) share one implementation of the greedy step.

    Example:
        >>> import torch
        >>> st = MaxMinState(3)
        >>> st.min_dist.tolist()
        [inf, inf, inf]
    """

    def __init__(self, n: int, device: torch.device | str = "cpu"):
        self.min_dist = torch.full((n,), math.inf, dtype=torch.float32, device=device)
        self.indices: list[int] = []
        self.radii: list[float] = []

    def add(self, row: int, radius: float, dists: torch.Tensor) -> None:
        """Record ``row`` as chosen at ``radius`` and fold its distances ``dists`` into ``min_dist``."""
        torch.minimum(self.min_dist, dists, out=self.min_dist)
        self.min_dist[row] = -math.inf
        self.indices.append(row)
        self.radii.append(radius)


METHODS = ("auto", "plain", "sweep", "lazy")


class _PlainEngine:
    """The reference loop as a step engine: one fast distance pass per chosen row (the filter, state in a
    MaxMinState), exact picks by :class:`~hf_uniform.engine.exact.ExactPicker`."""

    def __init__(self, rows: torch.Tensor | None, chunks: Any, n_local: int, metric: str, step: int,
                 objective: str, st: MaxMinState, picker: Any, storage: torch.dtype):
        self.rows, self.chunks, self.n, self.metric, self.step = rows, chunks, n_local, metric, step
        self.objective = objective
        self.st = st
        self.picker = picker
        self.storage = storage

    def distances(self, centre: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return torch.cat([point_distances(b, centre, self.metric) for _, b in self.chunks()])
        if self.step >= self.n:
            return point_distances(self.rows, centre, self.metric)
        return torch.cat([point_distances(self.rows[i:i + self.step], centre, self.metric)
                          for i in range(0, self.n, self.step)])

    def vector(self, local: int) -> np.ndarray:
        """The prepared float32 vector of local row ``local`` (exact, whatever the storage dtype)."""
        if self.picker.exact_rows is not None:
            return self.picker.exact_rows[local].cpu().numpy().copy()
        return np.asarray(self.picker.fetch(np.array([local], dtype=np.int64))[0], dtype=np.float32)

    def value_of(self, local: int) -> float:
        return self.picker.value(local)

    def best(self) -> tuple[float, int]:
        return self.picker.pick(self.st.min_dist, self.objective)

    def add(self, vec: Any, local: int, radius: float, gidx: int) -> None:
        dev = self.st.min_dist.device
        v32 = np.asarray(vec.cpu() if isinstance(vec, torch.Tensor) else vec, dtype=np.float32)
        centre = torch.from_numpy(v32).to(device=dev, dtype=self.storage)
        torch.minimum(self.st.min_dist, self.distances(centre), out=self.st.min_dist)
        self.picker.add(v32)
        if local >= 0:
            self.st.min_dist[local] = -math.inf
            self.picker.mark_chosen(local)
        self.st.indices.append(int(gidx))
        self.st.radii.append(float(radius))

    def coverage(self) -> float:
        return self.picker.pick(self.st.min_dist, "max")[0]


def _resolve_method(method: str, dev: torch.device, objective: str, state: Any, callback: Any) -> str:
    from .engine import numba_available

    if method not in METHODS:
        raise UniformError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    legacy = state is not None or callback is not None
    if method == "auto":
        if objective == "min" or legacy:
            return "plain"
        if dev.type == "cpu" and numba_available():
            return "lazy"
        return "sweep"
    if method != "plain" and objective == "min":
        raise UniformError(f"objective='min' runs on method='plain' only, got method={method!r}")
    if method != "plain" and legacy:
        raise UniformError("state= and callback= need method='plain'; use checkpoint_dir= for resumable fast runs")
    if method == "lazy":
        if dev.type != "cpu":
            raise UniformError(f"method='lazy' runs on the CPU, got device={dev}; use method='sweep' on accelerators")
        if not numba_available():
            raise UniformError("method='lazy' needs numba; pip install numba (or use method='sweep')")
    return method


def maxmin_select(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float,
    *,
    metric: str = "cosine",
    start: int | Sequence[int] | None = None,
    seed: int | None = 0,
    chunk_size: int | None = None,
    device: str | torch.device | None = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    state: MaxMinState | None = None,
    callback: Any = None,
    objective: str = "max",
    method: str = "auto",
    max_memory: int | str | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = None,
    resume: bool = False,
) -> Selection:
    """Greedy max-min selection of ``k`` rows of ``embeddings`` (farthest-first traversal).

    Every method returns the exact greedy selection on the float32 rows (each pick attains the float64
    maximum of the min-distance array, ties to the lowest row index, duplicates at radius 0); they differ
    in speed. float64 input is cast to float32 first (logged once): the selection is exact on those rows.

    Args:
        embeddings: ``(n, d)`` array, tensor, numpy memmap or Arrow fixed-size-list column.
        k: number of rows, or a fraction in (0, 1) of ``n``.
        metric: ``"cosine"`` (the paper's) or ``"euclidean"``.
        start: row index or indices to start from (in order); ``None`` draws one row with ``seed``.
        seed: seed of the random start row.
        chunk_size: rows per distance block / GEMM (bounds temporary memory); ``None`` picks a default.
            Results do not depend on it.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``/``None`` (CUDA when available).
        dtype: storage dtype of the filter pass of ``plain``/``sweep`` (``torch.float16``/``bfloat16`` halve
            its memory traffic). Every method selects exactly on the float32 rows; the reduced-precision
            pass is only a filter (its error bound widens the set of rows re-checked exactly).
        progress: show a tqdm progress bar.
        state: continue a ``plain`` run from this state (legacy; prefer ``checkpoint_dir``).
        callback: ``plain`` only: called as ``callback(state)`` after each chosen row.
        objective: ``"max"`` adds the farthest row (the paper's uniform selection); ``"min"`` adds the
            nearest unchosen row (the opposite, used by the paper's mixed baseline; ``plain`` only).
        method: ``"auto"`` (default: ``lazy`` on CPUs with numba, ``sweep`` on accelerators, ``plain`` for
            ``objective="min"``), ``"lazy"`` (exact lazy GEMM-batched engine, CPU), ``"sweep"``
            (device-resident full pass per step, no host sync), ``"plain"`` (the reference loop).
        max_memory: bytes or a size such as ``"2GB"``; when the float32 rows (of this rank's shard) exceed it,
            they are streamed in chunks from ``embeddings`` (e.g. a memmap) instead of copied. The result is
            the same.
        checkpoint_dir: save the greedy state here (atomically) so that ``resume=True`` can continue.
        checkpoint_every: steps between checkpoints (default 1000 when no ``checkpoint_seconds``).
        checkpoint_seconds: seconds between checkpoints.
        resume: continue from the newest checkpoint in ``checkpoint_dir`` (start fresh when there is none);
            a checkpoint of a different run (n, d, metric, k, seed/start, method, rows) raises.

    Under ``torch.distributed`` with several ranks each rank handles its shard of the rows and all ranks
    return the same selection as a single process (see :mod:`hf_uniform.distributed`).

    Returns:
        A :class:`Selection`; ``info`` records the method, device, world size and shard sizes.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
        >>> sel = maxmin_select(x, 3, metric="euclidean", start=0)
        >>> sel.indices.tolist(), sel.h
        ([0, 3, 1], 1.0)
    """
    from . import distributed as D
    from .engine.store import StreamSource, check_chunk, parse_bytes, shape_of, slice_rows

    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if objective not in ("max", "min"):
        raise UniformError(f"objective must be 'max' or 'min', got {objective!r}")
    if isinstance(embeddings, (list, tuple)):  # nested Python lists: numbers of one length, or refuse
        try:
            arr = np.asarray(embeddings)
        except (ValueError, TypeError):
            raise UniformError("embeddings are ragged: rows differ in length; pass an (n, d) float array") from None
        if arr.dtype.kind not in "fiu":
            raise UniformError(f"embeddings must be numbers, got {arr.dtype} values (e.g. numbers written as "
                               "strings); pass an (n, d) float array")
        embeddings = arr.astype(np.float64)
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise UniformError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    budget = parse_bytes(max_memory)
    _log_cast(embeddings)
    ctx = D.context()
    rank, world = ctx if ctx is not None else (0, 1)
    if budget is None and ctx is None:
        check_embeddings(embeddings, metric)
    n, d = shape_of(embeddings)
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if d == 0:
        raise UniformError("embeddings have zero dimensions; check the embedding column")
    k = check_k(k, n)
    starts = _start_rows(n, k, start, seed)
    dev = resolve_device(device)
    method = _resolve_method(method, dev, objective, state, callback)
    bounds = D.shard_bounds(n, world)
    lo, hi = bounds[rank]
    n_local = hi - lo
    # the in-memory engines hold a float32 copy of the rows plus ~48 bytes of state per row (and transient
    # copies): stream as soon as that could exceed the budget
    stream = budget is not None and int(1.25 * n_local * (d * 4 + 48)) > budget
    if ctx is not None and state is not None:
        raise UniformError("state= is not supported in distributed runs; use checkpoint_dir=")
    if (budget is not None or ctx is not None) and not stream:
        for a in range(lo, hi, 1 << 16):  # validate this rank's rows (global row numbers in messages)
            check_chunk(np.asarray(slice_rows(embeddings, a, min(hi, a + (1 << 16)))), metric, a)
    # streamed: chunks sized to the budget (a chunk and its float32 / validation temporaries ~ 1/8 of it)
    stream_rows = chunk_size or (max(256, min(65536, budget // (d * 4 * 8))) if budget else 65536)
    src_stream = StreamSource(embeddings, metric, lo, hi, chunk_rows=stream_rows, validate=True) \
        if stream else None
    logger.info("max-min select: method=%s n=%d d=%d k=%d device=%s world=%d%s", method, n, d, k, dev, world,
                " (streamed)" if stream else "")

    ck = None
    if checkpoint_dir is not None:
        from .checkpoint import Checkpointer, fingerprint, rows_hash

        fp = fingerprint(n=n, d=d, metric=metric, k=k, seed=seed, start=starts, method=method, objective=objective,
                         row_hash=rows_hash(embeddings, n), world_size=world, rank=rank)
        ck = Checkpointer(checkpoint_dir, fp, every=checkpoint_every, seconds=checkpoint_seconds, rank=rank,
                          world_size=world)
    elif resume:
        raise UniformError("resume=True needs checkpoint_dir= (the folder the interrupted run saved to)")
    saved = _load_checkpoint(ck, ctx) if (ck is not None and resume) else None
    if ck is not None and saved is None and not resume and ck.steps():
        logger.warning("resume=False: overwriting the checkpoints in %s", checkpoint_dir)

    from tqdm.auto import tqdm

    t_start = 0 if saved is None else saved["step"]
    if state is not None:
        t_start = len(state.indices)
    bar = tqdm(total=k, initial=t_start, desc="max-min select", unit="row", disable=not progress)
    info: dict[str, Any] = {"method": method, "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
                            "seed": seed, "start": starts, "world_size": world,
                            "shard_sizes": [b - a for a, b in bounds], "streamed": bool(stream)}
    if saved is not None:
        info["resumed_from_step"] = saved["step"]
    try:
        if method == "lazy":
            idx, rad, cov = _run_lazy(embeddings, k, starts, metric, chunk_size, src_stream, budget, lo, hi, ctx,
                                      ck, saved, bar, info)
        elif method == "sweep":
            idx, rad, cov = _run_sweep(embeddings, k, starts, metric, chunk_size, src_stream, dev, dtype, lo, hi,
                                       ctx, ck, saved, bar, info)
        else:
            idx, rad, cov = _run_plain(embeddings, k, starts, metric, chunk_size, src_stream, dev, dtype, lo, hi,
                                       ctx, ck, saved, bar, state, callback, objective, info)
    finally:
        bar.close()
    return Selection(
        indices=np.asarray(idx, dtype=np.int64),
        min_distances=np.asarray(rad, dtype=np.float64),
        coverage_radius=max(cov, 0.0) if k < n else 0.0,
        metric=metric,
        n=n,
        info=info,
    )


def _load_checkpoint(ck: Any, ctx: tuple[int, int] | None) -> dict[str, Any] | None:
    """The newest checkpoint every rank has (distributed runs agree on the step first)."""
    if ctx is None:
        return ck.load()
    from . import distributed as D

    mine = ck.steps()
    common = set(mine)
    for other in D.all_gather_ints(mine, width=2):
        common &= set(other)
    if not common:
        if D.any_true(bool(mine)):
            logger.warning("ranks share no checkpoint step; starting over")
        return None
    return ck.load(step=max(common))


def _checkpoint_due(ck: Any, t: int, ctx: tuple[int, int] | None) -> bool:
    if ck is None:
        return False
    if ctx is None or ck.seconds is None:
        return ck.due(t)
    from . import distributed as D  # time-based: ranks must agree

    return t % 64 == 0 and D.any_true(ck.due(t))


def _prepared(embeddings: Any, ids: np.ndarray, metric: str) -> np.ndarray:
    from .engine.store import prepare_rows, shape_of, take_rows

    d = shape_of(embeddings)[1]
    if len(ids) == 0:
        return np.empty((0, d), dtype=np.float32)
    order = np.argsort(ids, kind="stable")
    out = np.empty((len(ids), d), dtype=np.float32)
    out[order] = prepare_rows(take_rows(embeddings, np.asarray(ids)[order]), metric)
    return out


def _run_lazy(embeddings: Any, k: int, starts: list[int], metric: str, chunk_size: int | None, src_stream: Any,
              budget: int | None, lo: int, hi: int, ctx: tuple[int, int] | None, ck: Any, saved: Any, bar: Any,
              info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    from .engine.lazy import LazyEngine
    from .engine.store import InMemorySource, shape_of

    d = shape_of(embeddings)[1]
    if src_stream is not None:
        src = src_stream
        max_active = max(1024, int(budget // (d * 4 * 3)))
    else:
        src = InMemorySource(embeddings, metric, lo, hi)
        max_active = None
    eng = LazyEngine(src, k, metric, chunk_rows=chunk_size, max_active=max_active)
    info["filter_dtype"] = str(eng.fdt).replace("torch.", "")
    from .engine.lazy import gemm_threads

    with gemm_threads() as nt:
        info["threads"] = nt
        return _drive_lazy(eng, embeddings, k, starts, metric, lo, hi, ctx, ck, saved, bar, info, d)


def _drive_lazy(eng: Any, embeddings: Any, k: int, starts: list[int], metric: str, lo: int, hi: int,
                ctx: tuple[int, int] | None, ck: Any, saved: Any, bar: Any, info: dict[str, Any],
                d: int) -> tuple[np.ndarray, np.ndarray, float]:
    gidx: list[int] = []
    if saved is not None:
        g = saved["indices"]
        local = np.where((g >= lo) & (g < hi), g - lo, -1)
        eng.load_state(saved["m"], saved["ep"], _prepared(embeddings, g, metric), local, saved["radii"])
        gidx = g.tolist()
    t = len(gidx)

    def save() -> None:
        stt = eng.state_dict()
        ck.save(eng.t, np.asarray(gidx, dtype=np.int64), eng.sel_rad[:eng.t], stt["m"], stt["ep"])

    if ctx is None:
        for j in range(t, len(starts)):
            s = starts[j]
            eng.add(eng.vector(s), s, eng.value_of(s))
            gidx.append(s)
            bar.update(1)
        while eng.t < k:
            t0 = eng.t
            target = k if ck is None or ck.every is None else min(k, ck.last_step + ck.every)
            eng.run(max(target, eng.t + 1), should_stop=(lambda: ck.due(eng.t)) if ck is not None else None,
                    on_block=lambda tt: bar.update(tt - bar.n))
            gidx.extend(eng.sel_idx[t0:eng.t].tolist())
            if ck is not None and (ck.due(eng.t) or eng.t == k):
                save()
        cov = eng.coverage()
    else:
        from . import distributed as D

        for j in range(t, k):
            if j < len(starts):
                s = starts[j]
                local = s - lo if lo <= s < hi else -1
                val = eng.value_of(local) if local >= 0 else -math.inf
            else:
                val, local = eng.best()
            key, g, vec = D.exchange(val, lo + local if local >= 0 else -1,
                                     eng.vector(local) if local >= 0 else None, d)
            mine = g - lo if lo <= g < hi else -1
            eng.add(vec.astype(np.float32), mine, key)
            gidx.append(g)
            bar.update(1)
            if _checkpoint_due(ck, eng.t, ctx) or (ck is not None and eng.t == k):
                save()
        cov = D.all_reduce_max(eng.coverage())
    info["engine_stats"] = {**eng.stats, "walk_rows": int(eng._cnt[0]), "walk_exact": int(eng._cnt[1]),
                            "flush_exact": int(eng._cnt[2]), "flush_rows_checked": int(eng._cnt[3])}
    return np.asarray(gidx, dtype=np.int64), eng.sel_rad[:k].copy(), float(cov)


def _torch_rows(embeddings: Any, metric: str, dev: torch.device, dtype: torch.dtype, lo: int, hi: int) -> torch.Tensor:
    from .engine.store import slice_rows

    x = embeddings[lo:hi] if isinstance(embeddings, (np.ndarray, torch.Tensor)) else slice_rows(embeddings, lo, hi)
    return _as_rows(x, metric, dev, dtype)


def _stream_chunks(src: Any, metric: str, dev: torch.device, dtype: torch.dtype) -> Any:
    def gen() -> Any:
        for off, raw in src.raw_chunks():
            yield off, _as_rows(np.asarray(raw), metric, dev, dtype)
    return gen


def _run_sweep(embeddings: Any, k: int, starts: list[int], metric: str, chunk_size: int | None, src_stream: Any,
               dev: torch.device, dtype: torch.dtype, lo: int, hi: int, ctx: tuple[int, int] | None, ck: Any,
               saved: Any, bar: Any, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    from .engine.sweep import run_sweep

    n_local = hi - lo
    rows = None if src_stream is not None else _torch_rows(embeddings, metric, dev, dtype, lo, hi)
    chunks = _stream_chunks(src_stream, metric, dev, dtype) if src_stream is not None else None
    from .engine.store import shape_of

    d = shape_of(embeddings)[1]
    step = chunk_size or (n_local if metric == "cosine" else max(1, (1 << 24) // max(1, d)))
    st = None
    picker = _make_picker(embeddings, rows, src_stream, metric, n_local, d, k, dev, dtype, lo)
    centres = None
    if saved is not None:
        t0 = saved["step"]
        centres = _prepared(embeddings, saved["indices"], metric)
        idx = torch.full((k,), -1, dtype=torch.int64, device=dev)
        rad = torch.full((k,), -math.inf, dtype=torch.float32, device=dev)
        idx[:t0] = torch.from_numpy(saved["indices"]).to(dev)
        rad[:t0] = torch.from_numpy(saved["radii"]).to(dev, torch.float32)
        st = (idx, rad, torch.from_numpy(saved["m"]).to(dev), t0)

    def on_step(t: int, snapshot: Any) -> None:
        if _checkpoint_due(ck, t, ctx) or (ck is not None and t == k):
            i, r, md = snapshot()
            ck.save(t, i, r, md, np.full(n_local, t, dtype=np.int64))

    idx, rad, md = run_sweep(rows, chunks, k=k, starts=starts, metric=metric, chunk=step, n=n_local, lo=lo, state=st,
                             on_step=on_step if ck is not None else None, bar=bar, picker=picker,
                             centres=centres)
    cov = picker.pick(md, "max")[0]
    info["exact_stats"] = dict(picker.stats)
    if ctx is not None:
        from . import distributed as D

        cov = D.all_reduce_max(cov)
    return idx.cpu().numpy(), rad.double().cpu().numpy(), cov


def _make_picker(embeddings: Any, rows: torch.Tensor | None, src_stream: Any, metric: str, n_local: int, d: int,
                 k: int, dev: torch.device, dtype: torch.dtype, lo: int) -> Any:
    """The exact picker of a pass-per-step run: exact rows from ``rows`` (float32) or fetched and prepared
    from the source (streamed or reduced-precision storage)."""
    from .engine.exact import ExactPicker
    from .engine.store import prepare_rows, take_rows

    if src_stream is not None:
        fetch = src_stream.rows
    else:
        def fetch(ids: np.ndarray) -> np.ndarray:
            return prepare_rows(take_rows(embeddings, np.asarray(ids, dtype=np.int64) + lo), metric)
    xmax = None
    if metric == "euclidean" and rows is None:
        xmax = 0.0
        for _, raw in src_stream.raw_chunks():
            xmax = max(xmax, float(np.sqrt(np.einsum("ij,ij->i", *(2 * [prepare_rows(raw, metric)
                                                                          .astype(np.float64)])).max())))
    exact = rows
    if rows is not None and rows.dtype != torch.float32 and dev.type != "cpu":  # accelerators: keep the exact
        exact = _torch_rows(embeddings, metric, dev, torch.float32, lo, lo + n_local)  # rows on the device too
    return ExactPicker(exact, n_local, d, metric, k, fetch=fetch, row_norm_max=xmax, storage=dtype, device=dev)


def _run_plain(embeddings: Any, k: int, starts: list[int], metric: str, chunk_size: int | None, src_stream: Any,
               dev: torch.device, dtype: torch.dtype, lo: int, hi: int, ctx: tuple[int, int] | None, ck: Any,
               saved: Any, bar: Any, state: MaxMinState | None, callback: Any,
               objective: str, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    n_local = hi - lo
    from .engine.store import shape_of

    d = shape_of(embeddings)[1]
    rows = None if src_stream is not None else _torch_rows(embeddings, metric, dev, dtype, lo, hi)
    chunks = _stream_chunks(src_stream, metric, dev, dtype) if src_stream is not None else None
    if chunk_size is None:  # euclidean differences need a (rows, d) temporary: bound it
        chunk_size = n_local if metric == "cosine" else max(1, (1 << 24) // max(1, d))
    st = state if state is not None else MaxMinState(n_local, dev)
    if saved is not None:
        st.min_dist = torch.from_numpy(saved["m"]).to(dev)
        st.indices = saved["indices"].tolist()
        st.radii = saved["radii"].tolist()
    picker = _make_picker(embeddings, rows, src_stream, metric, n_local, d, k, dev, dtype, lo)
    if st.indices:  # resumed / continued: the centres so far, exact values rebuilt on demand
        for v in _prepared(embeddings, np.asarray(st.indices, dtype=np.int64), metric):
            picker.add(v)
        for g in st.indices:
            if lo <= g < hi:
                picker.mark_chosen(g - lo)
    eng = _PlainEngine(rows, chunks, n_local, metric, max(1, int(chunk_size)), objective, st, picker, dtype)
    if ctx is not None:
        from . import distributed as D
    for j in range(len(st.indices), k):
        if j < len(starts):
            s = starts[j]
            local = s - lo if lo <= s < hi else -1
            val = eng.value_of(local) if local >= 0 else -math.inf
            key = val
        else:
            val, local = eng.best()
            key = val if objective == "max" or local < 0 else -val
        if ctx is None:
            g, vec = local, eng.vector(local)
        else:
            vec_t = eng.vector(local) if local >= 0 else None
            key, g, vec_np = D.exchange(key, lo + local if local >= 0 else -1, vec_t, d)
            val = key if (objective == "max" or j < len(starts)) else -key
            local = g - lo if lo <= g < hi else -1
            vec = torch.from_numpy(vec_np)
        eng.add(vec, local, val, g)
        bar.update(1)
        if callback is not None:
            callback(st)
        if _checkpoint_due(ck, j + 1, ctx) or (ck is not None and j + 1 == k):
            ck.save(j + 1, np.asarray(st.indices), np.asarray(st.radii), st.min_dist.cpu().numpy(),
                    np.full(n_local, j + 1, dtype=np.int64))
    cov = eng.coverage()
    info["exact_stats"] = dict(picker.stats)
    if ctx is not None:
        cov = D.all_reduce_max(cov)
    return np.asarray(st.indices, dtype=np.int64), np.asarray(st.radii, dtype=np.float64), cov


def uniform_rank(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Greedy rank of every row: ``rank[i]`` is the step at which row ``i`` is chosen, ``-1`` if not chosen.

    Because the greedy order is a prefix, ``np.flatnonzero((rank >= 0) & (rank < b))`` is the max-min
    subset for every budget ``b <= k`` from one run. ``k`` defaults to all rows. Keyword arguments go to
    :func:`maxmin_select`.

    Example:
        >>> import numpy as np
        >>> uniform_rank(np.eye(3, dtype=np.float32), start=[2]).tolist()
        [1, 2, 0]
    """
    n = int(embeddings.shape[0])
    sel = maxmin_select(embeddings, n if k is None else k, **kwargs)
    rank = np.full(n, -1, dtype=np.int64)
    rank[sel.indices] = np.arange(sel.k)
    return rank
