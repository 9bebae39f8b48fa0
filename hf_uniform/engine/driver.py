"""The greedy loop, once: start rows, the tie rule across ranks, progress, checkpoints and resume.

:func:`drive` runs greedy max-min (farthest-first traversal) on any :class:`Engine` -- ``plain``/``sweep``
(:class:`~hf_uniform.engine.sweep.PassEngine`) or ``lazy`` (:class:`~hf_uniform.engine.lazy.LazyEngine`) --
over one shard of the rows, and exchanges candidates with the other shards through a :class:`Comm`
(:class:`LocalComm` for one process, :class:`hf_uniform.distributed.TorchComm` for ``torch.distributed``;
passed in explicitly). Each step:

1. the engine proposes its best row: the given start row while there are any, else the unchosen row of its
   shard with the largest exact min-distance to the centres, ties to the lowest row index;
2. the ranks agree on the winner (largest value, ties to the lowest global index) and every rank receives
   its prepared vector;
3. every engine adds that centre.

So every method, device, shard count and streaming mode makes the picks of
:func:`hf_uniform.engine.reference.reference_select`. In one process an engine with a compiled bulk loop
(:class:`BulkEngine`, the lazy engine) runs many steps per call between checkpoints instead.

Example:
    >>> import numpy as np, torch
    >>> from hf_uniform.engine.sweep import pass_engine
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    >>> run = drive(pass_engine(x, None, metric="euclidean", k=3, device=torch.device("cpu")), k=3, starts=[0])
    >>> run.indices, run.radii.tolist(), run.coverage
    ([0, 3, 1], [inf, 5.0, 1.0], 0.10000000149011612)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    """One shard's greedy state. ``local`` rows are indices into the shard; ``-1`` means "not mine"."""

    n: int  #: rows in this shard
    d: int  #: dimensions

    def best(self) -> tuple[float, int]:
        """``(exact value, local row)`` of the next pick of this shard; ``(-inf, -1)`` when none is left."""
        ...

    def vector(self, local: int) -> np.ndarray:
        """The prepared float32 vector of a local row."""
        ...

    def value_of(self, local: int) -> float:
        """Exact min-distance of a local row to the centres so far (``-inf`` once chosen)."""
        ...

    def add(self, vec: np.ndarray, local: int, radius: float) -> None:
        """Add the next centre (its vector; its local row or -1; the radius it was chosen at)."""
        ...

    def coverage(self) -> float:
        """Largest exact min-distance over this shard's unchosen rows (``-inf`` when none)."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]:
        """Exact checkpoint state: ``m`` (min-distance of each row over its first ``ep`` centres) and ``ep``."""
        ...

    def load_state(self, m: np.ndarray, ep: np.ndarray, centres: np.ndarray, local_rows: np.ndarray,
                   radii: np.ndarray) -> None:
        """Restore :meth:`state_dict` of a run that had chosen ``centres`` (prepared vectors)."""
        ...

    def exclude(self, local: np.ndarray) -> None:
        """Never pick these local rows (their group is full); they are not centres."""
        ...


@runtime_checkable
class BulkEngine(Engine, Protocol):
    """An engine that can run many single-process steps in one call (compiled loop)."""

    def run(self, t_end: int, should_stop: Callable[[], bool] | None = None,
            on_block: Callable[[int], None] | None = None, radius: float | None = None) -> int:
        """Steps until ``t_end`` centres (or until ``should_stop()`` at a block boundary, or until the best
        value is ``<= radius``: then ``stopped`` is true); returns the count."""
        ...

    def selected(self) -> tuple[np.ndarray, np.ndarray]:
        """``(local rows, radii)`` of every centre so far."""
        ...


class Comm(Protocol):
    """How the shards agree on each pick."""

    rank: int
    world_size: int

    def exchange(self, key: float, gidx: int, vec: np.ndarray | None, d: int) -> tuple[float, int, np.ndarray]:
        """Every rank's candidate ``(key, global index or -1, vector)`` -> the winner (largest key, ties to
        the lowest index), with its float32 vector."""
        ...

    def max(self, value: float) -> float:
        """Largest ``value`` over the ranks."""
        ...

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on some rank."""
        ...

    def gather_ints(self, values: list[int], width: int) -> list[list[int]]:
        """Every rank's short list of non-negative integers."""
        ...


class LocalComm:
    """The single-process :class:`Comm`: every collective is the identity.

    Example:
        >>> LocalComm().exchange(0.5, 3, np.zeros(2, np.float32), 2)[:2]
        (0.5, 3)
    """

    rank = 0
    world_size = 1

    def exchange(self, key: float, gidx: int, vec: np.ndarray | None, d: int) -> tuple[float, int, np.ndarray]:
        return key, gidx, np.asarray(vec, dtype=np.float32)

    def max(self, value: float) -> float:
        return value

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def gather_ints(self, values: list[int], width: int) -> list[list[int]]:
        return [list(values[-width:])]


@dataclass
class Run:
    """What :func:`drive` returns: global ``indices`` in selection order, their ``radii`` (float64, ``inf``
    first), the ``coverage`` radius over every rank's unchosen rows (``-inf`` when none is left), and the step a
    resumed run continued from."""

    indices: list[int]
    radii: np.ndarray
    coverage: float
    resumed_from: int | None = None


def drive(engine: Engine, *, k: int, starts: Sequence[int], lo: int = 0, comm: Comm | None = None,
          checkpointer: Any = None, resume: bool = False, centres: Callable[[np.ndarray], np.ndarray] | None = None,
          progress: bool = False, nearest: bool = False, radius: float | None = None,
          groups: np.ndarray | None = None, quotas: np.ndarray | None = None) -> Run:
    """Greedy selection of ``k`` rows on ``engine`` (this rank's shard: global rows ``lo .. lo + engine.n``).

    Args:
        engine: an :class:`Engine` over this rank's shard.
        k: total number of centres.
        starts: the first centres (global row indices), in order.
        lo: global index of this shard's first row.
        comm: how the ranks agree on each pick (default :class:`LocalComm`).
        checkpointer: a :class:`~hf_uniform.checkpoint.Checkpointer`; its cadence (steps or seconds) decides
            when the state is saved, and it is always saved at the end.
        resume: continue from the newest checkpoint every rank has (start fresh when there is none).
        centres: ``centres(global ids) -> prepared float32 rows``: the centres of a resumed run.
        progress: show a tqdm bar.
        nearest: pick the *nearest* unchosen row instead (the min-min baseline; one step at a time).
        radius: stop before a step whose best value is ``<= radius`` (start rows are always taken).
        groups: group code of every *global* row (``0 .. len(quotas) - 1``): a row of a full group is never
            picked (:mod:`hf_uniform.engine.rules`).
        quotas: the most rows of each group code.

    The run also stops, with fewer than ``k`` rows, when no row can be picked any more.
    """
    from tqdm.auto import tqdm

    comm = comm or LocalComm()
    ck = checkpointer
    hi = lo + engine.n
    indices: list[int] = []
    radii: list[float] = []
    saved = _load(ck, comm) if (ck is not None and resume) else None
    if ck is not None and saved is None and not resume and ck.steps():
        logger.warning("resume=False: overwriting the checkpoints in %s", ck.dir)
    if saved is not None:
        g = saved["indices"]
        engine.load_state(saved["m"], saved["ep"], centres(g), np.where((g >= lo) & (g < hi), g - lo, -1),
                          saved["radii"])
        indices, radii = g.tolist(), saved["radii"].tolist()

    def save(t: int) -> None:
        st = engine.state_dict()
        ck.save(t, np.asarray(indices, dtype=np.int64), np.asarray(radii, dtype=np.float64), st["m"], st["ep"])

    quota = _Quota(engine, groups, quotas, lo, hi) if groups is not None else None
    if quota is not None:
        quota.count(indices)
    bar = tqdm(total=k, initial=len(indices), desc="max-min select", unit="row", disable=not progress)
    try:
        bulk = comm.world_size == 1 and not nearest and quota is None and isinstance(engine, BulkEngine)
        while len(indices) < k:
            j = len(indices)
            if bulk and j >= len(starts):
                if _bulk(engine, k, lo, ck, bar, indices, radii, save, radius):
                    break
                continue
            if j < len(starts):  # a start row: its owner proposes it, the others nothing
                local = starts[j] - lo if lo <= starts[j] < hi else -1
                val = engine.value_of(local) if local >= 0 else -math.inf
                sign = 1.0
            else:
                val, local = engine.best()
                sign = -1.0 if nearest else 1.0
            key, g, vec = comm.exchange(sign * val, lo + local if local >= 0 else -1,
                                        engine.vector(local) if local >= 0 else None, engine.d)
            if j >= len(starts) and (g < 0 or key == -math.inf or (radius is not None and key <= radius)):
                break  # every rank saw the same winner: nothing left to pick, or the radius is reached
            engine.add(vec, g - lo if lo <= g < hi else -1, sign * key)
            indices.append(int(g))
            radii.append(sign * key)
            if quota is not None:
                quota.count(indices[-1:])
            bar.update(1)
            if ck is not None and (len(indices) == k or _due(ck, len(indices), comm)):
                save(len(indices))
        if ck is not None and len(indices) < k and ck.last_step != len(indices):
            save(len(indices))  # stopped early: the final state
    finally:
        bar.close()
    return Run(indices, np.asarray(radii, dtype=np.float64), comm.max(engine.coverage()),
               None if saved is None else saved["step"])


class _Quota:
    """Group quotas of a run: counts the picks per group and excludes the rows of each group that fills."""

    def __init__(self, engine: Engine, groups: np.ndarray, quotas: np.ndarray, lo: int, hi: int):
        self.engine, self.codes, self.quotas = engine, np.asarray(groups, dtype=np.int64), np.asarray(quotas)
        self.local = self.codes[lo:hi]
        self.taken = np.zeros(len(self.quotas), dtype=np.int64)
        self.full = np.zeros(len(self.quotas), dtype=bool)
        self._exclude(np.flatnonzero(self.quotas <= 0))

    def count(self, picked: Sequence[int]) -> None:
        for g in picked:
            self.taken[self.codes[g]] += 1
        self._exclude(np.flatnonzero(~self.full & (self.taken >= self.quotas)))

    def _exclude(self, groups: np.ndarray) -> None:
        if groups.size:
            self.full[groups] = True
            rows = np.flatnonzero(np.isin(self.local, groups))
            if rows.size:
                self.engine.exclude(rows)


def _bulk(engine: Any, k: int, lo: int, ck: Any, bar: Any, indices: list[int], radii: list[float],
          save: Callable[[int], None], radius: float | None = None) -> bool:
    """One compiled run of a :class:`BulkEngine` up to ``k`` or the next checkpoint, then the checkpoint;
    returns whether the run stopped for good (``radius`` reached, or no row left)."""
    t0 = len(indices)
    at = [t0]

    def on_block(t: int) -> None:
        at[0] = t
        bar.update(t - bar.n)

    target = k if ck is None or ck.every is None else min(k, ck.last_step + ck.every)
    t = engine.run(max(target, t0 + 1), should_stop=(lambda: ck.due(at[0])) if ck is not None else None,
                   on_block=on_block, radius=radius)
    local, rad = engine.selected()
    indices.extend((local[t0:t] + lo).tolist())
    radii.extend(rad[t0:t].tolist())
    stopped = bool(getattr(engine, "stopped", False))
    if ck is not None and (ck.due(t) or t == k) and not stopped:
        save(t)
    return stopped


def _due(ck: Any, t: int, comm: Comm) -> bool:
    if comm.world_size == 1 or ck.seconds is None:
        return ck.due(t)
    return t % 64 == 0 and comm.any(ck.due(t))  # time-based: the ranks must agree


def _load(ck: Any, comm: Comm) -> dict[str, Any] | None:
    """The newest checkpoint every rank has (distributed runs agree on the step first)."""
    if comm.world_size == 1:
        return ck.load()
    mine = ck.steps()
    common = set(mine)
    for other in comm.gather_ints(mine, 2):
        common &= set(other)
    if not common:
        if comm.any(bool(mine)):
            logger.warning("ranks share no checkpoint step; starting over")
        return None
    return ck.load(step=max(common))


__all__ = ["BulkEngine", "Comm", "Engine", "LocalComm", "Run", "drive"]
