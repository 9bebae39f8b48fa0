"""The ``datasets`` adapter: ``filter_uniform(ds, k)`` and ``ds.filter_uniform(k)``.

>>> import hf_uniform
>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"embedding": [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], "id": [0, 1, 2]})
>>> ds.filter_uniform(k=2, embedding_column="embedding", start=0)["id"][:]
[0, 2]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .embedders import Embedder, resolve_embedder
from .errors import UniformError
from .selection import Selection, check_k, maxmin_select

logger = logging.getLogger(__name__)

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
    if ds._indices is not None:
        ds = ds.flatten_indices()
    arr = ds.data.column(column).combine_chunks()
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


def subset_from_selection(ds: Any, selection: Selection) -> Any:
    """``ds.select(selection.indices)`` with ``uniform_rank`` and ``uniform_min_distance`` columns.

    The first row's min-distance is undefined and stored as null.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"e": [[1.0, 0.0], [0.0, 1.0]]})
        >>> sel = maxmin_select(embedding_matrix(ds, "e"), 2, start=1)
        >>> subset_from_selection(ds, sel)["uniform_rank"][:]
        [0, 1]
    """
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    was_enabled = is_progress_bar_enabled()
    disable_progress_bar()  # add_column flattens the indices: a fast step that needs no bar
    try:
        out = ds.select(selection.indices.tolist())
        for col in (RANK_COLUMN, DISTANCE_COLUMN):
            if col in out.column_names:
                out = out.remove_columns(col)
        radii = [None if not np.isfinite(r) else float(r) for r in selection.min_distances]
        out = out.add_column(RANK_COLUMN, list(range(selection.k)))
        return out.add_column(DISTANCE_COLUMN, radii)
    finally:
        if was_enabled:
            enable_progress_bar()


def check_start(start: Any) -> list[int] | None:
    """Validate ``start=`` of the Python API: ``None``, a row index, or a sequence of distinct row indices.

    Floats, booleans and strings are refused (``2.7``, ``True`` and ``"3"`` are not row indices).

    Example:
        >>> check_start(3), check_start([0, 5]), check_start(None)
        ([3], [0, 5], None)
        >>> check_start(2.7)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: start must be a row index (an int) or a list of them, got 2.7
    """
    if start is None:
        return None
    items = [start] if not isinstance(start, (list, tuple, np.ndarray, range)) else list(start)
    if isinstance(start, np.ndarray) and not np.issubdtype(start.dtype, np.integer):
        items = [start]
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise UniformError(f"start must be a row index (an int) or a list of them, got {start!r}")
        if s < 0:
            raise UniformError(f"start rows must be 0 or more, got {int(s)}")
        out.append(int(s))
    if not out:
        raise UniformError("start is empty; pass at least one row index or None for a seeded random start")
    if len(set(out)) != len(out):
        raise UniformError("start rows contain repeats; pass each row once")
    return out


def filter_uniform(
    ds: Any,
    k: int | float | None = None,
    *,
    text_columns: Sequence[str] | str | None = None,
    template: str | None = None,
    embedding_column: str | None = None,
    embedder: str | Embedder | None = None,
    metric: str = "cosine",
    seed: int | None = 0,
    start: int | Sequence[int] | None = None,
    device: str | None = "cpu",
    drop_zero_vectors: bool = False,
    drop_empty: bool = False,
    splits: str | Sequence[str] | None = None,
    return_selection: bool = False,
    progress: bool = True,
    cache: bool = True,
    group_by: str | Sequence[Any] | None = None,
    **engine_kwargs: Any,
) -> Any:
    """The max-min uniform subset of ``ds``, in greedy order, as a ``Dataset``.

    Embeds ``ds`` when no ``embedding_column`` is given (default: the paper's Word2Vec over the
    instruction–input–output triple, or the detected layout, see :class:`~hf_uniform.text.TextRenderer`),
    runs the exact greedy max-min selection, and returns ``ds.select(order)`` with ``uniform_rank``
    (0 = first chosen) and ``uniform_min_distance`` (the radius at which each row was chosen); the rows are
    otherwise unchanged.

    A ``DatasetDict``: only the ``splits`` are filtered (default: ``"train"`` when present, else the only
    split; with several splits and no ``"train"``, pass ``splits=``); the other splits are returned
    unchanged, so a test split stays whole. One embedder is fitted once, on all filtered splits together, and
    ``k`` applies to each filtered split.

    Args:
        ds: a ``Dataset`` or ``DatasetDict``.
        k: number of rows (an int), or a fraction in (0, 1) (a float; it must give at least one row); may be
            left out with ``radius=`` or ``quotas=``.
        text_columns: columns whose text is embedded (default: detected, see
            :class:`~hf_uniform.text.TextRenderer`).
        template: a ``str.format`` template over columns, instead of ``text_columns``.
        embedding_column: use vectors already in the data instead of embedding.
        embedder: ``"w2v"`` (default), ``"st:MODEL"`` or an :class:`~hf_uniform.embedders.Embedder`.
        metric: ``"cosine"`` (default) or ``"euclidean"``.
        seed: seed of the random start row.
        start: start row(s) instead of a random one (e.g. to extend an earlier selection).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        drop_zero_vectors: ignore all-zero embeddings (undefined under cosine) instead of raising.
        drop_empty: leave out rows whose rendered text is empty instead of raising.
        splits: the splits of a ``DatasetDict`` to filter (see above).
        return_selection: also return the :class:`~hf_uniform.selection.Selection` (h, coverage, trace;
            indices refer to rows of ``ds``).
        progress: show progress bars.
        cache: reuse embeddings computed earlier for the same data, text and embedder.
        group_by: a column name (or one label per row) of groups that get per-group quotas (``quotas=``;
            default proportional to the group sizes): a row of a full group is never picked.
        **engine_kwargs: passed to :func:`~hf_uniform.selection.maxmin_select` (``radius``, ``quotas``,
            ``tie_break``, ``dtype``, ``method``, ``chunk_size``, ``max_memory``, ``checkpoint_dir``,
            ``resume``, ...).

    Raises:
        UniformError: bad ``k``/``start``, an unknown layout, empty texts, or unusable vectors.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"instruction": ["add 1 and 2", "name a colour", "add 2 and 2"],
        ...                         "output": ["3", "red", "4"]})
        >>> sub = filter_uniform(ds, k=2, progress=False)
        >>> sub.column_names
        ['instruction', 'output', 'uniform_rank', 'uniform_min_distance']
        >>> ds = Dataset.from_dict({"e": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]],
        ...                         "lang": ["a", "a", "b", "b"]})
        >>> filter_uniform(ds, embedding_column="e", group_by="lang", quotas={"a": 2, "b": 1}, start=0,
        ...                progress=False)["lang"][:]
        ['a', 'a', 'b']
        >>> len(filter_uniform(ds, embedding_column="e", radius=0.5, start=0, progress=False))
        2
    """
    from datasets import DatasetDict, concatenate_datasets

    starts = check_start(start)
    if isinstance(ds, DatasetDict):
        if return_selection:
            raise UniformError("return_selection=True needs a Dataset; call filter_uniform per split")
        if splits is None:
            if "train" in ds:
                chosen = ["train"]
            elif len(ds) == 1:
                chosen = list(ds)
            else:
                raise UniformError(f"no 'train' split among {list(ds)}; pass splits=[...] to say which to filter")
        else:
            chosen = [splits] if isinstance(splits, str) else list(splits)
        unknown = [s for s in chosen if s not in ds]
        if unknown or not chosen:
            raise UniformError(f"splits {unknown or chosen} not in the DatasetDict; available splits: {list(ds)}")
        emb = None
        if embedding_column is None:
            emb = embedder if isinstance(embedder, Embedder) else resolve_embedder(
                embedder, text_columns=text_columns, template=template)
            if emb.needs_fit:  # one embedder for every filtered split: fitted once on all of them
                cols = [emb.renderer.required_columns(ds[s].column_names) for s in chosen]
                emb.progress = progress
                emb.fit(concatenate_datasets([ds[s].select_columns(c) for s, c in zip(chosen, cols, strict=True)]))
        if group_by is not None and not isinstance(group_by, str):
            raise UniformError("group_by on a DatasetDict must be a column name (one label list cannot fit every split)")
        return DatasetDict({
            name: filter_uniform(split, k, embedding_column=embedding_column, embedder=emb, metric=metric,
                                 seed=seed, start=starts, device=device, drop_zero_vectors=drop_zero_vectors,
                                 drop_empty=drop_empty, progress=progress, cache=cache, group_by=group_by,
                                 **engine_kwargs)
            if name in chosen else split
            for name, split in ds.items()
        })
    if splits is not None:
        raise UniformError("splits= applies to a DatasetDict; this is a single Dataset")
    n = len(ds)
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    rows = np.arange(n)
    labels = None
    if group_by is not None:
        if isinstance(group_by, str):
            if group_by not in ds.column_names:
                raise UniformError(f"group_by column {group_by!r} is not in the dataset; columns: {ds.column_names}")
            labels = np.asarray(ds[group_by], dtype=object)
        else:
            labels = np.asarray(list(group_by), dtype=object)
        if len(labels) != n:
            raise UniformError(f"group_by has {len(labels)} labels for {n} rows; pass one group label per row")
    if k is not None:
        check_k(k, n)
    if embedding_column is not None:
        x = embedding_matrix(ds, embedding_column)
        source = {"embedding_column": embedding_column}
    else:
        emb = embedder if isinstance(embedder, Embedder) else resolve_embedder(
            embedder, text_columns=text_columns, template=template)
        text = emb.renderer.describe(ds.column_names)
        work = ds  # embedded as given (its fingerprint keys the cache); the renderer reads only its columns
        empty = emb.renderer.empty_rows(ds.select_columns(text["columns"]))
        if empty and not drop_empty:
            raise UniformError(f"{len(empty)} of {n} rows have empty text in columns {text['columns']} (rows "
                               f"{empty[:10]}); pass drop_empty=True to leave them out, or other text_columns")
        if empty:
            logger.warning("leaving out %d row(s) with empty text (rows %s)", len(empty), empty[:10])
            rows = np.setdiff1d(rows, np.asarray(empty, dtype=np.int64))
            if not len(rows):
                raise UniformError("every row has empty text; check text_columns / template")
            work = work.select(rows.tolist())
        x = embed(work, emb, progress=progress, cache=cache)
        source = {"embedder": emb.config(), "text": text, "dropped_empty_rows": empty}
    kk = None if k is None else check_k(k, len(rows))
    if labels is not None:
        engine_kwargs["group_by"] = labels[rows]
    pos = {int(r): i for i, r in enumerate(rows)}
    if starts is not None:
        if any(s >= n for s in starts):
            raise UniformError(f"start rows {[s for s in starts if s >= n][:10]} are out of range for n={n}")
        if any(s not in pos for s in starts):
            raise UniformError("a start row has empty text and was left out; choose other start rows")
        starts = [pos[s] for s in starts]
    sel = select_rows(x, kk, metric=metric, drop_zero_vectors=drop_zero_vectors, seed=seed, start=starts,
                      device=device, progress=progress, **engine_kwargs)
    if len(rows) != n:  # positions among the kept rows -> rows of ds
        info = {**sel.info, "dropped_rows": sorted(set(rows[sel.info.get("dropped_rows", [])].tolist()) |
                                                   set(np.setdiff1d(np.arange(n), rows).tolist()))}
        sel = Selection(rows[sel.indices], sel.min_distances, sel.coverage_radius, sel.metric, n, info)
    sel.info.update(source)
    logger.info("selected %d of %d rows: h=%.6g coverage=%.6g", sel.k, sel.n, sel.h, sel.coverage_radius)
    subset = subset_from_selection(ds, sel)
    return (subset, sel) if return_selection else subset
