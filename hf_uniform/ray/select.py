"""The two-round composable core-set on Ray tasks (:func:`select_uniform_ray`), equal to
:func:`hf_uniform.coreset_select` on the same contiguous shards."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hf_uniform.errors import UniformError
from hf_uniform.selection import Selection
from hf_uniform.vectors import DISTANCE_COLUMN, RANK_COLUMN

from ._common import _get, _ordered, _ray, _remote, cluster_info

logger = logging.getLogger("hf_uniform.ray")

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

    from hf_uniform.vectors import embedding_matrix

    return embedding_matrix(Dataset(pa.table({column: col})), column)


def _rows_of(blocks: Sequence[Any], pieces: Sequence[tuple[int, int]], column: str) -> np.ndarray:
    parts = [_block_matrix(b, column)[a:z] for b, (a, z) in zip(blocks, pieces, strict=True)]
    return np.concatenate(parts) if len(parts) > 1 else np.require(parts[0], requirements="W")


def _shard_round(column: str, pieces: list[tuple[int, int]], lo: int, kp: int, metric: str, seed: int | None,
                 kwargs: dict[str, Any], *blocks: Any) -> tuple[dict[str, Any], np.ndarray]:
    from hf_uniform.selection import maxmin_select

    t0 = time.perf_counter()
    x = _rows_of(blocks, pieces, column)
    s = maxmin_select(x, min(kp, x.shape[0]), metric=metric, seed=seed, **kwargs)  # local: no distributed=True
    import socket

    meta = {"ids": lo + s.indices.astype(np.int64), "rows": int(x.shape[0]), "dim": int(x.shape[1]),
            "seconds": time.perf_counter() - t0, "host": socket.gethostname()}
    return meta, np.ascontiguousarray(x[s.indices])


def _union_round(k: int, metric: str, kwargs: dict[str, Any], ids: list[np.ndarray],
                 *vectors: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    from hf_uniform.selection import maxmin_select

    t0 = time.perf_counter()
    allids = np.concatenate(ids)
    order = np.argsort(allids, kind="stable")
    union, xu = allids[order], np.concatenate(vectors)[order]
    final = maxmin_select(xu, k, metric=metric, start=0, **kwargs)  # local: no distributed=True
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
