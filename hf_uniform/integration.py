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

from .errors import UniformError
from .vectors import (  # noqa: F401 - re-exported: their earlier home
    DISTANCE_COLUMN,
    RANK_COLUMN,
    embed,
    embedding_matrix,
    nonzero_rows,
    select_rows,
)

logger = logging.getLogger(__name__)


def _config(k: Any, config: Any, options: dict[str, Any]) -> Any:
    from .spine import SelectConfig

    return SelectConfig.from_options(config, **({"k": k} if k is not None else {}), **options)


def _fingerprint(ds: Any, cfg: Any, what: str) -> str:
    """Deterministic fingerprint of ``what`` applied to ``ds`` with ``cfg`` (datasets' own ``Hasher``)."""
    from datasets.fingerprint import Hasher

    parts = cfg.hash_parts()
    emb = cfg.embedder
    if not isinstance(emb, str):  # an instance: also what it was fitted on
        parts["embedder_fitted_on"] = getattr(emb, "_fitted_on", None)
    return Hasher.hash({"op": f"hf_uniform.{what}", "data": ds._fingerprint, "config": parts, "version": 1})


def _quiet_bars(progress: bool) -> Any:
    """A context in which datasets' progress bars are off unless ``progress``."""
    from contextlib import contextmanager

    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    @contextmanager
    def ctx() -> Any:
        was = is_progress_bar_enabled()
        if not progress:
            disable_progress_bar()
        try:
            yield
        finally:
            if was and not progress:
                enable_progress_bar()
    return ctx()


def _ranks(ds: Any, cfg: Any, *, full: bool, fingerprint: str, desc: str | None,
           load_from_cache_file: bool | None) -> Any:
    """A dataset of ``uniform_rank`` / ``uniform_min_distance`` for every row of ``ds`` (``-1`` / null for rows
    not chosen), through ``ds.map`` with a deterministic fingerprint: datasets' cache holds it, and a cache hit
    neither embeds nor selects (the selection runs inside the mapped function, once)."""
    from datasets import Features, Value

    from .steps import run_spine

    state: dict[str, Any] = {}

    def compute() -> None:
        # the whole order: the engine stops at coverage radius 0; the rows left follow in the greedy's tie order
        extend = full and cfg.k is None and cfg.quotas is None and cfg.group_by is None and cfg.radius == 0.0
        sel = run_spine(ds, cfg).selection
        n = len(ds)
        rank = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        rank[sel.indices] = np.arange(sel.k)
        dist[sel.indices] = sel.min_distances
        if extend and sel.k < n:
            rest = np.setdiff1d(np.flatnonzero(rank < 0), np.asarray(sel.info.get("dropped_rows", []), dtype=np.int64))
            if cfg.tie_break == "random":
                from .engine.rules import tie_priority

                rest = rest[np.argsort(tie_priority(n, cfg.seed)[rest], kind="stable")]
            rank[rest] = np.arange(sel.k, sel.k + len(rest))
            dist[rest] = 0.0
        state.update(rank=rank, dist=dist, selection=sel)

    def fn(idx: list[int]) -> dict[str, list[Any]]:
        if not state:
            compute()
        d = state["dist"][idx]
        return {RANK_COLUMN: state["rank"][idx].tolist(),
                DISTANCE_COLUMN: [None if not np.isfinite(v) else float(v) for v in d.tolist()]}

    features = Features({RANK_COLUMN: Value("int64"), DISTANCE_COLUMN: Value("float64")})
    with _quiet_bars(cfg.progress):
        out = ds.map(fn, batched=True, batch_size=10_000, with_indices=True, input_columns=[],  # no column is read
                     remove_columns=ds.column_names, features=features,
                     new_fingerprint=fingerprint, desc=desc or "uniform rank",
                     load_from_cache_file=load_from_cache_file)
    return out, state.get("selection")


def _without_rank_columns(ds: Any) -> Any:
    old = [c for c in (RANK_COLUMN, DISTANCE_COLUMN) if c in ds.column_names]
    return ds.remove_columns(old) if old else ds


def _with_columns(base: Any, rank: np.ndarray, dist: list[Any], *, new_fingerprint: str, desc: str | None,
                  load_from_cache_file: bool | None, progress: bool) -> Any:
    """``base`` (rows unchanged) plus the two columns, through ``map`` (so ``new_fingerprint`` / ``desc`` /
    ``load_from_cache_file`` behave as in datasets)."""
    from datasets import Value

    features = base.features.copy()
    features[RANK_COLUMN] = Value("int64")
    features[DISTANCE_COLUMN] = Value("float64")

    def fn(_: Any, idx: list[int]) -> dict[str, list[Any]]:
        return {RANK_COLUMN: [int(rank[i]) for i in idx], DISTANCE_COLUMN: [dist[i] for i in idx]}

    with _quiet_bars(progress):
        return base.map(fn, batched=True, with_indices=True, input_columns=[base.column_names[0]],
                        features=features, new_fingerprint=new_fingerprint, desc=desc,
                        load_from_cache_file=load_from_cache_file)


def _splits_to_filter(ds: Any, splits: str | Sequence[str] | None) -> list[str]:
    if splits is None:
        if "train" in ds:
            return ["train"]
        if len(ds) == 1:
            return list(ds)
        raise UniformError(f"no 'train' split among {list(ds)}; pass splits=[...] to say which to filter")
    chosen = [splits] if isinstance(splits, str) else list(splits)
    unknown = [s for s in chosen if s not in ds]
    if unknown or not chosen:
        raise UniformError(f"splits {unknown or chosen} not in the DatasetDict; available splits: {list(ds)}")
    return chosen


def _per_split(fn: Any, ds: Any, cfg: Any, splits: Any, new_fingerprint: Any, **kwargs: Any) -> Any:
    """Apply ``fn`` to the chosen splits of a ``DatasetDict`` with one embedder fitted once on all of them."""
    from datasets import DatasetDict, concatenate_datasets

    chosen = _splits_to_filter(ds, splits)
    if cfg.group_by is not None and not isinstance(cfg.group_by, str):
        raise UniformError("group_by on a DatasetDict must be a column name (one label list cannot fit every split)")
    if new_fingerprint is not None and not isinstance(new_fingerprint, dict):
        raise UniformError("new_fingerprint of a DatasetDict is a dict {split: fingerprint}, as in DatasetDict.map")
    if cfg.embedding_column is None:
        emb = cfg.embedder_instance()
        if emb.needs_fit and not emb.fitted:  # one embedder for every filtered split: fitted once on all of them
            cols = [emb.renderer.required_columns(ds[s].column_names) for s in chosen]
            emb.progress = cfg.progress
            emb.fit(concatenate_datasets([ds[s].select_columns(c) for s, c in zip(chosen, cols, strict=True)]))
        cfg = cfg.replace(embedder=emb, text_columns=None, template=None)
    fps = new_fingerprint or {}
    return DatasetDict({name: fn(split, config=cfg, new_fingerprint=fps.get(name), **kwargs)
                        if name in chosen else split for name, split in ds.items()})


def filter_uniform(
    ds: Any,
    k: int | float | str | None = None,
    *,
    config: Any = None,
    splits: str | Sequence[str] | None = None,
    new_fingerprint: str | dict[str, str] | None = None,
    desc: str | None = None,
    load_from_cache_file: bool | None = None,
    **options: Any,
) -> Any:
    """The max-min uniform subset of ``ds``, in greedy order, as a ``Dataset`` (always; the
    :class:`~hf_uniform.selection.Selection` comes from :func:`hf_uniform.select_uniform`).

    The rows are :func:`hf_uniform.select_uniform`'s (``select_uniform(ds, k).indices``), unchanged, plus
    ``uniform_rank`` (0 = first chosen) and ``uniform_min_distance`` (the radius at which each row was chosen;
    null for the first). As ``Dataset.map``/``filter``: ``new_fingerprint`` names the result, ``desc`` labels the
    progress bar, ``load_from_cache_file`` reuses datasets' cache file of an earlier identical call (the
    fingerprint is a ``datasets.fingerprint.Hasher`` hash of the input's fingerprint and every option, so a
    cache hit embeds and selects nothing; datasets held in memory have no cache files).

    A ``DatasetDict``: only the ``splits`` are filtered (default: ``"train"`` when present, else the only
    split); the others are returned unchanged. One embedder is fitted once, on all filtered splits together,
    and ``k`` applies to each filtered split; ``new_fingerprint`` is then ``{split: fingerprint}``.

    Args:
        ds: a ``Dataset`` or ``DatasetDict``.
        k: rows (an int) or a fraction in (0, 1) (a float); may be left out with ``radius=`` or ``quotas=``.
        config: a :class:`~hf_uniform.spine.SelectConfig`; ``k`` and ``options`` override its fields.
        splits: the splits of a ``DatasetDict`` to filter.
        new_fingerprint: the fingerprint of the result (default: derived deterministically).
        desc: the progress bar's label.
        load_from_cache_file: reuse a cached result (datasets' default when ``None``).
        **options: the fields of :class:`~hf_uniform.spine.SelectConfig` (``text_columns``, ``template``,
            ``embedding_column``, ``embedder``, ``metric``, ``seed``, ``start``, ``device``, ``drop_empty``,
            ``drop_zero_vectors``, ``radius``, ``group_by``, ``quotas``, ``max_memory``, ``checkpoint``, ...).

    Raises:
        UniformError: a bad option, an unknown layout, empty texts, or unusable vectors (one line).

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"instruction": ["add 1 and 2", "name a colour", "add 2 and 2"],
        ...                         "output": ["3", "red", "4"]})
        >>> filter_uniform(ds, k=2, progress=False).column_names
        ['instruction', 'output', 'uniform_rank', 'uniform_min_distance']
        >>> ds = Dataset.from_dict({"e": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]],
        ...                         "lang": ["a", "a", "b", "b"]})
        >>> filter_uniform(ds, embedding_column="e", group_by="lang", quotas={"a": 2, "b": 1}, start=0,
        ...                progress=False)["lang"][:]
        ['a', 'a', 'b']
        >>> len(filter_uniform(ds, embedding_column="e", radius=0.5, start=0, progress=False))
        2
    """
    from datasets import DatasetDict
    from datasets.fingerprint import Hasher

    cfg = _config(k, config, options)
    if isinstance(ds, DatasetDict):
        return _per_split(filter_uniform, ds, cfg, splits, new_fingerprint, desc=desc,
                          load_from_cache_file=load_from_cache_file)
    if splits is not None:
        raise UniformError("splits= applies to a DatasetDict; this is a single Dataset")
    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    fp = _fingerprint(ds, cfg, "filter_uniform")
    ranks, _ = _ranks(ds, cfg, full=False, fingerprint=fp, desc=desc, load_from_cache_file=load_from_cache_file)
    rank = np.asarray(ranks[RANK_COLUMN], dtype=np.int64)
    chosen = np.flatnonzero(rank >= 0)
    order = chosen[np.argsort(rank[chosen], kind="stable")]
    dist = ranks.select(order.tolist())[DISTANCE_COLUMN][:]
    base = _without_rank_columns(ds).select(order.tolist())
    return _with_columns(base, np.arange(len(order)), dist, new_fingerprint=new_fingerprint or Hasher.hash([fp, "rows"]),
                         desc=desc, load_from_cache_file=load_from_cache_file, progress=cfg.progress)


def add_uniform_rank(
    ds: Any,
    k: int | float | str | None = None,
    *,
    config: Any = None,
    splits: str | Sequence[str] | None = None,
    new_fingerprint: str | dict[str, str] | None = None,
    desc: str | None = None,
    load_from_cache_file: bool | None = None,
    **options: Any,
) -> Any:
    """Every row of ``ds``, in its order, with its greedy rank and radius: ``uniform_rank`` (the step at which the
    greedy max-min picks it, 0 first) and ``uniform_min_distance`` (its distance to the rows picked before it).

    Without ``k`` (and ``radius``/``quotas``) the whole greedy order is computed (the engine stops at coverage
    radius 0; the rows left are duplicates, taken in the greedy's tie order at distance 0), so any budget ``b``
    is a filter: ``ds.add_uniform_rank().filter(lambda r: 0 <= r["uniform_rank"] < b)`` holds the rows of
    ``ds.filter_uniform(k=b)``. Rows never picked (beyond ``k``, left out as empty text or zero vectors) have
    rank ``-1`` and a null distance. Options, ``new_fingerprint``, ``desc``, ``load_from_cache_file`` and
    ``splits`` are those of :func:`filter_uniform`.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"e": [[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]})
        >>> add_uniform_rank(ds, embedding_column="e", metric="euclidean", start=0, progress=False)["uniform_rank"][:]
        [0, 2, 1]
    """
    from datasets import DatasetDict
    from datasets.fingerprint import Hasher

    if isinstance(ds, DatasetDict):
        cfg = _config(k, config, {**options} if k is not None or config is not None else {"radius": 0.0, **options})
        return _per_split(add_uniform_rank, ds, cfg, splits, new_fingerprint, desc=desc,
                          load_from_cache_file=load_from_cache_file)
    if splits is not None:
        raise UniformError("splits= applies to a DatasetDict; this is a single Dataset")
    if len(ds) == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if k is None and config is None and not {"radius", "quotas"} & set(options):
        cfg = _config(None, None, {**options, "radius": 0.0})  # the whole order (radius 0 is the full run)
    else:
        cfg = _config(k, config, options)
    fp = _fingerprint(ds, cfg, "add_uniform_rank")
    ranks, _ = _ranks(ds, cfg, full=True, fingerprint=fp, desc=desc, load_from_cache_file=load_from_cache_file)
    rank = np.asarray(ranks[RANK_COLUMN], dtype=np.int64)
    dist = ranks[DISTANCE_COLUMN][:]
    return _with_columns(_without_rank_columns(ds), rank, dist,
                         new_fingerprint=new_fingerprint or Hasher.hash([fp, "rows"]), desc=desc,
                         load_from_cache_file=load_from_cache_file, progress=cfg.progress)
