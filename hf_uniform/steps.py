"""The steps of the one selection pipeline: :func:`prepare` (checks that need the data), :func:`embed_prepared`,
:func:`finish` (select, map back to rows of the input), :func:`run_spine` (all three) and :func:`select_uniform`.

>>> import numpy as np
>>> select_uniform(np.eye(3), 2, start=1).indices.tolist()
[1, 0]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UniformError
from .spine import SelectConfig

logger = logging.getLogger(__name__)


@dataclass
class SpineResult:
    """What :func:`run_spine` computed: the selection (indices into the input), the embeddings of the kept rows
    (``None`` when the vectors were streamed from a stored column), the kept rows and how the text was read.

    Example:
        >>> SpineResult(None, None, np.arange(2), {}).rows.tolist()
        [0, 1]
    """

    selection: Any
    embeddings: Any
    rows: np.ndarray
    source: dict[str, Any]
    positions: Any = None  # the same selection over the kept rows (indices into ``rows``; zero vectors dropped)


def _labels(ds: Any, group_by: Any, n: int, quotas: Any) -> np.ndarray | None:
    if group_by is None:
        return None
    if isinstance(group_by, str):
        if ds is None or group_by not in ds.column_names:
            cols = [] if ds is None else ds.column_names
            raise UniformError(f"group_by column {group_by!r} is not in the dataset; columns: {cols[:20]}")
        values = ds.select_columns([group_by])[group_by]
        labels = np.asarray(list(values), dtype=object)
        if quotas is not None and all(isinstance(q, str) for q in quotas):  # text keys (the CLI's): text labels
            labels = np.asarray([str(v) for v in labels], dtype=object)
    else:
        labels = np.asarray(list(group_by), dtype=object)
    if len(labels) != n:
        raise UniformError(f"group_by has {len(labels)} labels for {n} rows; pass one group label per row")
    return labels


def stored_vectors(ds: Any, column: str, *, stream: bool = False) -> Any:
    """The vectors of ``ds[column]``: an ``(n, d)`` float32 array, or with ``stream`` the Arrow column itself (a
    fixed-size-list ``ChunkedArray`` over the dataset's memory-mapped file, nothing copied) for the engine to read
    in chunks.

    Example:
        >>> from datasets import Dataset
        >>> stored_vectors(Dataset.from_dict({"e": [[1.0, 2.0], [3.0, 4.0]]}), "e").shape
        (2, 2)
    """
    from .vectors import embedding_matrix

    if not stream:
        return embedding_matrix(ds, column)
    import pyarrow as pa

    if column not in ds.column_names:
        raise UniformError(f"embedding column {column!r} not found; available columns: {ds.column_names}")
    arr = ds.with_format("arrow").select_columns([column])[:][column]  # zero-copy slices without an indices map
    typ = arr.type
    if not (pa.types.is_fixed_size_list(typ) and pa.types.is_floating(typ.value_type) and arr.null_count == 0):
        return embedding_matrix(ds, column)  # ragged / integer / null rows: the checked copy (and its messages)
    return arr


@dataclass
class Prepared:
    """The rows to select from, checked, before anything is embedded (:func:`prepare`).

    Attributes:
        ds: the input (a ``Dataset`` or an array of vectors); rows: its kept rows (empty text left out);
        embedder: the embedder (``None`` for stored vectors); text: the columns and template it reads;
        empty: rows left out for empty text; labels: group labels of ``rows`` (or ``None``);
        k: the row count of ``k`` among the kept rows; starts: start positions among the kept rows.

    Example:
        >>> p = prepare(np.eye(3), SelectConfig(k=2)); p.rows.tolist(), p.k
        ([0, 1, 2], 2)
    """

    ds: Any
    config: SelectConfig
    rows: np.ndarray
    embedder: Any = None
    text: dict[str, Any] | None = None
    empty: list[int] = field(default_factory=list)
    labels: np.ndarray | None = None
    k: int | None = None
    starts: list[int] | None = None


def prepare(ds: Any, config: SelectConfig, *, source_rows: Any = None, source_n: int | None = None) -> Prepared:
    """Every check that needs the data but not the embeddings: row count, ``k``, start rows, group labels, the text
    layout and empty rows (left out with ``drop_empty``, else refused).

    ``source_rows`` (the user's row number of each row of ``ds``) and ``source_n`` make error messages name the
    user's rows when ``ds`` is a part of their data (e.g. the pool left after ``--heldout``).

    Example:
        >>> prepare(np.eye(3), SelectConfig(k=5))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: k=5 exceeds the number of rows n=3; pass k <= 3
    """
    from .engine.store import shape_of
    from .selection import check_k

    cfg = config
    from datasets import Dataset, DatasetDict

    if isinstance(ds, DatasetDict):
        raise UniformError(f"select_uniform takes a Dataset; this is a DatasetDict with splits {list(ds)}; pass "
                           "one split (ds['train']) or use ds.filter_uniform(...)")
    is_dataset = isinstance(ds, Dataset)
    if cfg.k is None and cfg.radius is None and cfg.quotas is None:
        raise UniformError("pass k (rows or a fraction), radius (a coverage target) or per-group quotas")
    n = len(ds) if is_dataset else shape_of(ds)[0]
    if n == 0:
        raise UniformError("the dataset is empty: there is nothing to select from")
    if cfg.k is not None:
        check_k(cfg.k, n)
    if cfg.start is not None and max(cfg.start) >= n:
        raise UniformError(f"start rows {[s for s in cfg.start if s >= n][:10]} are out of range for n={n}")
    labels = _labels(ds if is_dataset else None, cfg.group_by, n, cfg.quotas)
    out = Prepared(ds, cfg, np.arange(n))
    if not is_dataset:
        if cfg.embedding_column is not None:
            raise UniformError("embedding_column names a column of a Dataset; this input is already an array")
    elif cfg.embedding_column is not None:
        if cfg.embedding_column not in ds.column_names:
            raise UniformError(f"embedding column {cfg.embedding_column!r} not found; available columns: "
                               f"{ds.column_names[:20]}")
    else:
        emb = out.embedder = cfg.embedder_instance()
        text = out.text = emb.renderer.describe(ds.column_names)
        empty = out.empty = emb.renderer.empty_rows(ds.select_columns(text["columns"]))
        if empty and not cfg.drop_empty:
            shown = empty[:10] if source_rows is None else [int(source_rows[e]) for e in empty[:10]]
            raise UniformError(f"{len(empty)} of {source_n or n} rows have empty text in columns {text['columns']} "
                               f"(rows {shown}{' ...' if len(empty) > 10 else ''}); pass drop_empty=True (CLI: "
                               "--drop-empty) to leave them out, or other text_columns / template")
        if empty:
            logger.warning("leaving out %d row(s) with empty text (rows %s)", len(empty), empty[:10])
            out.rows = np.setdiff1d(out.rows, np.asarray(empty, dtype=np.int64))
            if not len(out.rows):
                raise UniformError("every row has empty text; check text_columns / template")
    if cfg.k is not None:
        if isinstance(cfg.k, int) and cfg.k > len(out.rows):
            raise UniformError(f"k={cfg.k} exceeds the {len(out.rows)} rows left after dropping empty ones")
        out.k = check_k(cfg.k, len(out.rows))
    if cfg.start is not None:
        pos = {int(r): i for i, r in enumerate(out.rows)}
        if any(s not in pos for s in cfg.start):
            raise UniformError("a start row has empty text and was left out; choose other start rows")
        out.starts = [pos[s] for s in cfg.start]
    out.labels = None if labels is None else labels[out.rows]
    return out


def embed_prepared(p: Prepared, *, distributed: bool = False) -> tuple[Any, dict[str, Any]]:
    """The vectors of the kept rows (an array, or a stored Arrow column streamed under ``max_memory``) and what
    they are (``{"embedding_column": ...}`` or the embedder's settings and text layout).

    Example:
        >>> x, source = embed_prepared(prepare(np.eye(2), SelectConfig(k=1))); x.shape, source
        ((2, 2), {})
    """
    from .vectors import embed

    cfg, ds = p.config, p.ds
    if not hasattr(ds, "column_names"):  # an array of vectors
        return ds, {}
    if cfg.embedding_column is not None:
        stream = cfg.max_memory is not None and not cfg.drop_zero_vectors
        return stored_vectors(ds, cfg.embedding_column, stream=stream), {"embedding_column": cfg.embedding_column}
    work = ds if len(p.rows) == len(ds) else ds.select(p.rows.tolist())
    x = embed(work, p.embedder, progress=cfg.progress, cache=cfg.cache, distributed=distributed or None)
    return x, {"embedder": p.embedder.config(), "text": p.text, "dropped_empty_rows": p.empty}


def finish(p: Prepared, x: Any, source: dict[str, Any], *, distributed: bool = False) -> SpineResult:
    """Select on the vectors ``x`` of the kept rows and map the positions back to rows of the input.

    Example:
        >>> p = prepare(np.eye(3), SelectConfig(k=2, start=1))
        >>> finish(p, np.eye(3), {}).selection.indices.tolist()
        [1, 0]
    """
    from .selection import Selection

    n, rows = len(p.ds) if hasattr(p.ds, "column_names") else len(p.rows), p.rows
    sel = raw = _select(x, p.k, p.config, p.starts, p.labels, distributed)
    if len(rows) != n:  # positions among the kept rows -> rows of ds
        dropped = set(rows[sel.info.get("dropped_rows", [])].tolist()) | set(np.setdiff1d(np.arange(n), rows).tolist())
        sel = Selection(rows[sel.indices], sel.min_distances, sel.coverage_radius, sel.metric, n,
                        {**sel.info, "dropped_rows": sorted(dropped)})
    sel.info.update(source)
    sel.info["backend"] = p.config.backend
    logger.info("selected %d of %d rows: h=%.6g coverage=%.6g", sel.k, sel.n, sel.h, sel.coverage_radius)
    return SpineResult(sel, x if isinstance(x, np.ndarray) else None, rows, source, raw)


def run_spine(ds: Any, config: SelectConfig, *, distributed: bool = False) -> SpineResult:
    """Render -> drop empty rows -> embed -> select -> map back: the one pipeline behind every entry point
    (:func:`prepare`, :func:`embed_prepared`, :func:`finish`).

    ``ds`` is a ``Dataset`` or an ``(n, d)`` array of embeddings (then nothing is rendered or embedded). Row
    indices in the result (``selection.indices``, ``info["dropped_rows"]``) are rows of ``ds``.

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> run_spine(x, SelectConfig(k=2, start=0, metric="euclidean")).selection.indices.tolist()
        [0, 1]
    """
    p = prepare(ds, config)
    x, source = embed_prepared(p, distributed=distributed)
    return finish(p, x, source, distributed=distributed)


def _select(x: Any, k: int | None, cfg: SelectConfig, starts: list[int] | None, labels: np.ndarray | None,
            distributed: bool) -> Any:
    """The selection step on the kept rows' vectors: exact, core-set or Ray (positions into ``x``)."""
    from .vectors import select_rows

    kwargs = cfg.engine_kwargs()
    if cfg.backend == "exact":
        if labels is not None:
            kwargs["group_by"] = labels
            kwargs["quotas"] = cfg.quotas
        if distributed:
            kwargs["distributed"] = True
        return select_rows(x, k, drop_zero_vectors=cfg.drop_zero_vectors, start=starts, **kwargs)
    for name in ("radius", "tie_break", "progress"):
        kwargs.pop(name)
    if cfg.backend == "coreset":
        from .coreset import coreset_select

        return coreset_select(x, k, shards=cfg.shards or 4, **kwargs)
    return _ray_select(np.asarray(x, dtype=np.float32), k, cfg, kwargs)


def _ray_select(x: np.ndarray, k: int, cfg: SelectConfig, kwargs: dict[str, Any]) -> Any:
    """The core-set on Ray over the rows of ``x`` (:func:`hf_uniform.ray.select_uniform_ray`)."""
    from datasets import Dataset

    from .ray._common import _ray, init_ray
    from .ray.reading import from_dataset
    from .ray.select import select_uniform_ray

    ray = _ray()
    started = init_ray(cfg.ray_address, quiet=not cfg.progress)
    try:
        rd = from_dataset(Dataset.from_dict({"embedding": x.tolist()}))
        metric, seed, device = kwargs.pop("metric"), kwargs.pop("seed"), kwargs.pop("device")
        res = select_uniform_ray(rd, k, shards=cfg.shards, embedding_column="embedding", metric=metric, seed=seed,
                                 device=device, progress=cfg.progress, return_rows=False, **kwargs)
        return res.selection
    finally:
        if started:
            ray.shutdown()


def select_uniform(ds: Any, k: int | float | str | None = None, *, config: SelectConfig | None = None,
                   **options: Any) -> Any:
    """The greedy max-min (uniform) selection of ``ds``: a :class:`~hf_uniform.selection.Selection` whose
    ``indices`` are rows of ``ds``, in greedy order.

    Renders the text of each row (or reads ``embedding_column``), leaves out empty rows with ``drop_empty``,
    embeds, selects (``backend``: the exact engine, the core-set, or the core-set on Ray) and maps the positions
    back to rows of ``ds``. ``ds.filter_uniform(k, **options)`` returns the same rows as a ``Dataset``.

    Args:
        ds: a ``Dataset``, or an ``(n, d)`` array of embeddings.
        k: rows (an int), a fraction in (0, 1) (a float), or text such as ``"0.5"``; may be left out with
            ``radius`` or ``quotas``.
        config: a :class:`SelectConfig`; ``k`` and ``options`` override its fields.
        **options: the fields of :class:`SelectConfig` (``seed``, ``start``, ``embedder``, ``metric``, ...).

    Raises:
        UniformError: a bad option (one line, naming the fix), or data that cannot be selected from.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"e": [[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]})
        >>> sel = select_uniform(ds, 2, embedding_column="e", metric="euclidean", start=0)
        >>> sel.indices.tolist(), sel.h
        ([0, 2], 5.0)
    """
    cfg = SelectConfig.from_options(config, **({"k": k} if k is not None else {}), **options)
    return run_spine(ds, cfg).selection
