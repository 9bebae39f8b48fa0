"""The one held-out split of the package: rows set aside before any selection.

``hf-uniform select --heldout N`` and the study (:mod:`hf_uniform.study`) both call :func:`split_heldout`:
the held-out rows are the first ``m`` entries of one seeded permutation of the ``n`` source rows. They depend
on ``n``, ``N`` and the seed only, never on ``k``; and a larger ``N`` with the same seed holds every row of a
smaller one (the permutation is cut further along).
"""

from __future__ import annotations

import numpy as np

from .errors import UniformError


def check_heldout_size(size: float) -> int | float:
    """The held-out size's form, before the data is read: a whole count >= 1 (``200`` or ``200.0``, as a typed
    config gives it) or a fraction in (0, 1).

    Example:
        >>> check_heldout_size(200.0), check_heldout_size(0.05)
        (200, 0.05)
    """
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise UniformError(f"the held-out size must be a count >= 1 or a fraction in (0, 1), got {size!r}")
    size = float(size)
    if not size > 0 or not np.isfinite(size):
        raise UniformError(f"the held-out size must be a count >= 1 or a fraction in (0, 1), got {size:g}")
    if size >= 1 and not size.is_integer():
        raise UniformError(f"the held-out size {size:g} is neither a whole count nor a fraction in (0, 1)")
    return int(size) if size >= 1 else size


def heldout_count(size: float, n: int) -> int:
    """Rows held out of ``n`` for ``size``: a count (>= 1) or a fraction in (0, 1) (rounded).

    Raises:
        UniformError: ``size`` is not positive, or leaves no held-out or no remaining row.

    Example:
        >>> heldout_count(0.1, 95), heldout_count(7, 95)
        (10, 7)
    """
    size = check_heldout_size(size)
    m = size if isinstance(size, int) else int(round(size * n))
    if not 0 < m < n:
        raise UniformError(f"held-out size {size:g} leaves {m} held-out and {n - m} remaining rows of {n}; "
                           "use a fraction in (0, 1) or a smaller count")
    return m


def split_heldout(n: int, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(heldout, rest)`` row indices of ``n`` rows; ``size`` is a count or a fraction in (0, 1).

    ``heldout`` = the first ``m`` entries of ``np.random.default_rng(seed).permutation(n)``, sorted.

    Raises:
        UniformError: the split would leave no held-out or no remaining rows.

    Example:
        >>> ho, rest = split_heldout(10, 0.2, seed=0)
        >>> len(ho), len(rest), set(ho) & set(rest)
        (2, 8, set())
        >>> set(split_heldout(10, 2, seed=0)[0]) <= set(split_heldout(10, 5, seed=0)[0])  # nested
        True
    """
    m = heldout_count(size, n)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:m]).astype(np.int64), np.sort(perm[m:]).astype(np.int64)
