"""Selection rules on top of the greedy: a seeded random tie-break, per-group quotas and a stopping radius.

Each rule is defined once here and in the float64 oracle (:func:`hf_uniform.engine.reference.reference_select`),
and every engine runs it exactly:

* ``tie_break="random"``: exact ties go to the row with the lowest *priority* of a seeded random permutation
  (:func:`tie_priority`) instead of the lowest index. The engines run on a permuted view of the rows
  (:class:`PermutedRows`, nothing copied) with their lowest-index rule, and the indices are mapped back.
* ``group_by`` with quotas: a row whose group already holds its quota is never picked; its distances still
  count for nobody (it is not a centre). Quotas are proportional to the group sizes by default (largest
  remainder, :func:`resolve_quotas`) or given per group.
* ``radius``: stop as soon as the largest min-distance of the rows that can still be picked is ``<= radius``
  (the k-center coverage target); ``k`` is then the number of rows picked.

Example:
    >>> import numpy as np
    >>> resolve_quotas(np.array(["a", "a", "a", "b"]), 2)[1]
    {'a': 2, 'b': 0}
    >>> tie_priority(4, seed=0).tolist()
    [2, 0, 3, 1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UniformError

TIE_BREAKS = ("lowest", "random")


def tie_permutation(n: int, seed: int | None) -> np.ndarray:
    """The seeded permutation of ``tie_break="random"``: the engines see row ``perm[j]`` at position ``j``.

    Example:
        >>> tie_permutation(4, 0).tolist()
        [1, 3, 0, 2]
    """
    return np.random.default_rng(None if seed is None else [int(seed), 21]).permutation(n).astype(np.int64)


def tie_priority(n: int, seed: int | None) -> np.ndarray:
    """Priority of every row under ``tie_break="random"`` (lower wins a tie): its position in
    :func:`tie_permutation`.

    Example:
        >>> tie_priority(4, 0).tolist()
        [2, 0, 3, 1]
    """
    perm = tie_permutation(n, seed)
    pri = np.empty(n, dtype=np.int64)
    pri[perm] = np.arange(n)
    return pri


class PermutedRows:
    """A read-only view of a 2-D array-like with its rows in the order ``perm`` (nothing copied): row ``j``
    of the view is row ``perm[j]`` of ``raw``. The engines read it through
    :func:`~hf_uniform.engine.store.slice_rows` / :func:`~hf_uniform.engine.store.take_rows`.

    Example:
        >>> v = PermutedRows(np.arange(6).reshape(3, 2), np.array([2, 0, 1]))
        >>> v.shape, v[np.array([0, 1])].tolist(), v[1:3].tolist()
        ((3, 2), [[4, 5], [0, 1]], [[0, 1], [2, 3]])
    """

    def __init__(self, raw: Any, perm: np.ndarray):
        from .store import shape_of

        self.raw, self.perm = raw, np.asarray(perm, dtype=np.int64)
        self.shape = shape_of(raw)
        self.dtype = getattr(raw, "dtype", np.dtype(np.float32))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        from .store import take_rows

        ids = self.perm[idx]
        ids = np.atleast_1d(ids)
        order = np.argsort(ids, kind="stable")  # read in ascending order (memmaps), then restore
        out = np.asarray(take_rows(self.raw, ids[order]))
        res = np.empty_like(out)
        res[order] = out
        return res


def group_codes(group_by: Any, n: int) -> tuple[np.ndarray, list[Any]]:
    """``(code per row, labels)`` of a group label per row (any hashable values; ``None`` is a label too).

    Example:
        >>> codes, labels = group_codes(["x", "y", "x"], 3)
        >>> codes.tolist(), labels
        ([0, 1, 0], ['x', 'y'])
    """
    labels_in = list(group_by.tolist() if hasattr(group_by, "tolist") else group_by)
    if len(labels_in) != n:
        raise UniformError(f"group_by has {len(labels_in)} labels for {n} rows; pass one group label per row")
    index: dict[Any, int] = {}
    codes = np.empty(n, dtype=np.int64)
    for i, lab in enumerate(labels_in):
        try:
            codes[i] = index.setdefault(lab, len(index))
        except TypeError as err:
            raise UniformError(f"group labels must be hashable (str, int, ...), got {type(lab).__name__} at "
                               f"row {i}") from err
    return codes, list(index)


def resolve_quotas(group_by: Any, k: int | None, quotas: Mapping[Any, int] | None = None,
                   n: int | None = None) -> tuple[np.ndarray, dict[Any, int], np.ndarray]:
    """``(group code per row, {label: quota}, quota per code)``.

    ``quotas=None``: proportional to the group sizes, ``k`` rows in all (largest remainder: each group gets
    ``floor(k * size / n)`` and the rows left go to the largest remainders, ties to the first label seen).
    A mapping gives each group's quota (labels it omits get 0; at most the group's size); ``k`` is then
    not used (the caller checks it against their sum).

    Example:
        >>> codes, q, per = resolve_quotas([0, 0, 1, 1, 1, 2], 3)
        >>> q
        {0: 1, 1: 2, 2: 0}
        >>> resolve_quotas([0, 1], None, {0: 1, 1: 1})[1]
        {0: 1, 1: 1}
    """
    n = len(group_by) if n is None else n
    codes, labels = group_codes(group_by, n)
    sizes = np.bincount(codes, minlength=len(labels))
    if quotas is None:
        if k is None:
            raise UniformError("group_by without quotas needs k (the rows to share out proportionally)")
        exact = k * sizes / n
        per = np.floor(exact).astype(np.int64)
        left = int(k - per.sum())
        order = sorted(range(len(labels)), key=lambda g: (-(exact[g] - per[g]), g))
        for g in order[:left]:
            per[g] += 1
    else:
        if not isinstance(quotas, Mapping):
            raise UniformError(f"quotas must be a mapping {{group label: rows}}, got {type(quotas).__name__}")
        unknown = [lab for lab in quotas if lab not in labels]
        if unknown:
            raise UniformError(f"quotas name groups that no row has: {unknown[:5]}; the groups are {labels[:10]}")
        per = np.zeros(len(labels), dtype=np.int64)
        for g, lab in enumerate(labels):
            q = quotas.get(lab, 0)
            if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 0:
                raise UniformError(f"quota of group {lab!r} must be a non-negative int, got {q!r}")
            if q > sizes[g]:
                raise UniformError(f"quota {q} of group {lab!r} exceeds its {sizes[g]} rows; lower it")
            per[g] = int(q)
    return codes, {lab: int(per[g]) for g, lab in enumerate(labels)}, per


def check_rule_args(tie_break: str, radius: float | None) -> None:
    """Validate ``tie_break`` and ``radius`` (one-line :class:`~hf_uniform.errors.UniformError`).

    Example:
        >>> check_rule_args("lowest", 0.1)
        >>> check_rule_args("first", None)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: tie_break must be 'lowest' or 'random', got 'first'
    """
    if tie_break not in TIE_BREAKS:
        raise UniformError(f"tie_break must be 'lowest' or 'random', got {tie_break!r}")
    if radius is not None:
        if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)) \
                or not np.isfinite(radius) or radius < 0:
            raise UniformError(f"radius must be a finite distance >= 0, got {radius!r}")


def start_with_groups(starts: Sequence[int], codes: np.ndarray, per: np.ndarray, drawn: bool,
                      seed: int | None) -> list[int]:
    """Start rows checked against the quotas; a seeded random start (``drawn``) is re-drawn among the rows
    whose group has a positive quota.

    Example:
        >>> start_with_groups([0], np.array([0, 0, 1]), np.array([0, 1]), True, 0)
        [2]
    """
    if drawn:
        ok = np.flatnonzero(per[codes] > 0)
        if ok.size == 0:
            raise UniformError("every group's quota is 0: nothing can be picked")
        return [int(ok[np.random.default_rng(seed).integers(ok.size)])]
    used = np.bincount(codes[np.asarray(starts, dtype=np.int64)], minlength=per.size)
    over = np.flatnonzero(used > per)
    if over.size:
        raise UniformError(f"start rows put {int(used[over[0]])} rows in a group whose quota is {int(per[over[0]])}; "
                           "raise that quota or pass other start rows")
    return list(starts)


__all__ = ["TIE_BREAKS", "PermutedRows", "check_rule_args", "group_codes", "resolve_quotas", "start_with_groups",
           "tie_permutation", "tie_priority"]
