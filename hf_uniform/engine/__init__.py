"""Selection engines behind :func:`hf_uniform.selection.maxmin_select`.

* :mod:`hf_uniform.engine.lazy` -- exact lazy, GEMM-batched greedy for CPUs (numba).
* :mod:`hf_uniform.engine.sweep` -- device-resident full sweep per step (GPU; no host sync per step).
* :mod:`hf_uniform.engine.store` -- in-memory and streamed (out-of-core) row sources.

Example:
    >>> from hf_uniform.engine import numba_available
    >>> isinstance(numba_available(), bool)
    True
"""

from __future__ import annotations

import importlib.util


def numba_available() -> bool:
    """Whether numba is installed (the lazy engine needs it).

    Example:
        >>> isinstance(numba_available(), bool)
        True
    """
    return importlib.util.find_spec("numba") is not None


__all__ = ["numba_available"]
