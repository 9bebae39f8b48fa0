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

import hashlib
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .engine.distance import point_distances
from .errors import MissingExtraError, UniformError
from .options import check_k, parse_k  # noqa: F401 - the one k rule, re-exported (its earlier home)

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean")
__all__ = ["METHODS", "METRICS", "Selection", "check_embeddings", "check_k", "maxmin_select", "point_distances",
           "resolve_device", "uniform_rank"]


@dataclass(frozen=True)
class Selection:
    """The result of a greedy max-min run.

    Attributes:
        indices: row indices in selection order (``int64``).
        min_distances: distance of each chosen row to the rows chosen before it, in selection order
            (``float64``; ``inf`` for the first row). This is the radius trace.
        coverage_radius: largest distance from any row of the pool to its nearest chosen row (the
            k-center objective), ``0.0`` when every row is chosen; with ``group_by``, over the rows that could
            still be picked (``nan`` once every group is full).
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
            "coverage_radius": self.coverage_radius if math.isfinite(self.coverage_radius) else None,
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
    from .options import check_device  # the one device rule

    device = check_device(device)
    if device == "auto":
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
    from .engine.store import check_chunk, shape_of, slice_rows

    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    shape = shape_of(embeddings)  # arrays, tensors and Arrow fixed-size-list columns (no ``.shape`` there)
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


def _start_rows(n: int, k: int, start: int | Sequence[int] | None, seed: int | None) -> list[int]:
    from .options import check_seed, check_start  # the one start / seed rule

    if start is None:
        return [int(np.random.default_rng(check_seed(seed)).integers(n))]
    starts = list(check_start(start))
    bad = [s for s in starts if s >= n]
    if bad:
        raise UniformError(f"start rows {bad[:10]} are out of range for n={n}")
    if len(starts) > k:
        raise UniformError(f"{len(starts)} start rows exceed k={k}; raise k or pass fewer start rows")
    return starts


METHODS = ("auto", "plain", "sweep", "lazy")


def _resolve_method(method: str, dev: torch.device, nearest: bool) -> str:
    from .engine import numba_available

    if method not in METHODS:
        raise UniformError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if nearest:  # the min-min baseline: pass-per-step engines only
        if method == "lazy":
            raise UniformError("the min-min baseline runs on method='plain' or 'sweep', got method='lazy'")
        return "plain" if method == "auto" else method
    if method == "auto":
        return "lazy" if dev.type == "cpu" and numba_available() else "sweep"
    if method == "lazy":
        if dev.type != "cpu":
            raise UniformError(f"method='lazy' runs on the CPU, got device={dev}; use method='sweep' on accelerators")
        if not numba_available():
            raise MissingExtraError("method='lazy' needs numba; pip install numba (or use method='sweep')")
    return method


def maxmin_select(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float | None = None,
    *,
    metric: str = "cosine",
    start: int | Sequence[int] | None = None,
    seed: int | None = 0,
    chunk_size: int | None = None,
    device: str | torch.device | None = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    method: str = "auto",
    max_memory: int | str | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = None,
    resume: bool = False,
    distributed: bool = False,
    radius: float | None = None,
    group_by: Sequence[Any] | np.ndarray | None = None,
    quotas: dict[Any, int] | None = None,
    tie_break: str = "lowest",
) -> Selection:
    """Greedy max-min selection of ``k`` rows of ``embeddings`` (farthest-first traversal).

    Every method returns the exact greedy selection on the float32 rows (each pick attains the float64
    maximum of the min-distance array, ties to the lowest row index, duplicates at radius 0: the picks of
    :func:`hf_uniform.engine.reference.reference_select`); they differ in speed. float64 input is cast to
    float32 first (logged once): the selection is exact on those rows.

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
        method: ``"auto"`` (default: ``lazy`` on CPUs with numba, ``sweep`` on accelerators), ``"lazy"``
            (exact lazy GEMM-batched engine, CPU), ``"sweep"``/``"plain"`` (one full pass per step, on any
            device; :mod:`hf_uniform.engine.sweep`).
        max_memory: bytes or a size such as ``"2GB"``; when the float32 rows (of this rank's shard) exceed it,
            they are streamed in chunks from ``embeddings`` (e.g. a memmap) instead of copied. The result is
            the same.
        checkpoint_dir: save the greedy state here (atomically) so that ``resume=True`` can continue.
        checkpoint_every: steps between checkpoints (default 1000 when no ``checkpoint_seconds``).
        checkpoint_seconds: seconds between checkpoints.
        resume: continue from the newest checkpoint in ``checkpoint_dir`` (start fresh when there is none);
            a checkpoint of a different run (n, d, metric, k, seed/start, method, rows) raises.
        distributed: run as one rank of the initialised ``torch.distributed`` process group: each rank
            handles its contiguous shard of the rows, every rank must call this with the same arguments, and
            all return the selection of a single process (see :mod:`hf_uniform.distributed`). Without it the
            selection is local even when a process group exists.
        radius: stop once every row left is within ``radius`` of a chosen row (the coverage target of
            k-center, "deduplicate to radius r"); ``k`` is then a cap (default: every row) and the result has
            as many rows as it took. Start rows are always taken.
        group_by: a group label per row (topic, language, source, ...): with ``quotas``, greedy max-min in
            which a row of a full group is never picked (distances still count across groups).
        quotas: rows per group label; default: proportional to the group sizes (largest remainder, ``k``
            in all). Labels left out get 0. With quotas given, ``k`` may be left out (their sum).
        tie_break: ``"lowest"`` (default): exact ties go to the lowest row index; ``"random"``: to a seeded
            random row among the tied ones (the seed is ``seed``; for one-hot or duplicate-heavy data).

    With ``group_by``, ``coverage_radius`` is over the rows that could still be picked (``nan`` once every
    group is full). Each rule is exact: :func:`hf_uniform.engine.reference.reference_select` implements
    the same definition in float64 and ``tests/engine/test_rules.py`` replays every engine against it.

    Returns:
        A :class:`Selection`; ``info`` records the method, device, world size and shard sizes.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
        >>> sel = maxmin_select(x, 3, metric="euclidean", start=0)
        >>> sel.indices.tolist(), sel.h
        ([0, 3, 1], 1.0)
        >>> maxmin_select(x, metric="euclidean", start=0, radius=0.5).indices.tolist()
        [0, 3, 1]
        >>> groups = ["a", "a", "a", "b"]
        >>> maxmin_select(x, metric="euclidean", start=0, group_by=groups, quotas={"a": 2}).indices.tolist()
        [0, 1]
    """
    return _greedy(embeddings, k, metric=metric, start=start, seed=seed, chunk_size=chunk_size, device=device,
                   dtype=dtype, progress=progress, method=method, max_memory=max_memory,
                   checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                   checkpoint_seconds=checkpoint_seconds, resume=resume, distributed=distributed, radius=radius,
                   group_by=group_by, quotas=quotas, tie_break=tie_break)


def _greedy(embeddings: Any, k: int | float, *, metric: str = "cosine", start: int | Sequence[int] | None = None,
            seed: int | None = 0, chunk_size: int | None = None, device: str | torch.device | None = "cpu",
            dtype: torch.dtype = torch.float32, progress: bool = False, method: str = "auto",
            max_memory: int | str | None = None, checkpoint_dir: str | None = None,
            checkpoint_every: int | None = None, checkpoint_seconds: float | None = None, resume: bool = False,
            distributed: bool = False, nearest: bool = False, radius: float | None = None,
            group_by: Any = None, quotas: dict[Any, int] | None = None, tie_break: str = "lowest") -> Selection:
    """:func:`maxmin_select`, or with ``nearest=True`` the min-min rule of
    :func:`hf_uniform.baselines.minmin_select`: validate, build this rank's engine, run the driver."""
    from .distributed import shard_bounds
    from .engine.driver import LocalComm, drive
    from .engine.exact import check_storage
    from .engine.rules import check_rule_args
    from .engine.store import StreamSource, check_chunk, parse_bytes, shape_of, slice_rows

    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    check_storage(dtype, metric)
    check_rule_args(tie_break, radius)
    if quotas is not None and group_by is None:
        raise UniformError("quotas= needs group_by= (a group label per row)")
    if nearest and (radius is not None or group_by is not None or tie_break != "lowest"):
        raise UniformError("the min-min baseline takes no radius, group_by or tie_break")
    if isinstance(embeddings, (list, tuple)):  # nested Python lists: numbers of one length, or refuse
        try:
            arr = np.asarray(embeddings)
        except (ValueError, TypeError) as err:
            raise UniformError("embeddings are ragged: rows differ in length; pass an (n, d) float array") from err
        if arr.dtype.kind not in "fiu":
            raise UniformError(f"embeddings must be numbers, got {arr.dtype} values (e.g. numbers written as "
                               "strings); pass an (n, d) float array")
        embeddings = arr.astype(np.float64)
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise UniformError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    budget = parse_bytes(max_memory)
    _log_cast(embeddings)
    if distributed:
        from .distributed import TorchComm

        comm = TorchComm()
    else:
        comm = LocalComm()
    rank, world = comm.rank, comm.world_size
    if world == 1:
        comm = LocalComm()
    if budget is None and world == 1:
        check_embeddings(embeddings, metric)
    n, d = shape_of(embeddings)
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if d == 0:
        raise UniformError("embeddings have zero dimensions; check the embedding column")
    if k is None and radius is None and quotas is None:
        raise UniformError("pass k (rows or a fraction), radius= (a coverage target) or per-group quotas=")
    groups = per = None
    if group_by is not None:
        from .engine.rules import resolve_quotas, start_with_groups

        kq = None if quotas is not None else check_k(n if k is None else k, n)
        groups, qmap, per = resolve_quotas(group_by, kq, quotas, n)
        if quotas is not None:
            if k is not None and check_k(k, n) != int(per.sum()):
                raise UniformError(f"quotas add up to {int(per.sum())} rows but k={k}; leave k out or make them agree")
            k = max(1, int(per.sum()))
    k = check_k(n if k is None else k, n)
    starts = _start_rows(n, k, start, seed)
    if groups is not None:
        starts = start_with_groups(starts, groups, per, start is None, seed)
    perm = None
    if tie_break == "random":  # the engines see a seeded permutation of the rows (a view); ties: lowest position
        from .engine.rules import PermutedRows, tie_permutation

        perm = tie_permutation(n, seed)
        inv = np.empty(n, dtype=np.int64)
        inv[perm] = np.arange(n)
        embeddings, starts = PermutedRows(embeddings, perm), [int(inv[s]) for s in starts]
        groups = None if groups is None else groups[perm]
    dev = resolve_device(device)
    method = _resolve_method(method, dev, nearest)
    bounds = shard_bounds(n, world)
    lo, hi = bounds[rank]
    n_local = hi - lo
    # the in-memory engines hold a float32 copy of the rows plus ~48 bytes of state per row (and transient
    # copies): stream as soon as that could exceed the budget
    stream = budget is not None and int(1.25 * n_local * (d * 4 + 48)) > budget
    if method == "lazy" and budget is not None:  # the lazy engine's own split (raises when it cannot fit)
        from .engine.lazy import memory_plan

        stream = memory_plan(n_local, d, k, budget)["stream"]
    if (budget is not None or world > 1) and not stream:
        for a in range(lo, hi, 1 << 16):  # validate this rank's rows (global row numbers in messages)
            check_chunk(np.asarray(slice_rows(embeddings, a, min(hi, a + (1 << 16)))), metric, a)
    # streamed: chunks sized to the budget (a chunk and its float32 / validation temporaries ~ 1/8 of it)
    stream_rows = chunk_size or (max(256, min(65536, budget // (d * 4 * 8))) if budget else 65536)
    src_stream = StreamSource(embeddings, metric, lo, hi, chunk_rows=stream_rows, validate=True) \
        if stream else None
    logger.info("%s select: method=%s n=%d d=%d k=%d device=%s world=%d%s", "min-min" if nearest else "max-min",
                method, n, d, k, dev, world, " (streamed)" if stream else "")

    ck = None
    if checkpoint_dir is not None:
        from .checkpoint import Checkpointer, fingerprint, rows_hash

        objective = "min" if nearest else "max"
        if radius is not None or groups is not None or perm is not None:  # the rules are part of the run
            rule = hashlib.sha256(repr((radius, tie_break, None if groups is None else (groups.tobytes(),
                                                                                      per.tobytes()))).encode())
            objective += ":" + rule.hexdigest()[:16]
        fp = fingerprint(n=n, d=d, metric=metric, k=k, seed=seed, start=starts, method=method,
                         objective=objective, row_hash=rows_hash(embeddings, n),
                         world_size=world, rank=rank)
        ck = Checkpointer(checkpoint_dir, fp, every=checkpoint_every, seconds=checkpoint_seconds, rank=rank,
                          world_size=world)
    elif resume:
        raise UniformError("resume=True needs checkpoint_dir= (the folder the interrupted run saved to)")

    info: dict[str, Any] = {"method": method, "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
                            "seed": seed, "start": starts, "world_size": world,
                            "shard_sizes": [b - a for a, b in bounds], "streamed": bool(stream)}
    if tie_break != "lowest":
        info["tie_break"] = tie_break
    if radius is not None:
        info["radius"] = float(radius)
    if groups is not None:
        info["quotas"] = {str(lab): q for lab, q in qmap.items()}
    if method == "lazy":
        from .engine.lazy import gemm_threads

        eng = _lazy_engine(embeddings, src_stream, metric, k, chunk_size, budget, lo, hi)
        info["filter_dtype"] = str(eng.fdt).replace("torch.", "")
        threads = gemm_threads()
    else:
        from contextlib import nullcontext

        from .engine.sweep import pass_engine

        eng = pass_engine(embeddings, src_stream, metric=metric, k=k, device=dev, dtype=dtype, lo=lo, hi=hi,
                          chunk_size=chunk_size, nearest=nearest)
        threads = nullcontext()
    from .engine.distance import prepared_rows

    with threads as nt:
        run = drive(eng, k=k, starts=starts, lo=lo, comm=comm, checkpointer=ck, resume=resume,
                    centres=lambda ids: prepared_rows(embeddings, ids, metric), progress=progress, nearest=nearest,
                    radius=radius, groups=groups, quotas=per)
    if method == "lazy":
        info["threads"] = nt
        info["engine_stats"] = {**eng.stats, "walk_rows": int(eng._cnt[0]), "walk_exact": int(eng._cnt[1]),
                                "flush_exact": int(eng._cnt[2]), "flush_rows_checked": int(eng._cnt[3])}
    else:
        info["exact_stats"] = dict(eng.picker.stats)
    if run.resumed_from is not None:
        info["resumed_from_step"] = run.resumed_from
    picked = np.asarray(run.indices, dtype=np.int64)
    if perm is not None:
        picked = perm[picked]
    if len(picked) == n:
        cov = 0.0
    elif groups is not None and run.coverage == -math.inf:
        cov = math.nan  # every group is full: the rows left cannot be picked
    else:
        cov = max(run.coverage, 0.0)
    return Selection(
        indices=picked,
        min_distances=run.radii,
        coverage_radius=cov,
        metric=metric,
        n=n,
        info=info,
    )


def _lazy_engine(embeddings: Any, stream: Any, metric: str, k: int, chunk_size: int | None, budget: int | None,
                 lo: int, hi: int) -> Any:
    """The lazy engine over rows ``lo:hi`` (in memory, or the streamed source with an active-row cap that
    keeps its working set within ``budget``)."""
    from .engine.lazy import LazyEngine
    from .engine.store import InMemorySource

    if stream is not None:
        return LazyEngine(stream, k, metric, chunk_rows=chunk_size, max_memory=budget)
    return LazyEngine(InMemorySource(embeddings, metric, lo, hi), k, metric, chunk_rows=chunk_size)


def uniform_rank(
    embeddings: np.ndarray | torch.Tensor,
    k: int | float | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Greedy rank of every row: ``rank[i]`` is the step at which row ``i`` is chosen, ``-1`` if not chosen.

    Because the greedy order is a prefix, ``np.flatnonzero((rank >= 0) & (rank < b))`` is the max-min
    subset for every budget ``b <= k`` from one run. ``k`` defaults to all rows: the full greedy order,
    computed cheaply -- the engine stops once the coverage radius is 0 (every row left duplicates a chosen
    one, or points the same way under cosine) and the rows left follow in the greedy's tie order (lowest
    index, or the seeded priority of ``tie_break="random"``), which is exactly the order the remaining
    greedy steps would take. Keyword arguments go to :func:`maxmin_select`.

    Example:
        >>> import numpy as np
        >>> uniform_rank(np.eye(3, dtype=np.float32), start=[2]).tolist()
        [1, 2, 0]
    """
    from .engine.store import shape_of

    n = shape_of(embeddings)[0]
    full = k is None and kwargs.get("radius") is None and kwargs.get("group_by") is None
    sel = maxmin_select(embeddings, n if k is None else k, **({"radius": 0.0} if full else {}), **kwargs)
    rank = np.full(n, -1, dtype=np.int64)
    rank[sel.indices] = np.arange(sel.k)
    if full and sel.k < n:  # every row left is at distance 0 and stays there: the greedy takes them in tie order
        rest = np.flatnonzero(rank < 0)
        if kwargs.get("tie_break", "lowest") == "random":
            from .engine.rules import tie_priority

            rest = rest[np.argsort(tie_priority(n, kwargs.get("seed", 0))[rest])]
        rank[rest] = np.arange(sel.k, n)
    return rank
