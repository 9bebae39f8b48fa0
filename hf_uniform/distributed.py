"""Multi-process runs under ``torchrun`` / ``accelerate launch`` (NCCL on GPUs, gloo on CPUs): launching,
the exact distributed selection, and sharded embedding.

**Launching.** :func:`launched_distributed` tells whether a launcher asked for several processes
(``WORLD_SIZE > 1`` and ``RANK`` set); :func:`init_distributed` initialises the default process group from
that environment (``env://``; gloo for CPU tensors plus NCCL for CUDA ones when available) and leaves it
initialised; :func:`distributed_context` gives rank, world size and local rank (:class:`DistContext`).

**Selection** (explicit: ``maxmin_select(..., distributed=True)``; the CLI passes it when launched).
The rows are split into contiguous shards, one per rank (:func:`shard_bounds`). Each step every rank finds
the best row of its own shard, the ranks exchange ``(value, global index, vector)`` with one ``all_gather``
(:class:`TorchComm`, the :class:`~hf_uniform.engine.driver.Comm` of :func:`~hf_uniform.engine.driver.drive`)
and every rank picks the same winner: the largest value, ties to the lowest global index -- the
single-process rule (:func:`pick_winner`). The winner's vector travels with it, so no second collective is
needed. Every rank returns the full selection, equal to one process bit for bit.

**Embedding** (:func:`~hf_uniform.integration.embed` under a launcher): each rank embeds its contiguous
shard (:func:`shard_dataset`, ``datasets.distributed.split_dataset_by_node``), then :func:`gather_rows`
gives every rank the full matrix in row order; :func:`all_ranks_true`, :func:`barrier`,
:func:`local_main_first` and :func:`check_same_on_all_ranks` keep the ranks in step. These are thin
wrappers over accelerate: ranks come from ``accelerate.PartialState`` (which reads the launcher's
environment), the collectives are ``accelerate.utils.gather_object``, ``PartialState.wait_for_everyone`` and
``PartialState.local_main_process_first``. Only the per-step selection exchange (:class:`TorchComm`) stays
on raw ``torch.distributed``: one fixed-size ``all_gather`` per step, on the GPU without a host sync.

Without a launcher every embedding helper is a cheap no-op:

>>> ctx = distributed_context()
>>> ctx.world_size, gather_rows(np.ones((2, 3), np.float32), ctx).shape, shard_bounds(10, 3)
(1, (2, 3), [(0, 4), (4, 7), (7, 10)])
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UniformError

logger = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------- selection
def shard_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ``[lo, hi)`` row ranges, one per rank (the first ``n % world`` get one more).

    Example:
        >>> shard_bounds(5, 2)
        [(0, 3), (3, 5)]
    """
    base, extra = divmod(n, world)
    out, lo = [], 0
    for r in range(world):
        hi = lo + base + (1 if r < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def comm_device() -> Any:
    """Device for collective tensors: the current CUDA device under NCCL, the CPU under gloo/MPI.

    Example:
        >>> callable(comm_device)
        True
    """
    import torch
    import torch.distributed as dist

    backend = str(dist.get_backend()).lower()
    if "gloo" in backend or "mpi" in backend or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def pick_winner(table: Any) -> Any:
    """Row of ``table`` (``[key, global index, vector...]`` per rank) with the largest key, ties to the
    lowest index; entries with index < 0 are empty. Works on any device without a host sync.

    Example:
        >>> import torch
        >>> t = torch.tensor([[0.5, 7.0, 1.0], [0.5, 3.0, 2.0], [-math.inf, -1.0, 0.0]], dtype=torch.float64)
        >>> pick_winner(t)[1].item()
        3.0
    """
    import torch

    key = torch.where(table[:, 1] >= 0, table[:, 0], torch.full_like(table[:, 0], -math.inf))
    best = key.max()
    idx = torch.where(key == best, table[:, 1], torch.full_like(table[:, 1], math.inf))
    return table[torch.argmin(idx)]


class TorchComm:
    """The :class:`~hf_uniform.engine.driver.Comm` of a ``torch.distributed`` process group: one
    ``all_gather`` per greedy step.

    Raises:
        UniformError: no process group is initialised.

    Example:
        >>> TorchComm()
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: distributed=True needs an initialised torch.distributed process group; launch with torchrun or accelerate launch and call torch.distributed.init_process_group() (or hf_uniform.distributed.init_distributed()) first
    """

    def __init__(self) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise UniformError("distributed=True needs an initialised torch.distributed process group; launch "
                               "with torchrun or accelerate launch and call torch.distributed.init_process_group() "
                               "(or hf_uniform.distributed.init_distributed()) first")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def exchange(self, key: float, gidx: int, vec: np.ndarray | None, d: int) -> tuple[float, int, np.ndarray]:
        """All-gather every rank's candidate and return the winner ``(key, global index, float32 vector)``."""
        import torch

        dev = comm_device()
        row = torch.zeros(d + 2, dtype=torch.float64, device=dev)
        row[0] = key
        row[1] = gidx
        if gidx >= 0:
            row[2:] = torch.as_tensor(vec).to(device=dev, dtype=torch.float64)
        out = [torch.empty_like(row) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, row)
        win = pick_winner(torch.stack(out)).cpu()
        return float(win[0]), int(win[1]), win[2:].numpy().astype(np.float32)

    def max(self, value: float) -> float:
        """Largest ``value`` over the ranks."""
        import torch

        t = torch.tensor([value], dtype=torch.float64, device=comm_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on some rank."""
        return self.max(1.0 if flag else 0.0) > 0.5

    def gather_ints(self, values: list[int], width: int) -> list[list[int]]:
        """Every rank's list of at most ``width`` non-negative integers (its last ones)."""
        import torch

        row = torch.full((width,), -1, dtype=torch.int64, device=comm_device())
        vals = list(values)[-width:]
        if vals:
            row[:len(vals)] = torch.tensor(vals, dtype=torch.int64)
        out = [torch.empty_like(row) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, row)
        return [[int(v) for v in o.cpu().tolist() if v >= 0] for o in out]


# ------------------------------------------------------------------------------- launching and embedding
@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run.

    Attributes:
        rank: global rank (0 without a launcher).
        world_size: number of processes (1 without a launcher).
        local_rank: rank within the node (``LOCAL_RANK``; the global rank when unset).

    Example:
        >>> DistContext(1, 4, 1).enabled, DistContext(0, 1, 0).is_main
        (True, True)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on global rank 0."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """True on the first process of each node (writes node-local caches)."""
        return self.local_rank == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise UniformError(f"environment variable {name}={value!r} is not an integer; fix the launcher "
                           "settings") from err


def launched_distributed() -> bool:
    """True when a launcher asked for several processes (``WORLD_SIZE > 1`` with ``RANK`` set).

    Example:
        >>> launched_distributed()
        False
    """
    world = _env_int("WORLD_SIZE")
    return world is not None and world > 1 and _env_int("RANK") is not None


def init_distributed() -> None:
    """Initialise the default process group from the launcher's environment (``env://``).

    Uses gloo for CPU tensors plus NCCL for CUDA tensors when CUDA and NCCL are available (the CUDA device
    is set to ``LOCAL_RANK``), else gloo only. The group is left initialised for later steps.

    Raises:
        UniformError: ``MASTER_ADDR``/``MASTER_PORT`` are missing (run under ``torchrun`` or
            ``accelerate launch``).

    Example:
        >>> init_distributed()  # doctest: +SKIP
    """
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise UniformError(f"WORLD_SIZE>1 but {', '.join(missing)} not set; launch with torchrun or accelerate "
                           "launch, or unset WORLD_SIZE to embed in one process")
    backend = "gloo"
    if torch.cuda.is_available() and dist.is_nccl_available():
        local = _env_int("LOCAL_RANK") or 0
        torch.cuda.set_device(local % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend, init_method="env://")
    global _OWN_GROUP
    _OWN_GROUP = True
    logger.info("initialised torch.distributed (%s): rank %d of %d", backend, dist.get_rank(),
                dist.get_world_size())


_OWN_GROUP = False  # init_distributed set the process group up (so close_distributed may tear it down)


def close_distributed() -> None:
    """Destroy the process group :func:`init_distributed` set up (a group the caller made is left alone).

    The CLI calls this before it returns: a gloo group left alive at interpreter exit can abort a rank in
    teardown ("terminate called without an active exception", exit -6) after the work succeeded.

    Example:
        >>> close_distributed()  # nothing to do without a group of ours
    """
    global _OWN_GROUP
    if not _OWN_GROUP:
        return
    import torch.distributed as dist

    _OWN_GROUP = False
    if dist.is_initialized():
        dist.destroy_process_group()


def distributed_context(init: bool = True) -> DistContext:
    """Rank, world size and local rank of this process (from ``accelerate.PartialState``).

    Args:
        init: when the launcher's environment asks for several processes but ``torch.distributed`` is not
            initialised yet, initialise it (:func:`init_distributed`); with ``False`` return a
            single-process context instead.

    Example:
        >>> distributed_context()
        DistContext(rank=0, world_size=1, local_rank=0)
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if not (init and launched_distributed() and dist.is_available()):
            return DistContext()
        init_distributed()
    state = _state()
    rank, world = dist.get_rank(), dist.get_world_size()
    if (state.process_index, state.num_processes) == (rank, world):
        return DistContext(state.process_index, state.num_processes, state.local_process_index)
    # a process group set up by hand (init_process_group without the launcher's environment): the group is
    # the truth, accelerate only reads the environment
    return DistContext(rank, world, int(os.environ.get("LOCAL_RANK", rank)))


def _state() -> Any:
    """accelerate's ``PartialState`` over the process group that is already initialised (it reads ranks)."""
    try:
        from accelerate import PartialState
    except ImportError as err:  # pragma: no cover - accelerate is a core dependency
        from .errors import missing_extra

        raise missing_extra("multi-process runs need accelerate", "train") from err
    import torch

    # without CUDA accelerate only treats a launched run as multi-process when told it runs on CPUs
    return PartialState(cpu=not torch.cuda.is_available())


def shard_dataset(ds: Any, ctx: DistContext) -> Any:
    """This rank's contiguous shard of ``ds`` (``split_dataset_by_node``); ``ds`` itself for one process.

    Shards are in rank order and their sizes differ by at most one (ranks beyond the row count get an empty
    shard), so concatenating the ranks' shards gives ``ds`` back.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"i": list(range(5))})
        >>> shard_dataset(ds, DistContext(1, 2, 1))["i"][:]
        [3, 4]
    """
    if not ctx.enabled:
        return ds
    if len(ds) < ctx.world_size:  # fewer rows than ranks (datasets refuses): one row each, then empty shards
        return ds.select(range(ctx.rank, ctx.rank + 1) if ctx.rank < len(ds) else [])
    from datasets.distributed import split_dataset_by_node

    return split_dataset_by_node(ds, rank=ctx.rank, world_size=ctx.world_size)


def gather_rows(x: np.ndarray, ctx: DistContext | None = None) -> np.ndarray:
    """Concatenate every rank's ``(n_r, d)`` float32 block in rank order; every rank gets the result.

    Blocks may differ in length (and be empty); they travel with ``accelerate.utils.gather_object``, so the
    values are copied bit for bit.

    Raises:
        UniformError: the ranks' vectors have different dimensions.

    Example:
        >>> gather_rows(np.zeros((3, 2), np.float32)).shape
        (3, 2)
    """
    ctx = ctx or distributed_context(init=False)
    x = np.asarray(x, dtype=np.float32)
    if not ctx.enabled:
        return x
    _state()
    from accelerate.utils import gather_object

    parts = [np.asarray(p, dtype=np.float32) for p in gather_object([x])]
    dims = {p.shape[1] if p.ndim == 2 else -1 for p in parts if p.shape[0] > 0}
    if len(dims) > 1:
        raise UniformError(f"ranks produced vectors of different dimensions {sorted(dims)}; use the same "
                           "embedder and model on every rank")
    d = dims.pop() if dims else (x.shape[1] if x.ndim == 2 else 0)
    out = np.concatenate([p.reshape(p.shape[0], d) for p in parts]) if parts else np.zeros((0, d), np.float32)
    logger.debug("gathered %s rows from %d ranks", [p.shape[0] for p in parts], ctx.world_size)
    return out


def all_ranks_true(flag: bool, ctx: DistContext | None = None) -> bool:
    """True only if ``flag`` is true on every rank (a collective: every rank must call it).

    Example:
        >>> all_ranks_true(True)
        True
    """
    ctx = ctx or distributed_context(init=False)
    if not ctx.enabled:
        return bool(flag)
    state = _state()
    if state.num_processes == ctx.world_size:
        from accelerate.utils import gather_object

        return all(gather_object([bool(flag)]))
    import torch.distributed as dist

    flags: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(flags, bool(flag))
    return all(flags)


def barrier(ctx: DistContext | None = None) -> None:
    """Wait for every rank (``PartialState.wait_for_everyone``; no-op for one process).

    Example:
        >>> barrier()
    """
    ctx = ctx or distributed_context(init=False)
    if ctx.enabled:
        _state().wait_for_everyone()


@contextlib.contextmanager
def local_main_first(ctx: DistContext | None = None) -> Iterator[None]:
    """Run the block on each node's local rank 0 first, then on the other ranks
    (``PartialState.local_main_process_first``).

    Used to load (download or distil) a model into a shared cache once per node before the other ranks
    read it.

    Example:
        >>> with local_main_first():
        ...     pass
    """
    ctx = ctx or distributed_context(init=False)
    if not ctx.enabled:
        yield
        return
    with _state().local_main_process_first():
        yield


def check_same_on_all_ranks(probe: np.ndarray, ctx: DistContext | None = None, *, atol: float = 1e-4,
                            what: str = "embedder") -> None:
    """Raise unless every rank computed the same ``probe`` vectors as rank 0 (within ``atol``).

    Guards against an embedder that differs between ranks (e.g. Word2Vec trained differently), which would
    silently mix incompatible vectors.

    Raises:
        UniformError: the ranks disagree.

    Example:
        >>> check_same_on_all_ranks(np.ones((2, 3), np.float32))
    """
    ctx = ctx or distributed_context(init=False)
    if not ctx.enabled:
        return
    probe = np.asarray(probe, dtype=np.float32)
    allp = gather_rows(probe, ctx).reshape(ctx.world_size, *probe.shape)
    diff = float(np.abs(allp - allp[0]).max()) if allp.size else 0.0
    if not np.isfinite(diff) or diff > atol:
        raise UniformError(f"the {what} gives different vectors on different ranks (max difference {diff:.3g}); "
                           "use identical library versions and deterministic settings on every rank")


__all__ = ["DistContext", "TorchComm", "all_ranks_true", "barrier", "check_same_on_all_ranks", "comm_device",
           "distributed_context", "gather_rows", "init_distributed", "launched_distributed", "local_main_first",
           "pick_winner", "shard_bounds", "shard_dataset"]
