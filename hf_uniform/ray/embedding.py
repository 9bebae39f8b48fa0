"""Embedding a ``ray.data.Dataset`` with ``map_batches`` over an actor pool (:func:`embed_ray`)."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hf_uniform.embedders import Embedder, resolve_embedder
from hf_uniform.errors import UniformError

from ._common import _ordered, _ray

logger = logging.getLogger("hf_uniform.ray")

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

    from hf_uniform.embedders import SentenceTransformerEmbedder

    if isinstance(emb, SentenceTransformerEmbedder) and not emb._in_memory:
        out = copy.copy(emb)
        out._model = out._pool = out._finalizer = None
        return out
    emb.prepare()  # Word2Vec: nothing; model2vec: load (or distil once) here rather than on every actor
    return emb


def embed_ray(ds: Any, embedder: str | Embedder | None = None, *, text_columns: Sequence[str] | str | None = None,
              template: str | None = None, batch_size: int = 1000, concurrency: int | tuple[int, int] | None = None,
              num_gpus: float | None = None, num_cpus: float | None = None, max_restarts: int | None = None) -> Any:
    """Add the embedding column (Arrow fixed-size float32 list) to a ``ray.data.Dataset``, lazily.

    Batches go through ``map_batches`` over an actor pool, one embedder per actor. An embedder that learns
    from the corpus (Word2Vec) and is not fitted yet is fitted first on the driver, on the texts of ``ds``
    in row order (the same model ``embedder.fit(hf_dataset)`` trains), then shipped to the actors.

    Args:
        ds: a ``ray.data.Dataset`` (see :func:`read_input`).
        embedder: ``"w2v"`` (default), ``"st:MODEL"``, ``"m2v:MODEL"``, ``"m2v-distill:ST_MODEL"`` or an
            :class:`~hf_uniform.embedders.Embedder` (fitted or not).
        text_columns: columns whose text is embedded (when ``embedder`` is a spec).
        template: a ``str.format`` template over columns (when ``embedder`` is a spec).
        batch_size: rows per batch handed to an actor.
        concurrency: actors in the pool: a number, or ``(min, max)`` to autoscale (default ``(1, CPUs)``,
            or ``(1, GPUs)`` with ``num_gpus``).
        num_gpus: GPUs per actor (e.g. ``1`` for sentence-transformers on a GPU cluster).
        num_cpus: CPUs per actor (default 1).
        max_restarts: restarts of a failed actor (default: Ray Data's, unlimited). ``0`` fails fast instead,
            and keeps the core worker from logging an error line on every run about restarting actors whose
            constructor arguments (the embedder) live in the object store; ``hf-uniform select --ray local``
            passes 0 on the instance it starts.

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
    if max_restarts is not None:
        kwargs["max_restarts"] = int(max_restarts)
    lo, hi = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
    pool = ray.data.ActorPoolStrategy(size=lo) if lo == hi else ray.data.ActorPoolStrategy(min_size=lo, max_size=hi)
    with warnings.catch_warnings():  # Ray >= 2.60 names no parameter for max_restarts; it is still honoured
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        out = ds.map_batches(_EmbedActor, fn_constructor_args=(ref, columns), batch_size=batch_size,
                             batch_format="pyarrow", compute=pool, **kwargs)
    out.context.execution_options.preserve_order = True
    return out
