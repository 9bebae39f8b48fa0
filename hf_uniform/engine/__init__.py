"""Selection engines behind :func:`hf_uniform.selection.maxmin_select`.

* :mod:`hf_uniform.engine.reference` -- the paper's rule in plain numpy float64: the definition and the test
  oracle.
* :mod:`hf_uniform.engine.driver` -- the greedy loop, once: start rows, the tie rule across ranks
  (``Comm``), progress, checkpoints; every engine implements its ``Engine`` protocol.
* :mod:`hf_uniform.engine.lazy` -- exact lazy, GEMM-batched engine for CPUs (numba; method ``lazy``).
* :mod:`hf_uniform.engine.sweep` -- one full pass per step on any device, exact picks by
  :mod:`hf_uniform.engine.exact` (methods ``plain`` and ``sweep``).
* :mod:`hf_uniform.engine.distance` -- the prepared rows every engine sees, and the pass's distances.
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
