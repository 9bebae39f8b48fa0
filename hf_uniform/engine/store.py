"""Row sources for the engines: rows in memory, or streamed in chunks from a memory-mapped / Arrow array.

Both kinds hand out *prepared* rows -- the float32 rows as given, under either metric -- through the same
per-row arithmetic (:func:`prepare_rows`), so a streamed run selects exactly what an in-memory run selects.

Example:
    >>> import numpy as np
    >>> src = InMemorySource(np.array([[3.0, 4.0], [1.0, 0.0]]), "cosine")
    >>> src.rows(np.array([0])).tolist()
    [[3.0, 4.0]]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..errors import UniformError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 1 << 10, "m": 10**6, "mb": 10**6, "mib": 1 << 20,
          "g": 10**9, "gb": 10**9, "gib": 1 << 30, "t": 10**12, "tb": 10**12, "tib": 1 << 40}


def parse_bytes(value: int | float | str | None) -> int | None:
    """Turn ``"2GB"``, ``"512MiB"``, ``1e9`` or ``None`` into a byte count, as ``datasets`` reads sizes.

    Strings go through ``datasets.utils.py_utils.convert_file_size_to_int`` when it can read them:
    decimal ``KB``/``MB``/``GB`` (``1GB = 10**9``) and binary ``KiB``/``MiB``/``GiB`` (``1GiB = 2**30``). Units
    are case-insensitive and always bytes: ``datasets`` reads a lowercase ``b`` as bits, which for a memory
    budget is a trap, so ``"8gb"`` is 8 * 10**9 bytes here. Decimals (``"1.5GB"``) and bare units (``"2G"``,
    decimal) are read the same way.

    Example:
        >>> parse_bytes("2GB"), parse_bytes("1GiB"), parse_bytes("1.5 KiB"), parse_bytes(1024), parse_bytes(None)
        (2000000000, 1073741824, 1536, 1024, None)
        >>> parse_bytes("8gb") == parse_bytes("8GB") == 8 * 10**9
        True
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise UniformError(f"max_memory must be a size such as '2GB' or a byte count, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(value)) or value <= 0:
            raise UniformError(f"max_memory must be a positive size, got {value!r}")
        return int(value)
    text = str(value).strip()
    out = None
    try:
        from datasets.utils.py_utils import convert_file_size_to_int

        out = int(convert_file_size_to_int(text[:-1] + "B" if text.endswith("b") else text))
    except (ImportError, ValueError, TypeError):
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)", text)
        if m and m.group(2).lower() in _UNITS:
            out = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if out is None:
        raise UniformError(f"cannot read max_memory={value!r}; write a size such as '512MB', '2GB' or a byte count")
    if out <= 0:
        raise UniformError(f"max_memory must be a positive size, got {value!r}")
    return out


def take_rows(raw: Any, ids: np.ndarray) -> np.ndarray:
    """Rows ``ids`` (sorted ascending is fastest) of a 2-D array-like as a numpy array (no dtype change).

    Supports numpy arrays and memmaps, torch tensors, pyarrow ``FixedSizeListArray`` / ``ChunkedArray``
    columns of fixed-size lists, and anything indexable by an integer array.

    Example:
        >>> take_rows(np.arange(6).reshape(3, 2), np.array([2, 0])).tolist()
        [[4, 5], [0, 1]]
    """
    if isinstance(raw, np.ndarray):
        return np.asarray(raw[ids])
    if isinstance(raw, torch.Tensor):
        return tensor_numpy(raw[torch.from_numpy(np.asarray(ids, dtype=np.int64)).to(raw.device)])
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        pa = None
    if pa is not None and isinstance(raw, (pa.Array, pa.ChunkedArray)):
        taken = raw.take(pa.array(np.asarray(ids, dtype=np.int64)))
        if isinstance(taken, pa.ChunkedArray):
            taken = taken.combine_chunks()
        width = taken.type.list_size
        return taken.flatten().to_numpy(zero_copy_only=False).reshape(len(ids), width)
    return np.asarray(raw[np.asarray(ids)])


def slice_rows(raw: Any, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of a 2-D array-like as a numpy array.

    Example:
        >>> slice_rows(np.arange(6).reshape(3, 2), 1, 3).tolist()
        [[2, 3], [4, 5]]
    """
    if isinstance(raw, np.ndarray):
        return np.asarray(raw[lo:hi])
    if isinstance(raw, torch.Tensor):
        return tensor_numpy(raw[lo:hi])
    return take_rows(raw, np.arange(lo, hi))


def shape_of(raw: Any) -> tuple[int, int]:
    """``(rows, dims)`` of a 2-D array-like (numpy, torch, pyarrow fixed-size-list column).

    Example:
        >>> shape_of(np.zeros((4, 3)))
        (4, 3)
    """
    shape = getattr(raw, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0]), int(shape[1])
    try:
        import pyarrow as pa

        if isinstance(raw, (pa.Array, pa.ChunkedArray)) and pa.types.is_fixed_size_list(raw.type):
            return len(raw), int(raw.type.list_size)
    except ImportError:  # pragma: no cover
        pass
    raise UniformError(f"embeddings must be a 2-D array (rows, dims), got {type(raw).__name__} with shape {shape}")


def prepare_rows(x: np.ndarray, metric: str, out: np.ndarray | None = None) -> np.ndarray:
    """The rows every engine selects on: the float32 cast of the input, *not* normalised, for both metrics.

    Cosine distances are evaluated normalisation-free (``1 - <a, b> / (|a| |b|)`` in float64, see
    :mod:`hf_uniform.engine.reference`), so rows pointing the same way are at distance exactly 0; only the
    filters work on unit rows (:func:`unit_rows`). The arithmetic of each row depends only on that row, so
    streamed and in-memory runs agree bit for bit.

    Example:
        >>> prepare_rows(np.array([[0.0, 2.0]]), "cosine").tolist()
        [[0.0, 2.0]]
    """
    x = _as_float_array(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if out is None:
        return x
    out[...] = x
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float32 rounding of ``x / |x|`` computed in float64 (the cosine filters' copy of the rows).

    Example:
        >>> unit_rows(np.array([[3.0, 4.0]], dtype=np.float32)).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    x64 = np.asarray(x, dtype=np.float64)
    nrm = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    nrm[nrm == 0] = 1.0
    return (x64 / nrm[:, None]).astype(np.float32)


def _as_float_array(x: Any) -> np.ndarray:
    """A numpy view/copy of rows: torch tensors are detached and moved to the CPU, and dtypes numpy lacks
    (bfloat16) are cast to float32."""
    if isinstance(x, torch.Tensor):
        return tensor_numpy(x)
    return np.asarray(x)


def tensor_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a numpy array: detached (``requires_grad`` tensors), on the CPU, and float32 when numpy
    has no such dtype (``bfloat16``, float8).

    Example:
        >>> tensor_numpy(torch.ones(1, 2, dtype=torch.bfloat16, requires_grad=True)).tolist()
        [[1.0, 1.0]]
    """
    t = t.detach()
    if t.dtype in (torch.bfloat16,) or "float8" in str(t.dtype):
        t = t.float()
    return t.cpu().numpy()


#: smallest normal float32: below it a cosine row's filter products underflow (its error bounds need a normal norm)
F32_TINY = float(np.finfo(np.float32).tiny)
#: largest float32 row norm accepted under euclidean: squared distances stay finite in float32
EUCLIDEAN_NORM_MAX = 1e18


def _rows_msg(rows: np.ndarray, offset: int) -> str:
    shown = (rows[:10] + offset).tolist()
    more = "" if rows.size <= 10 else f" (and {rows.size - 10} more)"
    return f"rows {shown}{more}"


def check_chunk(x: np.ndarray, metric: str, offset: int) -> None:
    """Validate rows ``offset ..`` as the engine sees them: after the cast to float32 (and, for cosine, the
    float64 norm used to normalise them). Raises a one-line :class:`~hf_uniform.errors.UniformError` naming
    the rows and the fix for: NaN/inf values; values that overflow float32; under cosine, rows that are zero
    (or underflow to zero in float32), whose norm is subnormal (below ``F32_TINY``) or overflows float32;
    under euclidean, rows whose norm exceeds ``EUCLIDEAN_NORM_MAX``.

    Example:
        >>> check_chunk(np.ones((2, 2)), "cosine", 0)
        >>> check_chunk(np.array([[1.0, 0.0], [1e39, 0.0]]), "cosine", 10)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: rows [11] have values beyond the float32 range (|v| > 3.4e38) that the engine works in; rescale the embeddings (e.g. divide by their largest norm) or drop those rows
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise UniformError(f"embeddings must be real numbers, got dtype {x.dtype}")
    finite_src = np.isfinite(x).all(axis=1) if np.issubdtype(x.dtype, np.floating) else np.ones(len(x), bool)
    if not finite_src.all():
        raise UniformError(f"embeddings contain NaN or inf at {_rows_msg(np.flatnonzero(~finite_src), offset)}; "
                           "clean or re-embed those rows")
    with np.errstate(over="ignore", under="ignore"):
        x32 = x.astype(np.float32, copy=False)
    finite = np.isfinite(x32).all(axis=1)
    if not finite.all():
        raise UniformError(f"{_rows_msg(np.flatnonzero(~finite), offset)} have values beyond the float32 range "
                           "(|v| > 3.4e38) that the engine works in; rescale the embeddings (e.g. divide by "
                           "their largest norm) or drop those rows")
    nrm = np.sqrt(np.einsum("ij,ij->i", x32, x32, dtype=np.float64))
    if metric == "cosine":
        zero = nrm == 0.0
        if zero.any():
            under = zero & (x != 0).any(axis=1)
            if under.any():
                raise UniformError(f"{_rows_msg(np.flatnonzero(under), offset)} underflow to zero in float32 "
                                   "(values below 1.4e-45); rescale the embeddings (e.g. divide each row by its "
                                   "norm in float64 first) or drop those rows")
            raise UniformError(
                f"{int(zero.sum())} zero vector(s) under the cosine metric at {_rows_msg(np.flatnonzero(zero), offset)}"
                "; drop them with drop_zero_vectors=True (CLI: --drop-zero-vectors) or use metric='euclidean'")
        with np.errstate(over="ignore"):
            n32 = nrm.astype(np.float32)
        tiny = n32 < F32_TINY
        if tiny.any():
            raise UniformError(f"{_rows_msg(np.flatnonzero(tiny), offset)} have a float32 norm below 1.2e-38 "
                               "(subnormal), too small to normalise exactly; rescale the embeddings (e.g. divide "
                               "each row by its norm in float64 first) or drop those rows")
        big = ~np.isfinite(n32)
        if big.any():
            raise UniformError(f"{_rows_msg(np.flatnonzero(big), offset)} have a norm beyond the float32 range "
                               "(> 3.4e38); rescale the embeddings (e.g. divide each row by its norm in float64 "
                               "first) or drop those rows")
    else:
        big = nrm > EUCLIDEAN_NORM_MAX
        if big.any():
            raise UniformError(f"{_rows_msg(np.flatnonzero(big), offset)} have a norm above 1e18, where squared "
                               "float32 distances overflow; rescale the embeddings (divide all rows by one "
                               "constant) or drop those rows")


class InMemorySource:
    """All prepared rows held in one float32 array (the input itself when it is a C-contiguous float32 array:
    the prepared rows are the rows as given, so nothing is copied; the engines only read it).

    Example:
        >>> InMemorySource(np.eye(3), "euclidean").n
        3
    """

    in_memory = True

    def __init__(self, x: Any, metric: str, lo: int = 0, hi: int | None = None, chunk_rows: int = 65536):
        n_all, d = shape_of(x)
        hi = n_all if hi is None else hi
        self.n, self.d, self.metric = hi - lo, d, metric
        if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and x[lo:hi].flags.c_contiguous:
            self.x = x[lo:hi]  # the prepared rows are the float32 rows as given: no copy
            return
        self.x = np.empty((self.n, d), dtype=np.float32)
        for a in range(0, self.n, chunk_rows):
            b = min(self.n, a + chunk_rows)
            prepare_rows(slice_rows(x, lo + a, lo + b), metric, out=self.x[a:b])

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Prepared float32 rows ``ids`` (local indices)."""
        return self.x[ids]


class StreamSource:
    """Rows read on demand from an array-like that is never copied whole (memmap, Arrow column, ...).

    Only the rows asked for are read and prepared; validation runs once, chunk by chunk.

    Example:
        >>> s = StreamSource(np.eye(3, dtype=np.float16), "cosine")
        >>> s.rows(np.array([2])).tolist()
        [[0.0, 0.0, 1.0]]
    """

    in_memory = False

    def __init__(self, raw: Any, metric: str, lo: int = 0, hi: int | None = None, chunk_rows: int = 65536,
                 validate: bool = True):
        n_all, d = shape_of(raw)
        hi = n_all if hi is None else hi
        self.raw, self.lo, self.n, self.d, self.metric = raw, lo, hi - lo, d, metric
        self.chunk_rows = max(1, int(chunk_rows))
        if validate:
            for a, chunk in self.raw_chunks():
                check_chunk(chunk, metric, lo + a)

    def raw_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(local offset, raw rows)`` in order."""
        for a in range(0, self.n, self.chunk_rows):
            yield a, slice_rows(self.raw, self.lo + a, self.lo + min(self.n, a + self.chunk_rows))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Prepared float32 rows ``ids`` (local indices), read from the source."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty((0, self.d), dtype=np.float32)
        order = np.argsort(ids, kind="stable")
        out = np.empty((ids.size, self.d), dtype=np.float32)
        sorted_ids = ids[order]
        for a in range(0, ids.size, self.chunk_rows):
            sl = order[a:a + self.chunk_rows]
            out[sl] = prepare_rows(take_rows(self.raw, sorted_ids[a:a + self.chunk_rows] + self.lo), self.metric)
        return out
