"""The paper's selection rule in plain numpy float64: the definition every engine must reproduce.

Greedy farthest-first traversal (max-min, k-center greedy): start from the given rows, then repeatedly add
the unchosen row whose distance to its nearest chosen row is largest, ties to the lowest row index. The
rows are the ones the engines see -- float32, unit-normalised for cosine (divided by the float32 of the
float64 norm) -- and every distance is float64 from differences: ``0.5 |a - b|^2`` of the float64
re-normalised rows for cosine (equal to ``1 - cos``; exactly 0 for duplicates), ``|a - b|`` for euclidean.

This is the test oracle (``tests/`` import it); it costs ``O(k n d)`` time and ``O(n d)`` memory and makes
no attempt to be fast: use :func:`hf_uniform.selection.maxmin_select` for real pools.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    >>> idx, radii = reference_select(x, 3, metric="euclidean", start=[0])
    >>> idx, radii.tolist()
    ([0, 3, 1], [inf, 5.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reference_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """The float64 rows the distances are computed on (see the module docstring).

    Example:
        >>> reference_rows(np.array([[3.0, 4.0]]), "cosine").round(6).tolist()
        [[0.6, 0.8]]
    """
    a = np.asarray(x, dtype=np.float32)
    if metric == "cosine":
        a = a / np.sqrt((a.astype(np.float64) ** 2).sum(axis=1, keepdims=True)).astype(np.float32)
        a = a.astype(np.float64)
        return a / np.sqrt((a * a).sum(axis=1, keepdims=True))
    return a.astype(np.float64)


def reference_distances(rows: np.ndarray, i: int, metric: str) -> np.ndarray:
    """float64 distance of every row of ``rows`` (from :func:`reference_rows`) to row ``i``.

    Example:
        >>> reference_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), 0, "euclidean").tolist()
        [0.0, 5.0]
    """
    diff = rows - rows[i]
    sq = np.einsum("ij,ij->i", diff, diff)
    return 0.5 * sq if metric == "cosine" else np.sqrt(sq)


def reference_select(x: np.ndarray, k: int, *, metric: str = "cosine", start: Sequence[int] = (0,),
                     nearest: bool = False) -> tuple[list[int], np.ndarray]:
    """Greedy selection of ``k`` rows: ``(indices in selection order, radii)``; ``radii[j]`` is the chosen
    row's distance to the rows chosen before it (``inf`` for the first).

    ``nearest=True`` adds the *nearest* unchosen row instead (the min-min rule of the paper's mixed
    baseline, :func:`hf_uniform.baselines.minmin_select`).

    Example:
        >>> reference_select(np.eye(3), 2, start=[2])[0]
        [2, 0]
    """
    rows = reference_rows(x, metric)
    m = np.full(len(rows), np.inf)
    chosen: list[int] = []
    radii: list[float] = []
    for j in range(k):
        if j < len(start):
            i = int(start[j])
        else:
            live = np.where(np.isneginf(m), np.inf, m) if nearest else m
            i = int(np.argmin(live)) if nearest else int(np.argmax(live))  # first hit = lowest index
        radii.append(float(m[i]))
        chosen.append(i)
        m = np.minimum(m, reference_distances(rows, i, metric))
        m[chosen] = -np.inf
    return chosen, np.array(radii)
