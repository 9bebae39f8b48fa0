"""Vectors of a dataset: :func:`embed` (render and embed every row, cached), :func:`embedding_matrix` (a stored
vector column), and :func:`select_rows` (the engine on them, all-zero rows optionally left out).

:mod:`hf_uniform.integration` re-exports these names (their earlier home).

>>> import numpy as np
>>> nonzero_rows(np.array([[0.0, 1.0], [0.0, 0.0]])).tolist()
[0]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .embedders import Embedder, resolve_embedder
from .errors import UniformError
from .selection import Selection, maxmin_select

logger = logging.getLogger(__name__)

#: the columns a selection adds to the rows: greedy rank (0 = first chosen) and the radius it was chosen at
RANK_COLUMN = "uniform_rank"
DISTANCE_COLUMN = "uniform_min_distance"


def embedding_matrix(ds: Any, column: str) -> np.ndarray:
    """The ``(n, d)`` float32 matrix of an embedding column (zero-copy for fixed-size lists).

    Raises:
        UniformError: the column is missing (the message lists the columns) or its rows differ in length.

    Example:
        >>> from datasets import Dataset
        >>> embedding_matrix(Dataset.from_dict({"e": [[1.0, 2.0], [3.0, 4.0]]}), "e").shape
        (2, 2)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in ds.column_names:
        raise UniformError(f"embedding column {column!r} not found; available columns: {ds.column_names}")
    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    arr = ds.select_columns([column]).with_format("arrow")[:][column].combine_chunks()  # row order of ds
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) != 1:
            bad = np.flatnonzero(lengths != lengths[0])[:10].tolist()
            raise UniformError(f"embeddings in {column!r} have unequal lengths (row 0 has {lengths[0]}, rows "
                               f"{bad} differ); re-embed so every row has the same dimension")
        d = int(lengths[0])
    else:
        raise UniformError(f"column {column!r} holds {arr.type}, not vectors; pass a list-of-floats column")
    value_type = arr.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise UniformError(f"column {column!r} holds lists of {value_type}, not numbers; store the vectors as "
                           "lists of floats (numbers written as strings are not accepted)")
    if arr.null_count:
        raise UniformError(f"embedding column {column!r} has {arr.null_count} missing rows; re-embed them")
    flat = arr.flatten()
    if flat.null_count:
        raise UniformError(f"embedding column {column!r} contains missing values; re-embed those rows")
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, d)


def embed(ds: Any, embedder: str | Embedder | None = None, *, text_columns: Sequence[str] | str | None = None,
          template: str | None = None, batch_size: int = 1000, progress: bool = True,
          cache: bool = True, cache_dir: str | None = None, distributed: bool | None = None) -> np.ndarray:
    """Embed every row of ``ds`` (fitting the embedder on ``ds`` first when it learns from the corpus).

    ``cache`` reuses stored embeddings keyed by the dataset fingerprint, the text columns/template and the
    embedder configuration (see :mod:`hf_uniform.cache`); a hit neither embeds nor trains (a Word2Vec
    embedder is then fitted only if it is later asked to encode other rows).

    Under ``torchrun`` / ``accelerate launch`` (``distributed=None`` detects it) every rank fits the embedder
    on the full corpus, embeds its contiguous shard, and receives the full matrix in row order (see
    :mod:`hf_uniform.distributed`); every rank must call ``embed``. Pass ``distributed=False`` to embed
    everything in this process (e.g. when only rank 0 calls it).

    Args:
        ds: a ``Dataset``.
        embedder: ``"w2v"``, ``"st:MODEL"``, ``"m2v:MODEL"``, ``"m2v-distill:ST_MODEL"`` or an
            :class:`~hf_uniform.embedders.Embedder`.
        text_columns: columns whose text is embedded (when ``embedder`` is a spec).
        template: a ``str.format`` template over columns (when ``embedder`` is a spec).
        batch_size: rows per encode call.
        progress: show a progress bar (rank 0 only).
        cache: reuse and store embeddings.
        cache_dir: folder of the embedding cache (default ``$HF_UNIFORM_CACHE/embeddings``).
        distributed: shard across ranks (``None``: when a launcher is detected).

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["a b", "b c", "c d"]})
        >>> embed(ds, "w2v", progress=False, cache=False).shape
        (3, 300)
    """
    from tqdm.auto import tqdm

    from . import cache as cache_mod
    from . import distributed as de

    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if batch_size < 1:
        raise UniformError(f"batch_size must be at least 1, got {batch_size}")
    emb = resolve_embedder(embedder, text_columns=text_columns, template=template) \
        if not isinstance(embedder, Embedder) else embedder
    emb.renderer.required_columns(ds.column_names)
    ctx = de.distributed_context() if distributed is not False else de.DistContext()

    key = parts = None
    if cache:
        parts = cache_mod.embedding_key_parts(ds, emb)
        key = None if parts is None else cache_mod.stable_hash(parts, 32)
        if key is None:
            logger.info("embedding cache off: the dataset has no fingerprint or the embedder is not identifiable")
    if key is not None:
        hit = cache_mod.load_embeddings(key, n_rows=len(ds), cache_dir=cache_dir)
        if de.all_ranks_true(hit is not None, ctx):  # every rank must take the same branch
            if emb.needs_fit and not emb.fitted:
                emb.defer_fit(ds)
            return hit

    with de.local_main_first(ctx):  # download / distil once per node, the other ranks read the cache
        emb.prepare()
    if emb.needs_fit and not emb.fitted:
        emb.progress = progress and ctx.is_main
        emb.fit(ds)  # the full corpus on every rank (deterministic), so all shards share one space
    if ctx.enabled:
        probe = ds.select(range(min(8, len(ds))))
        de.check_same_on_all_ranks(np.asarray(emb.encode(emb.texts(probe[:])), dtype=np.float32), ctx,
                                   what=type(emb).__name__)
    shard = de.shard_dataset(ds, ctx)
    step = max(batch_size, int(getattr(emb, "min_batch_rows", 0) or 0))
    parts_out: list[np.ndarray] = []
    with tqdm(total=len(shard), desc="embed" if not ctx.enabled else f"embed (rank 0 of {ctx.world_size})",
              unit="row", disable=not progress or not ctx.is_main) as bar:
        for batch in shard.iter(batch_size=step):
            parts_out.append(np.asarray(emb.encode(emb.texts(batch)), dtype=np.float32))
            bar.update(len(parts_out[-1]))
    x = np.concatenate(parts_out) if parts_out else np.zeros((0, emb.dimension), dtype=np.float32)
    if ctx.enabled:
        x = de.gather_rows(x, ctx)
        if x.shape[0] != len(ds):
            raise UniformError(f"gathered {x.shape[0]} embeddings for {len(ds)} rows; every rank must pass the "
                               "same dataset to embed()")
    if key is not None:
        if ctx.is_local_main:
            cache_mod.save_embeddings(key, x, meta=parts, cache_dir=cache_dir)
        de.barrier(ctx)  # the entry is complete before any rank can look for it again
    return x


def nonzero_rows(embeddings: np.ndarray) -> np.ndarray:
    """Indices of rows that are not all zero.

    Example:
        >>> nonzero_rows(np.array([[0.0, 0.0], [1.0, 0.0]])).tolist()
        [1]
    """
    return np.flatnonzero(np.any(embeddings != 0, axis=1))


def select_rows(
    embeddings: np.ndarray,
    k: int | float | None,
    *,
    metric: str = "cosine",
    drop_zero_vectors: bool = False,
    **engine_kwargs: Any,
) -> Selection:
    """Run :func:`~hf_uniform.selection.maxmin_select`, optionally ignoring all-zero rows first.

    Indices in the result always refer to rows of ``embeddings``; dropped rows are listed in
    ``selection.info["dropped_rows"]`` and ``k`` as a fraction applies to the kept rows.

    Example:
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> select_rows(x, 2, drop_zero_vectors=True, start=1).indices.tolist()
        [1, 2]
    """
    if not drop_zero_vectors or metric != "cosine":
        return maxmin_select(embeddings, k, metric=metric, **engine_kwargs)
    keep = nonzero_rows(embeddings)
    if len(keep) == len(embeddings):
        return maxmin_select(embeddings, k, metric=metric, **engine_kwargs)
    dropped = np.setdiff1d(np.arange(len(embeddings)), keep)
    logger.warning("dropping %d zero vector(s) at rows %s", len(dropped), dropped[:10].tolist())
    if not len(keep):
        raise UniformError("every embedding is a zero vector; check the text columns or the embedder")
    start = engine_kwargs.pop("start", None)
    if start is not None:
        pos = {int(r): i for i, r in enumerate(keep)}
        starts = [start] if np.isscalar(start) else list(start)
        if any(int(s) not in pos for s in starts):
            raise UniformError("a start row is a dropped zero vector; choose other start rows")
        engine_kwargs["start"] = [pos[int(s)] for s in starts]
    if engine_kwargs.get("group_by") is not None:  # one label per row: keep the labels of the kept rows
        engine_kwargs["group_by"] = np.asarray(list(engine_kwargs["group_by"]), dtype=object)[keep]
    sel = maxmin_select(embeddings[keep], k, metric=metric, **engine_kwargs)
    info = {**sel.info, "dropped_rows": dropped.tolist()}
    return Selection(keep[sel.indices], sel.min_distances, sel.coverage_radius, sel.metric,
                     len(embeddings), info)
