"""Rows as the engines see them, and the fast distance pass of the pass-per-step engines.

Every engine selects on the same *prepared* rows: the float32 cast of the input, as given, under both metrics
(:func:`hf_uniform.engine.store.prepare_rows`); cosine distances are evaluated normalisation-free. This
module turns an input (array, tensor, memmap, Arrow column; one rank's shard of it) into those rows -- or,
for a cosine filter, into unit rows normalised in float64 -- on a device and in a storage dtype, and
computes the filter distances of one pass (:func:`point_distances`). The exact values that decide each pick
are in :mod:`hf_uniform.engine.exact`.

Example:
    >>> import numpy as np, torch
    >>> rows = as_rows(np.array([[3.0, 4.0], [1.0, 0.0]]), "cosine", torch.device("cpu"), torch.float32, unit=True)
    >>> [round(v, 6) for v in point_distances(rows, rows[1], "cosine").tolist()]
    [0.4, 0.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .store import prepare_rows, shape_of, slice_rows, take_rows, tensor_numpy, unit_rows


def as_rows(embeddings: np.ndarray | torch.Tensor, metric: str, device: torch.device,
            dtype: torch.dtype, unit: bool = False) -> torch.Tensor:
    """Prepared rows on ``device`` in ``dtype``: the float32 rows of
    :func:`~hf_uniform.engine.store.prepare_rows` -- the rows every engine selects on -- then cast; with
    ``unit=True`` (cosine filters) the rows divided by their float64 norm first.

    Example:
        >>> as_rows(np.array([[0.0, 2.0]]), "cosine", torch.device("cpu"), torch.float32).tolist()
        [[0.0, 2.0]]
        >>> as_rows(np.array([[0.0, 2.0]]), "cosine", torch.device("cpu"), torch.float16, unit=True).tolist()
        [[0.0, 1.0]]
    """
    with warnings.catch_warnings():  # read-only memmaps: copied below
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(embeddings, torch.Tensor) and embeddings.device.type != "cpu":
            x = embeddings.detach().to(torch.float32)
            if unit:
                x64 = x.double()
                x = (x64 / torch.linalg.vector_norm(x64, dim=1, keepdim=True)).float()
            return x.to(device=device, dtype=dtype).contiguous()
        arr = tensor_numpy(embeddings) if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    x = prepare_rows(arr, metric)
    if unit:
        x = unit_rows(x)
    return torch.from_numpy(x).to(device=device, dtype=dtype).contiguous()


def shard_rows(embeddings: Any, metric: str, device: torch.device, dtype: torch.dtype, lo: int,
               hi: int, unit: bool = False) -> torch.Tensor:
    """Prepared rows ``lo:hi`` of ``embeddings`` (one rank's shard) on ``device`` in ``dtype``.

    Example:
        >>> shard_rows(np.eye(3), "euclidean", torch.device("cpu"), torch.float32, 1, 3).shape
        torch.Size([2, 3])
    """
    x = embeddings[lo:hi] if isinstance(embeddings, (np.ndarray, torch.Tensor)) else slice_rows(embeddings, lo, hi)
    return as_rows(x, metric, device, dtype, unit)


def stream_chunks(src: Any, metric: str, device: torch.device, dtype: torch.dtype,
                  unit: bool = False) -> Callable[[], Iterator[tuple[int, torch.Tensor]]]:
    """A callable yielding ``(local offset, prepared rows)`` blocks of a streamed source, read on demand
    (``unit=True``: unit rows, for a cosine filter).

    Example:
        >>> from hf_uniform.engine.store import StreamSource
        >>> chunks = stream_chunks(StreamSource(np.eye(3), "cosine", chunk_rows=2), "cosine",
        ...                        torch.device("cpu"), torch.float32)
        >>> [off for off, _ in chunks()]
        [0, 2]
    """
    def gen() -> Iterator[tuple[int, torch.Tensor]]:
        for off, raw in src.raw_chunks():
            yield off, as_rows(np.asarray(raw), metric, device, dtype, unit)
    return gen


def prepared_rows(embeddings: Any, ids: np.ndarray, metric: str) -> np.ndarray:
    """Prepared float32 rows ``ids`` (global indices, any order) of ``embeddings``: e.g. the centres of a
    resumed run.

    Example:
        >>> prepared_rows(np.array([[0.0, 2.0], [3.0, 4.0]]), np.array([1]), "cosine").tolist()
        [[3.0, 4.0]]
    """
    d = shape_of(embeddings)[1]
    if len(ids) == 0:
        return np.empty((0, d), dtype=np.float32)
    order = np.argsort(ids, kind="stable")
    out = np.empty((len(ids), d), dtype=np.float32)
    out[order] = prepare_rows(take_rows(embeddings, np.asarray(ids)[order]), metric)
    return out


def point_distances(rows: torch.Tensor, centre: torch.Tensor, metric: str,
                    rinv: torch.Tensor | None = None) -> torch.Tensor:
    """Filter distances (float32) from each of ``rows`` to one ``centre``; rows prepared by the engine.

    For cosine the centre is a unit vector and the distance is ``1 - <x, c>`` for unit rows, or
    ``1 - <x, c> rinv`` for raw rows with ``rinv = 1 / |x|`` (float32); for euclidean it is computed from
    differences. These values carry the storage dtype's and the GEMV's rounding; the ``plain`` and ``sweep``
    engines use them only as a filter with a proven error bound and decide every pick with exact float64
    re-evaluations (:mod:`hf_uniform.engine.exact`).

    Example:
        >>> point_distances(torch.eye(2), torch.tensor([1.0, 0.0]), "cosine").tolist()
        [0.0, 1.0]
        >>> point_distances(torch.tensor([[2.0, 0.0]]), torch.tensor([1.0, 0.0]), "cosine",
        ...                 torch.tensor([0.5])).tolist()
        [0.0]
    """
    if metric == "cosine":
        dots = (rows @ centre).float()
        if rinv is not None:
            dots = dots * rinv
        return (1.0 - dots).clamp_(min=0.0)
    return torch.linalg.vector_norm((rows - centre).float(), dim=1)


__all__ = ["as_rows", "point_distances", "prepared_rows", "shard_rows", "stream_chunks"]
