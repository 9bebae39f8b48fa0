"""The paper's selection rule in plain numpy float64: the definition every engine must reproduce.

Greedy farthest-first traversal (max-min, k-center greedy): start from the given rows, then repeatedly add
the unchosen row whose distance to its nearest chosen row is largest, ties to the lowest row index. The
rows are the float32 rows *as given* (no normalisation, whatever the metric), and every distance is computed
in float64 and rounded once to float32 (as the engines store their exact values): ``1 - <a, b> /
sqrt(<a, a> <b, b>)`` clamped at 0 for cosine (normalisation-free, so rows pointing the same way -- ``[1, 3]``
and ``[3, 9]`` -- are at distance exactly 0, and ties of a lattice with scaled copies stay ties), ``|a - b|``
from differences for euclidean. Products of float32 values are exact in float64; the three sums of a cosine
distance are computed by the same elementwise-product-then-sum, so a row's distance to itself is exactly 0.

Optional rules (every engine implements them the same way):

* ``priority``: ties go to the row with the lowest priority instead of the lowest index (``tie_break="random"``
  of :func:`hf_uniform.selection.maxmin_select` draws a seeded permutation as the priority);
* ``groups`` / ``quotas``: a row whose group already holds its quota is never picked;
* ``radius``: stop as soon as the largest min-distance of the rows that can still be picked is ``<= radius``.

This is the test oracle (``tests/`` import it); it costs ``O(k n d)`` time and ``O(n d)`` memory and makes
no attempt to be fast: use :func:`hf_uniform.selection.maxmin_select` for real pools.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    >>> idx, radii = reference_select(x, 3, metric="euclidean", start=[0])
    >>> idx, radii.tolist()
    ([0, 3, 1], [inf, 5.0, 1.0])
    >>> reference_select(np.array([[1.0, 0.0], [1.0, 3.0], [3.0, 9.0]]), 3, start=[0])[1].tolist()[1:]
    [0.6837722063064575, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reference_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """The float64 rows the distances are computed on: the float32 rows as given (both metrics).

    Example:
        >>> reference_rows(np.array([[3.0, 4.0]]), "cosine").tolist()
        [[3.0, 4.0]]
    """
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def reference_distances(rows: np.ndarray, i: int, metric: str) -> np.ndarray:
    """Distance of every row of ``rows`` (from :func:`reference_rows`) to row ``i``: float64, rounded once to
    float32 (returned as float64).

    Example:
        >>> reference_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), 0, "euclidean").tolist()
        [0.0, 5.0]
        >>> reference_distances(np.array([[1.0, 3.0], [3.0, 9.0], [-1.0, -3.0]]), 0, "cosine").tolist()
        [0.0, 0.0, 2.0]
        >>> reference_distances(np.array([[1.0, 0.0], [1.0, 1.0]]), 0, "cosine").tolist()  # float32 of 1 - 1/sqrt(2)
        [0.0, 0.2928932309150696]
    """
    if metric == "cosine":
        c = rows[i]
        dot = (rows * c).sum(axis=1)
        na = (rows * rows).sum(axis=1)
        nc = (c[None, :] * c[None, :]).sum(axis=1)
        return np.maximum(1.0 - dot / np.sqrt(na * nc), 0.0).astype(np.float32).astype(np.float64)
    diff = rows - rows[i]
    return np.sqrt((diff * diff).sum(axis=1)).astype(np.float32).astype(np.float64)


def reference_select(x: np.ndarray, k: int, *, metric: str = "cosine", start: Sequence[int] = (0,),
                     nearest: bool = False, priority: np.ndarray | None = None, groups: np.ndarray | None = None,
                     quotas: dict | None = None, radius: float | None = None) -> tuple[list[int], np.ndarray]:
    """Greedy selection of up to ``k`` rows: ``(indices in selection order, radii)``; ``radii[j]`` is the
    chosen row's distance to the rows chosen before it (``inf`` for the first).

    ``nearest=True`` adds the *nearest* unchosen row instead (the min-min rule of the paper's mixed
    baseline, :func:`hf_uniform.baselines.minmin_select`). ``priority`` (one number per row) breaks ties
    instead of the row index; ``groups`` (a label per row) with ``quotas`` (label -> most rows) never picks
    a row of a full group; ``radius`` stops once the best value is at most ``radius`` (start rows are always
    taken). Selection also stops when no row can be picked.

    Example:
        >>> reference_select(np.eye(3), 2, start=[2])[0]
        [2, 0]
        >>> reference_select(np.eye(3), 3, start=[2], priority=np.array([2, 1, 0]))[0]
        [2, 1, 0]
    """
    rows = reference_rows(x, metric)
    n = len(rows)
    key = np.arange(n) if priority is None else np.asarray(priority)
    m = np.full(n, np.inf)
    chosen: list[int] = []
    radii: list[float] = []
    taken: dict = {}
    blocked = np.zeros(n, dtype=bool)
    glab = None if groups is None else np.asarray(groups)
    if glab is not None:
        blocked = np.array([quotas.get(g.item() if hasattr(g, "item") else g, 0) <= 0 for g in glab])
    for j in range(k):
        if j < len(start):
            i = int(start[j])
        else:
            ok = ~blocked & ~np.isneginf(m)
            if not ok.any():
                break
            target = m[ok].min() if nearest else m[ok].max()
            if radius is not None and not nearest and target <= radius:
                break
            tied = np.flatnonzero(ok & (m == target))
            i = int(tied[np.argmin(key[tied])])
        radii.append(float(m[i]))
        chosen.append(i)
        m = np.minimum(m, reference_distances(rows, i, metric))
        m[chosen] = -np.inf
        if glab is not None:
            g = glab[i].item() if hasattr(glab[i], "item") else glab[i]
            taken[g] = taken.get(g, 0) + 1
            if taken[g] >= quotas.get(g, 0):
                blocked |= glab == glab[i]
    return chosen, np.array(radii)
