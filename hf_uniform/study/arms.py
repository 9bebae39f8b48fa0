"""The study's arms: each seed's pool draw, the subset size, and the rows of every arm.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> pools = seed_pools(100, [0, 1], pool_size=20)
    >>> len(pools[0]), bool((pools[0] != pools[1]).any())
    (20, True)
    >>> len(build_arm_indices(x, "uniform", resolve_k(0.5, 20), seed=0))
    10
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UniformError
from .config import ARMS, POOL_DRAW_SALT


def resolve_k(k: float, n: int) -> int:
    """Rows for ``k`` (a count, or a fraction in (0, 1)) of a training pool of ``n`` rows: the one k rule,
    :func:`hf_uniform.selection.check_k` (a fraction is rounded to nearest), plus the study's own rule that
    a subset needs at least 2 rows. ``StudyConfig.validate`` has already read text (``"6"``) with ``parse_k``.

    Raises:
        UniformError: what ``check_k`` refuses (more than ``n`` rows, a count that is not whole, ...), or
            fewer than 2 rows.

    Example:
        >>> resolve_k(0.5, 9), resolve_k(4, 9), resolve_k(6, 12), resolve_k(0.3, 9)
        (4, 4, 6, 3)
    """
    from ..selection import check_k

    rows = check_k(k, n)
    if rows < 2:
        raise UniformError(f"k={k} gives {rows} row of a training pool of {n}; the study needs 2..{n} rows")
    return rows


def seed_pools(train_rows: int, seeds: Sequence[int], pool_size: int | None = None) -> dict[int, np.ndarray]:
    """Each seed's training rows (sorted positions into the training pool): its own seeded draw of
    ``pool_size`` rows, or every row when ``pool_size`` is ``None``.

    The draw uses ``np.random.default_rng([POOL_DRAW_SALT, seed])``, so it differs from the arms' own use of
    the seed.

    Raises:
        UniformError: ``pool_size`` exceeds ``train_rows``.

    Example:
        >>> seed_pools(5, [0])[0].tolist()
        [0, 1, 2, 3, 4]
    """
    out: dict[int, np.ndarray] = {}
    for seed in seeds:
        if pool_size:
            if pool_size > train_rows:
                raise UniformError(f"pool_size {pool_size} exceeds the {train_rows} training rows; lower it")
            draw = np.random.default_rng([POOL_DRAW_SALT, seed]).choice(train_rows, pool_size, replace=False)
            out[seed] = np.sort(draw).astype(np.int64)
        else:
            out[seed] = np.arange(train_rows, dtype=np.int64)
    return out


def build_arm_indices(
    x: np.ndarray, arm: str, k: int, seed: int, *, metric: str = "cosine", method: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Row indices (into ``x``) of one arm for one seed.

    ``uniform``: exact greedy max-min from a seeded random start row (all-zero rows are skipped under
    cosine); ``random``: a seeded draw; ``mixed``: the paper's half-random / half-min-distance baseline;
    ``full``: every row. ``method`` picks the exact max-min engine (see
    :func:`~hf_uniform.selection.maxmin_select`); every engine returns the same rows. ``length_matched``
    needs the uniform rows and the row lengths: :func:`hf_uniform.baselines.length_matched_subset`.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(30, 4))
        >>> [len(build_arm_indices(x, a, 10, 0)) for a in ("uniform", "random", "mixed", "full")]
        [10, 10, 10, 30]
    """
    from ..baselines import mixed_subset, random_subset
    from ..integration import nonzero_rows
    from ..spine import SelectConfig
    from ..steps import run_spine

    n = len(x)
    if arm == "full":
        return np.arange(n, dtype=np.int64)
    if arm == "random":
        return random_subset(n, k, seed=seed)
    if arm == "uniform":
        cfg = SelectConfig(k=k, metric=metric, drop_zero_vectors=True, seed=seed, progress=progress, method=method)
        return np.asarray(run_spine(x, cfg).selection.indices, dtype=np.int64)  # = select_uniform(x, config=cfg)
    if arm == "mixed":
        keep = nonzero_rows(x) if metric == "cosine" else np.arange(n)
        return keep[mixed_subset(x[keep], k, metric=metric, seed=seed, method=method)].astype(np.int64)
    if arm == "length_matched":
        raise UniformError("the length_matched arm needs row lengths and the uniform rows; "
                           "use hf_uniform.baselines.length_matched_subset")
    raise UniformError(f"unknown arm {arm!r}; choose from {ARMS}")


def arm_geometry(x: np.ndarray, idx: np.ndarray, *, metric: str = "cosine") -> dict[str, float]:
    """``h`` (minimum pairwise distance) and coverage radius of ``x[idx]`` within ``x`` (zero rows ignored).

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> arm_geometry(x, np.array([0, 1]))["h"]
        1.0
    """
    from ..integration import nonzero_rows
    from ..metrics import subset_stats

    if metric == "cosine":
        nz = nonzero_rows(x)
        idx = np.intersect1d(idx, nz)
        full = x[nz]
    else:
        full = x
    stats = subset_stats(x[idx], full, metric=metric)
    return {"h": stats["h"], "coverage_radius": stats["coverage_radius"],
            "mean_nn_distance": stats["mean_nn_distance"]}


def job_order(arms: Sequence[str], seeds: Sequence[int], order: str = "seed") -> list[tuple[str, int]]:
    """``(arm, seed)`` runs in the order they are trained.

    ``seed``: every arm of seed 0, then seed 1, ...; ``comparison``: uniform, random, length_matched and
    longest of every seed first, then the other arms (so an interrupted study still has paired seeds).

    Example:
        >>> job_order(["uniform", "random", "full"], [0, 1], "comparison")
        [('uniform', 0), ('random', 0), ('uniform', 1), ('random', 1), ('full', 0), ('full', 1)]
    """
    if order == "seed":
        return [(arm, seed) for seed in seeds for arm in arms]
    if order != "comparison":
        raise UniformError(f"run_order must be seed or comparison, got {order!r}")
    first = [a for a in arms if a in ("uniform", "random", "length_matched", "longest")]
    rest = [a for a in arms if a not in first]
    return [(a, s) for s in seeds for a in first] + [(a, s) for a in rest for s in seeds]
