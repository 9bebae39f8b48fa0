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

    Checks: a non-empty 2-D numeric array, finite values, and no zero rows under the cosine metric
    (their direction is undefined; drop them with ``drop_zero_vectors=True`` / ``--drop-zero-vectors``).

    Example:
        >>> import numpy as np
        >>> check_embeddings(np.ones((2, 3)))
        >>> check_embeddings(np.zeros((2, 3)))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: 2 zero vector(s) under the cosine metric at rows [0, 1]; drop them with drop_zero_vectors=True (CLI: --drop-zero-vectors) or use metric='euclidean'
    """
    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    shape = tuple(embeddings.shape)
    if len(shape) != 2:
        raise UniformError(f"embeddings must be a 2-D array (rows, dims), got shape {shape}")
    if shape[0] == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if shape[1] == 0:
        raise UniformError("embeddings have zero dimensions; check the embedding column")
    t = torch.as_tensor(embeddings)
    if t.is_complex() or t.dtype == torch.bool:
        raise UniformError(f"embeddings must be real numbers, got dtype {t.dtype}")
    finite = torch.isfinite(t).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:10].tolist()
        raise UniformError(f"embeddings contain NaN or inf at rows {bad}; clean or re-embed those rows")
    if metric == "cosine":
        zero = ~(t != 0).any(dim=1)
        if bool(zero.any()):
            rows = torch.nonzero(zero).flatten()
            shown = rows[:10].tolist()
            more = "" if rows.numel() <= 10 else f" (and {rows.numel() - 10} more)"
            raise UniformError(
                f"{rows.numel()} zero vector(s) under the cosine metric at rows {shown}{more}; drop them with "
                "drop_zero_vectors=True (CLI: --drop-zero-vectors) or use metric='euclidean'"
            )


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
    """Rows on ``device`` in ``dtype``; unit-normalised (in float32) for the cosine metric."""
    x = torch.as_tensor(embeddings)
    x = x.to(device=device, dtype=torch.float32)
    if metric == "cosine":
        x = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x.to(dtype).contiguous()


def point_distances(rows: torch.Tensor, centre: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances (float32) from each of ``rows`` to one ``centre``; rows prepared by the engine.

    For cosine the rows are unit vectors and the distance is ``1 - <x, c>``; for euclidean it is computed
    from differences (not the ``|x|^2 + |c|^2 - 2<x, c>`` expansion), so it is exact to float32 rounding.
    The arithmetic for one row never depends on the other rows, so chunking and sharding give bitwise equal
    results.

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
    starts = [int(start)] if isinstance(start, (int, np.integer)) else [int(s) for s in start]
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


def _argmax_lowest(values: torch.Tensor) -> tuple[int, float]:
    """(index, value) of the maximum, ties to the lowest index (torch.argmax returns the first maximum)."""
    i = int(torch.argmax(values))
    return i, float(values[i])


def _argmin_unchosen(values: torch.Tensor) -> tuple[int, float]:
    """(index, value) of the minimum over unchosen rows (chosen rows hold -inf), ties to the lowest index."""
    masked = torch.where(values < 0, torch.full_like(values, math.inf), values)
    i = int(torch.argmin(masked))
    return i, float(values[i])


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
) -> Selection:
    """Greedy max-min selection of ``k`` rows of ``embeddings`` (farthest-first traversal).

    Args:
        embeddings: ``(n, d)`` array or tensor.
        k: number of rows, or a fraction in (0, 1) of ``n``.
        metric: ``"cosine"`` (the paper's) or ``"euclidean"``.
        start: row index or indices to start from (in order); ``None`` draws one row with ``seed``.
        seed: seed of the random start row.
        chunk_size: rows per distance block (bounds temporary memory); ``None`` picks all rows for cosine
            and ``2**24 / d`` rows for euclidean. Results do not depend on it.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``/``None`` (CUDA when available).
        dtype: storage dtype of the rows (``torch.float16``/``bfloat16`` halve memory traffic; distances
            are accumulated in float32).
        progress: show a tqdm progress bar.
        state: continue a run from this state (used by resumable runs).
        callback: called as ``callback(state)`` after each chosen row (used for checkpoints).
        objective: ``"max"`` adds the farthest row (the paper's uniform selection); ``"min"`` adds the
            nearest unchosen row (the opposite, used by the paper's mixed baseline).

    Returns:
        A :class:`Selection`; extra memory is O(n) besides the rows themselves.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
        >>> sel = maxmin_select(x, 3, metric="euclidean", start=0)
        >>> sel.indices.tolist(), sel.h
        ([0, 3, 1], 1.0)
    """
    check_embeddings(embeddings, metric)
    n = int(embeddings.shape[0])
    k = check_k(k, n)
    dev = resolve_device(device)
    rows = _as_rows(embeddings, metric, dev, dtype)
    if chunk_size is None:  # euclidean differences need a (rows, d) temporary: bound it
        chunk_size = n if metric == "cosine" else max(1, (1 << 24) // max(1, rows.shape[1]))
    step = max(1, int(chunk_size))

    def distances(centre: torch.Tensor) -> torch.Tensor:
        if step >= n:
            return point_distances(rows, centre, metric)
        return torch.cat([point_distances(rows[i:i + step], centre, metric) for i in range(0, n, step)])

    if objective not in ("max", "min"):
        raise UniformError(f"objective must be 'max' or 'min', got {objective!r}")
    choose = _argmax_lowest if objective == "max" else _argmin_unchosen
    starts = _start_rows(n, k, start, seed)
    st = state if state is not None else MaxMinState(n, dev)
    from tqdm.auto import tqdm

    bar = tqdm(total=k, initial=len(st.indices), desc="max-min select", unit="row", disable=not progress)
    try:
        while len(st.indices) < k:
            j = len(st.indices)
            if j < len(starts):
                row = starts[j]
                radius = float(st.min_dist[row])
            else:
                row, radius = choose(st.min_dist)
            st.add(row, radius, distances(rows[row]))
            bar.update(1)
            if callback is not None:
                callback(st)
    finally:
        bar.close()
    cov = float(st.min_dist.max()) if k < n else 0.0  # chosen rows hold -inf
    return Selection(
        indices=np.asarray(st.indices, dtype=np.int64),
        min_distances=np.asarray(st.radii, dtype=np.float64),
        coverage_radius=max(cov, 0.0),
        metric=metric,
        n=n,
        info={"method": "plain", "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
              "seed": seed, "start": starts},
    )


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
