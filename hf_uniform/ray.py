"""Beyond one machine: embed and select on a Ray cluster with Ray Data (``pip install 'hf-uniform[ray]'``).

* :func:`embed_ray` adds the fixed-size float32 embedding column to a ``ray.data.Dataset`` with
  ``map_batches`` over an actor pool: one model per actor (``num_gpus=1`` puts each on a GPU). A corpus-fitted
  embedder (the paper's Word2Vec) is fitted once, on the driver, and shipped to the actors, so every row is
  embedded in the same space. Row ``i`` gets the vector ``ds.map(embedder, batched=True)`` gives it: bit for
  bit for Word2Vec and static (model2vec) models; for transformer models up to float rounding (~1e-7, the
  padding within a batch depends on which rows share it).
* :func:`select_uniform_ray` runs the two-round composable core-set of :func:`hf_uniform.coreset_select`:
  greedy max-min on every contiguous shard in parallel Ray tasks, then greedy on the union of the shard
  selections in one task. With the same shards it returns exactly what ``coreset_select(x, k, shards=S)``
  returns on one machine (same per-shard seeds ``seed + i``, same union order, same second-round start).
  Only ``shards * k_per_shard`` vectors (with their row numbers) travel to the second round; no task holds
  more than one shard. The chosen rows come back in greedy order with ``uniform_rank`` and
  ``uniform_min_distance``, as :func:`hf_uniform.filter_uniform` returns them.
* :func:`read_input` reads a folder of Parquet / JSON Lines files with Ray's readers, or converts a
  ``datasets.Dataset`` (``ray.data.from_huggingface``).

Row order is the dataset's order: :func:`select_uniform_ray` sets ``preserve_order`` on the dataset's Ray
``DataContext`` while it runs, so row ``i`` (and so shard ``i``) means the same thing on every run;
:func:`embed_ray` sets it on the context of the dataset it returns (which Ray shares with its source).

Use ``torchrun`` (``hf_uniform.distributed``) for the *exact* greedy selection on the GPUs of one node; use
Ray when the pool or its embedding outgrows one machine and the core-set guarantees suffice (see
:mod:`hf_uniform.coreset`: coverage within 4x, ``h`` within 6x of the optimum in the worst case, within a few
percent of the exact greedy on real data).

Example:
    >>> import numpy as np, ray
    >>> x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    >>> res = select_uniform_ray(ray.data.from_numpy(x), 5, shards=2, embedding_column="data", progress=False)
    >>> res.selection.indices.tolist() == coreset_select(x, 5, shards=2).indices.tolist()
    True
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_uniform.coreset import coreset_select  # noqa: F401  (the single-machine reference, used in docs)
from hf_uniform.embed import Embedder, resolve_embedder
from hf_uniform.errors import UniformError
from hf_uniform.integration import DISTANCE_COLUMN, RANK_COLUMN
from hf_uniform.selection import Selection

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hf-uniform[ray]'"
_PACKAGED_BUILDERS = {None, "", "json", "parquet", "csv", "text", "arrow", "generator", "pandas", "webdataset"}


def _ray() -> Any:
    """The real ``ray`` package (this module is ``hf_uniform.ray``; absolute imports never resolve to it)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise UniformError(f"the Ray backend needs Ray Data; {INSTALL_HINT}") from err
    return ray


def _raise_cause(err: Exception) -> None:
    """Re-raise the UniformError inside a RayTaskError with its own one-line message."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, UniformError):
        raise UniformError(str(cause)) from None
    raise err


def _get(refs: Any) -> Any:
    ray = _ray()
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        _raise_cause(err)


_REMOTE: dict[str, Any] = {}


def _remote(fn: Any) -> Any:
    """``ray.remote(fn)``, made once per function (defining remote functions needs ray imported)."""
    if fn.__name__ not in _REMOTE:
        _REMOTE[fn.__name__] = _ray().remote(fn)
    return _REMOTE[fn.__name__]


# -- connecting ---------------------------------------------------------------------------------------

def init_ray(address: str | None = "local", *, num_cpus: int | None = None, quiet: bool = False) -> bool:
    """Start a local Ray instance (``"local"``) or join a cluster (``"auto"``, ``"ray://host:10001"``, ...).

    Reuses an instance this process is already connected to. Returns ``True`` when this call started or
    joined one (the caller then calls ``ray.shutdown()`` when done).

    Example:
        >>> init_ray("local")  # the tests' instance is already running
        False
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING if quiet else logging.INFO,
                              "log_to_driver": not quiet}
    if address in (None, "", "local"):
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise UniformError(f"cannot join the Ray cluster at {address!r} ({err}); start it with `ray start "
                           "--head` or pass --ray local") from None
    return True


def cluster_info() -> dict[str, Any]:
    """Nodes, CPUs and GPUs of the connected Ray cluster, and the Ray version (for ``selection.json``).

    Example:
        >>> sorted(cluster_info())
        ['cpus', 'gpus', 'nodes', 'object_store_bytes', 'ray']
    """
    ray = _ray()
    res = ray.cluster_resources()
    return {"nodes": sum(1 for nd in ray.nodes() if nd.get("Alive")), "cpus": int(res.get("CPU", 0)),
            "gpus": int(res.get("GPU", 0)), "object_store_bytes": int(res.get("object_store_memory", 0)),
            "ray": ray.__version__}


@contextmanager
def _ordered(ds: Any, progress: bool = True) -> Iterator[None]:
    """Keep the block order while ``ds`` executes, with or without Ray Data's progress bars (both settings of
    the dataset's ``DataContext`` are restored afterwards)."""
    ctx = ds.context
    opts = ctx.execution_options
    old = opts.preserve_order, ctx.enable_progress_bars
    opts.preserve_order = True
    if not progress:
        ctx.enable_progress_bars = False
    try:
        yield
    finally:
        opts.preserve_order, ctx.enable_progress_bars = old


# -- reading ------------------------------------------------------------------------------------------

def from_dataset(ds: Any, *, blocks: int | None = None) -> Any:
    """A ``datasets.Dataset`` as a ``ray.data.Dataset`` with the same rows, order and Arrow types.

    An unmodified Hub dataset goes through ``ray.data.from_huggingface`` (which reads the Hub's Parquet
    files in parallel); a local or transformed one is handed over as its Arrow table (what
    ``from_huggingface`` falls back to, without its Hub lookup), split into ``blocks`` blocks
    (default: about 2 per CPU of the cluster).

    Example:
        >>> from datasets import Dataset
        >>> from_dataset(Dataset.from_dict({"a": [1, 2, 3]}), blocks=2).take_all()
        [{'a': 1}, {'a': 2}, {'a': 3}]
    """
    import os

    import datasets

    ray = _ray()
    if not isinstance(ds, datasets.Dataset):
        raise UniformError(f"expected a datasets.Dataset, got {type(ds).__name__}; pass a split, e.g. ds['train']")
    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if blocks is None:
        blocks = min(len(ds), max(1, 2 * int(ray.cluster_resources().get("CPU", 1))))
    hub = ds.info.dataset_name not in _PACKAGED_BUILDERS and os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "")
    if hub:
        return ray.data.from_huggingface(ds, override_num_blocks=blocks)
    return ray.data.from_arrow(ds.with_format("arrow")[:], override_num_blocks=blocks)


def read_input(source: Any, *, split: str = "train", blocks: int | None = None) -> Any:
    """Open ``source`` as a ``ray.data.Dataset``.

    ``source`` is a folder of ``.parquet`` files (``ray.data.read_parquet``), a folder of ``.jsonl``/``.json``
    files (``ray.data.read_json``), a ``datasets.Dataset``, or anything :func:`hf_uniform.io.load_input`
    reads (a file, a ``save_to_disk`` folder, a Hub id), converted with :func:`from_dataset`. Files in a
    folder are read in sorted path order.

    Example:
        >>> from datasets import Dataset
        >>> read_input(Dataset.from_dict({"a": [1, 2]})).count()
        2
    """
    import datasets

    ray = _ray()
    if isinstance(source, datasets.Dataset):
        return from_dataset(source, blocks=blocks)
    path = Path(source)
    if path.is_dir() and not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        parquet = [str(p) for p in files if p.suffix == ".parquet"]
        jsonl = [str(p) for p in files if p.suffix in (".jsonl", ".json")]
        if parquet and jsonl:
            raise UniformError(f"{path} holds both Parquet and JSON files; point at a folder of one kind")
        if parquet:
            return ray.data.read_parquet(parquet, override_num_blocks=blocks)
        if jsonl:
            return ray.data.read_json(jsonl, lines=True, override_num_blocks=blocks) \
                if _accepts_lines(ray) else ray.data.read_json(jsonl, override_num_blocks=blocks)
        raise UniformError(f"{path} holds no .parquet or .jsonl files (nor a save_to_disk dataset)")
    from hf_uniform.io import load_input

    return from_dataset(load_input(source, split=split), blocks=blocks)


def _accepts_lines(ray: Any) -> bool:
    import inspect

    return "lines" in inspect.signature(ray.data.read_json).parameters


# -- embedding ----------------------------------------------------------------------------------------

def _batch_columns(table: Any, columns: Sequence[str]) -> dict[str, list[Any]]:
    return {c: table.column(c).to_pylist() for c in columns}


class _EmbedActor:
    """One embedder per actor; turns a pyarrow batch into the batch plus a fixed-size float32 column."""

    def __init__(self, embedder: Any, columns: Sequence[str]):
        ray = _ray()
        self.emb = ray.get(embedder) if isinstance(embedder, ray.ObjectRef) else embedder
        self.emb.prepare()
        self.columns = list(columns)

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        vecs = np.ascontiguousarray(self.emb.encode(self.emb.texts(_batch_columns(table, self.columns))),
                                    dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != table.num_rows:
            raise UniformError(f"{type(self.emb).__name__} returned shape {vecs.shape} for {table.num_rows} rows")
        col = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), type=pa.float32()), vecs.shape[1])
        name = self.emb.output_column
        if name in table.column_names:
            return table.set_column(table.column_names.index(name), name, col)
        return table.append_column(name, col)


def _iter_texts(ds: Any, emb: Embedder, columns: Sequence[str], batch_size: int) -> Iterator[str]:
    for table in ds.select_columns(list(columns)).iter_batches(batch_size=batch_size, batch_format="pyarrow"):
        yield from emb.texts(_batch_columns(table, columns))


def _shippable(emb: Embedder) -> Embedder:
    """What goes to the actors: fitted/distilled models travel; a named sentence-transformers model is
    loaded by each actor itself (on its own GPU)."""
    import copy

    from hf_uniform.embed import SentenceTransformerEmbedder

    if isinstance(emb, SentenceTransformerEmbedder) and not emb._in_memory:
        out = copy.copy(emb)
        out._model = out._pool = out._finalizer = None
        return out
    emb.prepare()  # Word2Vec: nothing; model2vec: load (or distil once) here rather than on every actor
    return emb


def embed_ray(ds: Any, embedder: str | Embedder | None = None, *, text_columns: Sequence[str] | str | None = None,
              template: str | None = None, batch_size: int = 1000, concurrency: int | tuple[int, int] | None = None,
              num_gpus: float | None = None, num_cpus: float | None = None) -> Any:
    """Add the embedding column (Arrow fixed-size float32 list) to a ``ray.data.Dataset``, lazily.

    Batches go through ``map_batches`` over an actor pool, one embedder per actor. An embedder that learns
    from the corpus (Word2Vec) and is not fitted yet is fitted first on the driver, on the texts of ``ds``
    in row order (the same model ``embedder.fit(hf_dataset)`` trains), then shipped to the actors.

    Args:
        ds: a ``ray.data.Dataset`` (see :func:`read_input`).
        embedder: ``"w2v"`` (default), ``"st:MODEL"``, ``"m2v:MODEL"``, ``"m2v-distill:ST_MODEL"`` or an
            :class:`~hf_uniform.embed.Embedder` (fitted or not).
        text_columns: columns whose text is embedded (when ``embedder`` is a spec).
        template: a ``str.format`` template over columns (when ``embedder`` is a spec).
        batch_size: rows per batch handed to an actor.
        concurrency: actors in the pool: a number, or ``(min, max)`` to autoscale (default ``(1, CPUs)``,
            or ``(1, GPUs)`` with ``num_gpus``).
        num_gpus: GPUs per actor (e.g. ``1`` for sentence-transformers on a GPU cluster).
        num_cpus: CPUs per actor (default 1).

    Returns:
        The lazy dataset with the embedder's ``output_column`` added (``"embedding"`` by default), rows in
        the order of ``ds``.

    Example:
        >>> from datasets import Dataset
        >>> hf = Dataset.from_dict({"text": ["a b", "b c", "c d"]})
        >>> out = embed_ray(from_dataset(hf), "w2v", concurrency=1).take_all()  # doctest: +SKIP
        >>> len(out), len(out[0]["embedding"])  # doctest: +SKIP
        (3, 300)
    """
    ray = _ray()
    if batch_size < 1:
        raise UniformError(f"batch_size must be at least 1, got {batch_size}")
    if concurrency is not None:
        lo, hi = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
        if not 1 <= lo <= hi:
            raise UniformError(f"concurrency must be a number of actors >= 1 or (min, max), got {concurrency!r}")
    emb = resolve_embedder(embedder, text_columns=text_columns, template=template) \
        if not isinstance(embedder, Embedder) else embedder
    schema = ds.schema()
    names = list(schema.names) if schema is not None else None
    if names is None:
        raise UniformError("cannot read the dataset's columns; check the input")
    columns = emb.renderer.required_columns(names)
    if emb.needs_fit and not emb.fitted:
        t0 = time.perf_counter()
        with _ordered(ds):
            emb.fit(_iter_texts(ds, emb, columns, batch_size))
        logger.info("fitted %s on the driver in %.1f s", type(emb).__name__, time.perf_counter() - t0)
    res = ray.cluster_resources()
    if concurrency is None:
        top = int(res.get("GPU", 0)) // max(1, math.ceil(num_gpus)) if num_gpus else int(res.get("CPU", 1))
        concurrency = (1, max(1, top))
    ref = ray.put(_shippable(emb))
    kwargs: dict[str, Any] = {"num_cpus": 1 if num_cpus is None else num_cpus}
    if num_gpus:
        kwargs["num_gpus"] = num_gpus
    lo, hi = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
    pool = ray.data.ActorPoolStrategy(size=lo) if lo == hi else ray.data.ActorPoolStrategy(min_size=lo, max_size=hi)
    out = ds.map_batches(_EmbedActor, fn_constructor_args=(ref, columns), batch_size=batch_size,
                         batch_format="pyarrow", compute=pool, **kwargs)
    out.context.execution_options.preserve_order = True
    return out


# -- selection ----------------------------------------------------------------------------------------

def _block_matrix(block: Any, column: str) -> np.ndarray:
    """The ``(rows, d)`` float32 matrix of ``column`` in one Ray block (fixed-size list, list or tensor)."""
    import pyarrow as pa
    from ray.data.block import BlockAccessor

    table = BlockAccessor.for_block(block).to_arrow()
    if column not in table.column_names:
        raise UniformError(f"embedding column {column!r} not found; available columns: {table.column_names}")
    col = table.column(column)
    if isinstance(col.type, pa.ExtensionType):  # Ray's tensor column (e.g. from ray.data.from_numpy)
        x = np.asarray(col.combine_chunks().to_numpy(), dtype=np.float32)
        if x.ndim != 2:
            raise UniformError(f"embedding column {column!r} holds tensors of shape {x.shape[1:]}, not vectors")
        return x
    from datasets import Dataset

    from hf_uniform.integration import embedding_matrix

    return embedding_matrix(Dataset(pa.table({column: col})), column)


def _rows_of(blocks: Sequence[Any], pieces: Sequence[tuple[int, int]], column: str) -> np.ndarray:
    parts = [_block_matrix(b, column)[a:z] for b, (a, z) in zip(blocks, pieces, strict=True)]
    return np.concatenate(parts) if len(parts) > 1 else np.require(parts[0], requirements="W")


def _shard_round(column: str, pieces: list[tuple[int, int]], lo: int, kp: int, metric: str, seed: int | None,
                 kwargs: dict[str, Any], *blocks: Any) -> tuple[dict[str, Any], np.ndarray]:
    from hf_uniform import distributed as D
    from hf_uniform.selection import maxmin_select

    t0 = time.perf_counter()
    x = _rows_of(blocks, pieces, column)
    with D.local_only():
        s = maxmin_select(x, min(kp, x.shape[0]), metric=metric, seed=seed, **kwargs)
    import socket

    meta = {"ids": lo + s.indices.astype(np.int64), "rows": int(x.shape[0]), "dim": int(x.shape[1]),
            "seconds": time.perf_counter() - t0, "host": socket.gethostname()}
    return meta, np.ascontiguousarray(x[s.indices])


def _union_round(k: int, metric: str, kwargs: dict[str, Any], ids: list[np.ndarray],
                 *vectors: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    from hf_uniform import distributed as D
    from hf_uniform.selection import maxmin_select

    t0 = time.perf_counter()
    allids = np.concatenate(ids)
    order = np.argsort(allids, kind="stable")
    union, xu = allids[order], np.concatenate(vectors)[order]
    with D.local_only():
        final = maxmin_select(xu, k, metric=metric, start=0, **kwargs)
    meta = {"indices": union[final.indices], "min_distances": final.min_distances,
            "coverage_radius": final.coverage_radius, "info": final.info, "union_size": int(union.size),
            "seconds": time.perf_counter() - t0}
    return meta, np.ascontiguousarray(xu[final.indices])


def _coverage_round(column: str, pieces: list[tuple[int, int]], rows: np.ndarray, metric: str,
                    chosen: np.ndarray, *blocks: Any) -> float:
    from hf_uniform.metrics import nearest_distances

    if rows.size == 0:
        return 0.0
    x = _rows_of(blocks, pieces, column)[rows]
    return float(nearest_distances(x, np.array(chosen), metric=metric).max())


def _take_rows(positions: np.ndarray, ranks: np.ndarray, columns: list[str], block: Any) -> Any:
    from ray.data.block import BlockAccessor

    table = BlockAccessor.for_block(block).to_arrow().select(columns)
    import pyarrow as pa

    return table.take(pa.array(positions, type=pa.int64())).append_column(RANK_COLUMN, pa.array(ranks, pa.int64()))


def _assemble(radii: list[float | None], *tables: Any) -> Any:
    import pyarrow as pa

    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    order = np.argsort(table.column(RANK_COLUMN).to_numpy(), kind="stable")
    table = table.take(pa.array(order, type=pa.int64()))
    return table.append_column(DISTANCE_COLUMN, pa.array(radii, type=pa.float64()))


@dataclass
class RaySelection:
    """What :func:`select_uniform_ray` returns.

    Attributes:
        selection: the :class:`~hf_uniform.selection.Selection` (pool row numbers in greedy order, the radius
            trace of the second round, ``coverage_radius`` over the union, as ``coreset_select`` returns).
        rows: the chosen rows in greedy order with ``uniform_rank`` and ``uniform_min_distance``
            (a materialized ``ray.data.Dataset``; ``None`` with ``return_rows=False``).
        record: the ``selection.json`` fields: k, n, h, coverage radius estimate over the pool, shards,
            k per shard, union size, cluster size, seconds per stage.

    Example:
        >>> RaySelection.__dataclass_fields__.keys() >= {"selection", "rows", "record"}
        True
    """

    selection: Selection
    rows: Any
    record: dict[str, Any] = field(default_factory=dict)

    def table(self) -> Any:
        """The chosen rows as one ``pyarrow.Table`` (in greedy order), fetched to this process.

        Example:
            >>> callable(RaySelection.table)
            True
        """
        import pyarrow as pa

        if self.rows is None:
            raise UniformError("the rows were not gathered (return_rows=False); use selection.indices")
        tables = _get(self.rows.to_arrow_refs())
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def to_huggingface(self) -> Any:
        """The chosen rows as a ``datasets.Dataset`` (in greedy order), e.g. to write or push.

        Example:
            >>> callable(RaySelection.to_huggingface)
            True
        """
        import datasets
        import pyarrow as pa

        table = self.table()
        for i, name in enumerate(table.column_names):  # Ray tensor columns become fixed-size float lists
            if isinstance(table.column(i).type, pa.ExtensionType):
                x = np.asarray(table.column(i).combine_chunks().to_numpy())
                flat = pa.array(x.reshape(-1), type=pa.from_numpy_dtype(x.dtype))
                table = table.set_column(i, name, pa.FixedSizeListArray.from_arrays(flat, int(np.prod(x.shape[1:]))))
        return datasets.Dataset(table)


def _bundles(mat: Any) -> list[tuple[Any, int, int]]:
    """``(block ref, first row, end row)`` of every block of a materialized dataset, in row order."""
    out = []
    for bundle in mat.iter_internal_ref_bundles():
        slices = getattr(bundle, "slices", None) or [None] * len(bundle.blocks)
        for entry, sl in zip(bundle.blocks, slices, strict=True):
            ref, meta = (entry.ref, entry.metadata) if hasattr(entry, "ref") else entry
            a, z = (0, meta.num_rows) if sl is None else (sl.start_offset, sl.end_offset)
            if z > a:
                out.append((ref, a, z))
    return out


def _pieces(blocks: list[tuple[Any, int, int]], starts: np.ndarray, lo: int, hi: int) -> tuple[list[Any], list[tuple[int, int]]]:
    """Block refs and in-block row ranges covering global rows ``[lo, hi)``."""
    refs, spans = [], []
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    for b in range(max(first, 0), len(blocks)):
        ref, a, z = blocks[b]
        g0 = int(starts[b])
        g1 = g0 + (z - a)
        if g0 >= hi:
            break
        s, e = max(lo, g0), min(hi, g1)
        if e > s:
            refs.append(ref)
            spans.append((a + s - g0, a + e - g0))
    return refs, spans


def select_uniform_ray(
    ds: Any,
    k: int | float,
    *,
    shards: int | None = None,
    k_per_shard: int | None = None,
    embedding_column: str = "embedding",
    metric: str = "cosine",
    seed: int | None = 0,
    coverage_sample: int | None = 10_000,
    output_columns: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    return_rows: bool = True,
    **engine_kwargs: Any,
) -> RaySelection:
    """Two-round composable core-set selection of ``k`` rows of a ``ray.data.Dataset`` on a Ray cluster.

    Round 1: greedy max-min (:func:`~hf_uniform.selection.maxmin_select`) on each of ``shards`` contiguous
    shards in its own Ray task, to ``k_per_shard`` rows, with start seed ``seed + i`` for shard ``i``.
    Round 2: greedy on the union of the shard selections (sorted by row number, started at its first row)
    in one task. This is :func:`hf_uniform.coreset_select` step for step: on the same rows and shards the
    result is identical. Then a pass over the pool (or a seeded sample of ``coverage_sample`` rows) measures
    the coverage radius of the chosen rows, and the chosen rows are gathered in greedy order.

    Args:
        ds: a ``ray.data.Dataset`` holding ``embedding_column`` (e.g. from :func:`embed_ray`); it is
            materialized once (the cluster's object store holds it, spilling to disk when full).
        k: rows to select, or a fraction in (0, 1) of the pool.
        shards: number of contiguous shards (default: the cluster's CPU count). Pass it explicitly for a
            result that does not depend on the cluster.
        k_per_shard: rows kept per shard (default ``k``; at least ``k`` keeps the guarantees).
        embedding_column: the vectors (fixed-size list, list, or Ray tensor column).
        metric: ``"cosine"`` or ``"euclidean"``.
        seed: shard ``i`` starts from a row drawn with ``seed + i``.
        coverage_sample: rows sampled (seeded) to estimate the pool's coverage radius; ``None`` or
            ``>= n``: every row (exact).
        output_columns: columns of the returned rows (default: all).
        device: ``"cpu"``, or ``"cuda"`` to run each selection task on a GPU (``num_gpus=1`` per task).
        progress: show Ray Data's progress bars.
        return_rows: gather the chosen rows (``False``: ``rows`` is ``None``, e.g. when the caller holds the
            rows itself and needs only the row numbers).
        **engine_kwargs: passed to every ``maxmin_select`` (``method``, ``dtype``, ``max_memory``, ...).

    Returns:
        A :class:`RaySelection`.

    Example:
        >>> import numpy as np, ray
        >>> x = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
        >>> res = select_uniform_ray(ray.data.from_numpy(x), 4, shards=2, embedding_column="data",
        ...                          metric="euclidean", progress=False)
        >>> res.record["shards"], res.record["k_per_shard"], res.rows.count()
        (2, 4, 4)
    """
    from hf_uniform.coreset import _local
    from hf_uniform.distributed import shard_bounds
    from hf_uniform.selection import METRICS, check_k

    ray = _ray()
    if metric not in METRICS:
        raise UniformError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1):
        raise UniformError(f"shards must be a positive number of contiguous shards, got {shards!r}")
    if k_per_shard is not None and int(k_per_shard) < 1:
        raise UniformError(f"k_per_shard must be at least 1, got {k_per_shard}")
    if coverage_sample is not None and coverage_sample < 1:
        raise UniformError(f"coverage_sample must be a positive number of rows or None, got {coverage_sample}")
    kwargs = {**_local(dict(engine_kwargs)), "device": device}
    opts: dict[str, Any] = {"num_cpus": 1, **({"num_gpus": 1} if str(device).startswith("cuda") else {})}
    timings: dict[str, float] = {}
    cluster = cluster_info()

    t0 = time.perf_counter()
    with _ordered(ds, progress):
        mat = ds.materialize()
    blocks = _bundles(mat)
    timings["materialize_s"] = time.perf_counter() - t0
    sizes = np.array([z - a for _, a, z in blocks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, np.int64)
    n = int(sizes.sum())
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    columns = list(mat.schema().names)
    if embedding_column not in columns:
        raise UniformError(f"embedding column {embedding_column!r} not found; available columns: {columns}; "
                           "embed first (embed_ray) or pass embedding_column=")
    k = check_k(k, n)
    shards = int(shards) if shards is not None else max(1, cluster["cpus"])
    if shards > n:
        raise UniformError(f"shards must be between 1 and n={n}, got {shards}")
    kp = k if k_per_shard is None else int(k_per_shard)
    if kp < k:
        logger.warning("k_per_shard=%d < k=%d: the core-set guarantees need k_per_shard >= k", kp, k)
    bounds = shard_bounds(n, shards)
    union_size = sum(min(kp, hi - lo) for lo, hi in bounds)
    if union_size < k:
        raise UniformError(f"the shards hold only {union_size} rows together; raise k_per_shard or lower k={k}")
    out_cols = columns if output_columns is None else list(output_columns)
    missing = [c for c in out_cols if c not in columns]
    if missing:
        raise UniformError(f"output column(s) {missing} not found; available columns: {columns}")
    out_cols = [c for c in out_cols if c not in (RANK_COLUMN, DISTANCE_COLUMN)]

    t0 = time.perf_counter()
    shard_fn = _remote(_shard_round).options(num_returns=2, **opts)
    metas, vecs, plan = [], [], []
    for i, (lo, hi) in enumerate(bounds):
        refs, spans = _pieces(blocks, starts, lo, hi)
        plan.append((refs, spans, lo, hi))
        m, v = shard_fn.remote(embedding_column, spans, lo, kp, metric, None if seed is None else seed + i,
                               kwargs, *refs)
        metas.append(m)
        vecs.append(v)
    shard_meta = _get(metas)
    timings["round1_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    final_ref, chosen_ref = _remote(_union_round).options(num_returns=2, **opts).remote(
        k, metric, kwargs, [m["ids"] for m in shard_meta], *vecs)
    final = _get(final_ref)
    timings["round2_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    m_cov = n if coverage_sample is None or coverage_sample >= n else int(coverage_sample)
    sample = np.arange(n) if m_cov == n else np.sort(np.random.default_rng(seed).choice(n, m_cov, replace=False))
    cov_fn = _remote(_coverage_round).options(**opts)
    cov_refs = []
    for refs, spans, lo, hi in plan:
        rows = sample[(sample >= lo) & (sample < hi)] - lo
        if rows.size:
            cov_refs.append(cov_fn.remote(embedding_column, spans, rows, metric, chosen_ref, *refs))
    coverage = max(_get(cov_refs)) if cov_refs else 0.0
    timings["coverage_s"] = time.perf_counter() - t0

    indices = np.asarray(final["indices"], dtype=np.int64)
    rows = None
    if return_rows:
        t0 = time.perf_counter()
        owner = np.searchsorted(starts, indices, side="right") - 1
        take_fn = _remote(_take_rows)
        parts = []
        for b in np.unique(owner):
            sel = np.flatnonzero(owner == b)
            ref, a, _ = blocks[int(b)]
            parts.append(take_fn.remote(indices[sel] - starts[b] + a, sel.astype(np.int64), out_cols, ref))
        radii = [None if not math.isfinite(r) else float(r) for r in final["min_distances"]]
        rows_ref = _remote(_assemble).remote(radii, *parts)
        ray.wait([rows_ref], fetch_local=False)
        rows = ray.data.from_arrow_refs([rows_ref])
        timings["rows_s"] = time.perf_counter() - t0

    info = {**final["info"], "method": f"coreset/{final['info'].get('method')}", "shards": shards, "k_prime": kp,
            "union_size": final["union_size"], "coverage_over": "union", "world_size": 1, "backend": "ray"}
    selection = Selection(indices, np.asarray(final["min_distances"], dtype=np.float64),
                          float(final["coverage_radius"]), metric, n, info)
    d = int(shard_meta[0]["dim"])
    record = {
        "backend": "ray",
        "metric": metric,
        "n": n,
        "k": selection.k,
        "h": None if not math.isfinite(selection.h) else selection.h,
        "coverage_radius": coverage,
        "coverage_radius_over": "pool" if m_cov == n else f"seeded sample of {m_cov} rows (a lower bound)",
        "coverage_radius_union": selection.coverage_radius,
        "shards": shards,
        "k_per_shard": kp,
        "union_size": final["union_size"],
        "shard_rows": [int(hi - lo) for lo, hi in bounds],
        "shard_seconds": [round(m["seconds"], 4) for m in shard_meta],
        "shard_hosts": sorted({m["host"] for m in shard_meta}),
        "round2_task_seconds": round(final["seconds"], 4),
        "vectors_to_round2": final["union_size"],
        "bytes_to_round2": int(final["union_size"] * d * 4),
        "seed": seed,
        "cluster": cluster,
        "blocks": len(blocks),
        "timings": {key: round(v, 4) for key, v in timings.items()},
    }
    logger.info("ray core-set: k=%d of n=%d, %d shards x %d, h=%.6g, coverage (%s)=%.6g", selection.k, n, shards,
                kp, selection.h, record["coverage_radius_over"], coverage)
    return RaySelection(selection, rows, record)


# -- command line -------------------------------------------------------------------------------------

def _is_ray_folder(source: Any) -> bool:
    path = Path(str(source))
    return path.is_dir() and not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists())


def select_command_ray(args: Any) -> int:
    """``hf-uniform select INPUT -k K -o OUT --ray [ADDRESS|local] [--ray-shards S]``.

    Everything that can be checked without the data is checked first, as without ``--ray``. A file, a
    ``save_to_disk`` folder or a Hub id is read as today and its rows are written back unchanged; a folder of
    Parquet / JSON Lines files is read with Ray's readers (files in sorted order) and the chosen rows come
    back from the cluster. Embedding runs on a Ray actor pool (or ``--embedding-column`` is used) and the
    selection is :func:`select_uniform_ray`. Writes ``OUT/subset.*`` (greedy order, ``uniform_rank``,
    ``uniform_min_distance``) and ``OUT/selection.json`` (k, n, h, the coverage radius estimate, shards,
    k per shard, cluster size, seconds per stage). ``local`` starts a Ray instance on this machine (or reuses
    the one this process is connected to); an address joins a cluster.

    Example:
        >>> from hf_uniform.cli import build_parser
        >>> a = build_parser().parse_args(["select", "d.jsonl", "-k", "3", "-o", "o", "--ray", "--start", "1"])
        >>> select_command_ray(a)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: --start cannot be combined with --ray (core-set mode); drop it, or run without --ray for the exact selection
    """
    from hf_uniform import cli
    from hf_uniform.io import SourceData, package_versions, read_source, remove_stale_tmp

    if not args.ray:
        raise UniformError("--ray-shards needs --ray (local or a cluster address)")
    unsupported = [flag for flag, on in (("--start", args.start), ("--baselines", args.baselines),
                                         ("--checkpoint", args.checkpoint), ("--resume", args.resume),
                                         ("--drop-zero-vectors", args.drop_zero_vectors)) if on]
    if unsupported:
        raise UniformError(f"{', '.join(unsupported)} cannot be combined with --ray (core-set mode); "
                           f"drop {'it' if len(unsupported) == 1 else 'them'}, or run without --ray for the "
                           "exact selection")
    out = cli.check_output_folder(args.output, [args.input])
    emb = cli.checks._check_embedding_args(args)
    device = cli.check_device(args.device)
    engine = cli.checks._engine_kwargs(args)
    replaced = cli.check_previous_selection(out, args.overwrite)
    ray = _ray()
    if args.quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    started = init_ray(args.ray, quiet=args.quiet)
    try:
        remove_stale_tmp(out)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        folder = _is_ray_folder(args.input)
        src: SourceData | None = None
        text_info: dict[str, Any] | None = None
        pool_rows: np.ndarray | None = None
        if folder:
            rd = read_input(args.input)
            schema = rd.schema()
            columns = list(schema.names) if schema is not None else []
            fmt = args.format or ("parquet" if any(Path(args.input).rglob("*.parquet")) else "jsonl")
        else:
            src = read_source(args.input, split=args.split)
            columns, fmt = list(src.columns), args.format or src.default_format
            pool_rows = np.arange(src.n)
            if emb is not None:
                ds, text_info, pool_rows = cli.text_pool(emb, src, pool_rows, drop_empty=args.drop_empty)
            else:
                if args.embedding_column not in columns:
                    raise UniformError(f"embedding column {args.embedding_column!r} not found; available "
                                       f"columns: {columns}")
                ds = src.to_dataset([args.embedding_column])
            rd = from_dataset(ds)
        timings["load_s"] = time.perf_counter() - t0
        n_pool = len(pool_rows) if pool_rows is not None else None
        k = cli.resolve_k(args.k, n_pool) if n_pool is not None else args.k
        t0 = time.perf_counter()
        if emb is not None:
            rd = embed_ray(rd, emb)
            column, source = emb.output_column, emb.config()
        else:
            if args.embedding_column not in columns:
                raise UniformError(f"embedding column {args.embedding_column!r} not found; available columns: "
                                   f"{columns}")
            column, source = args.embedding_column, {"embedding_column": args.embedding_column}
        timings["fit_s"] = time.perf_counter() - t0  # a Word2Vec is fitted on the driver; the rest runs lazily
        res = select_uniform_ray(rd, k, shards=args.ray_shards, embedding_column=column, metric=args.metric,
                                 seed=args.seed, device=device, progress=not args.quiet,
                                 output_columns=[c for c in columns if c != column or emb is None] if folder else None,
                                 return_rows=folder, **engine)
        sel = res.selection
        timings.update({("embed_and_materialize_s" if key == "materialize_s" else key): v
                        for key, v in res.record["timings"].items()})

        for p in sorted(replaced, key=lambda q: q.name != cli.SELECTION_FILE):  # the marker goes first
            p.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subset_path = out / f"subset.{fmt}"
        radii = [None if not math.isfinite(r) else float(r) for r in sel.min_distances]
        extra = {RANK_COLUMN: list(range(sel.k)), DISTANCE_COLUMN: radii}
        if src is not None:
            rows = pool_rows[sel.indices]
            src.write_rows(rows, subset_path, fmt, extra=extra)
        else:
            table = res.table().drop_columns([RANK_COLUMN, DISTANCE_COLUMN])
            rows = sel.indices
            SourceData(str(args.input), "parquet", list(table.column_names), None, table=table).write_rows(
                range(sel.k), subset_path, fmt, extra=extra)
        timings["write_s"] = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    r = res.record
    cl = r["cluster"]
    summary = (f"{sel.k} of {sel.n} rows chosen by the two-round composable core-set on Ray ({r['shards']} shards "
               f"x {r['k_per_shard']} rows, {args.metric} distance): h = {sel.h:.6g}, coverage radius = "
               f"{r['coverage_radius']:.6g} over the {r['coverage_radius_over']}; equal to "
               f"hf_uniform.coreset_select(x, {sel.k}, shards={r['shards']})")
    engine_block = {**{key: v for key, v in r.items() if key not in ("timings",)}, **sel.info,
                    "engine_coverage_radius": sel.coverage_radius,
                    "versions": package_versions("hf-uniform", "ray", "torch", "numpy", "datasets", "gensim",
                                                 "sentence-transformers", "model2vec", "numba"),
                    "timings": {key: round(v, 4) for key, v in timings.items()}}
    dropped = [] if pool_rows is None else sorted(set(range(src.n)) - set(pool_rows.tolist()))
    record: dict[str, Any] = {
        "schema": "hf-uniform/selection/2",
        "summary": summary,
        "k": sel.k,
        "n": sel.n,
        "metric": args.metric,
        "h": None if not math.isfinite(sel.h) else sel.h,
        "coverage_radius": r["coverage_radius"],
        "coverage_radius_over": r["coverage_radius_over"],
        "mean_nn_distance": None,
        "meaning": cli.MEANING,
        "report": None,
        "backend": "ray",
        "shards": r["shards"],
        "k_per_shard": r["k_per_shard"],
        "cluster": cl,
        "timings": engine_block["timings"],
        "embedded": {**source, **(text_info or {}), "dropped_empty_rows": len(dropped)},
        "lengths": None,
        "heldout": None,
        "input": str(args.input),
        "command": "hf-uniform " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None,
        "seed": args.seed,
        "start": None,
        "embedder": None if emb is not None else {"embedding_column": args.embedding_column},
        "files": {"subset": subset_path.name},
        "subset_file": subset_path.name,
        "indices": np.asarray(rows).tolist(),
        "min_distances": radii,
        "engine": {**engine_block, "pool_rows": sel.n, "dropped_empty_rows": dropped},
    }
    cli.select._write_record(out / cli.SELECTION_FILE, record)
    print(f"uniformity ({args.metric} distance), k={sel.k} of n={sel.n}: Ray core-set, {r['shards']} shards x "
          f"{r['k_per_shard']} rows, cluster of {cl['nodes']} node(s) / {cl['cpus']} CPU(s) / {cl['gpus']} GPU(s)")
    print(f"h (min pairwise) {sel.h:.6f}; coverage radius {r['coverage_radius']:.6f} ({r['coverage_radius_over']})")
    print(f"wrote {subset_path} and {out / cli.SELECTION_FILE}")
    return 0
