"""The one place hf-uniform changes another library: ``Dataset.filter_uniform`` / ``Dataset.add_uniform_rank``
(and the same on ``DatasetDict``).

``import hf_uniform`` calls :func:`register_dataset_methods` once: it imports ``datasets`` and sets the
methods on its classes, plainly. Nothing else in the package patches a class of another library. An existing
``filter_uniform`` that is not ours is never overwritten (``import hf_uniform`` logs a warning and leaves it;
calling :func:`register_dataset_methods` yourself raises ``ImportError``). Without the methods, call
:func:`hf_uniform.filter_uniform(ds, k) <hf_uniform.integration.filter_uniform>`.

Example:
    >>> import hf_uniform
    >>> from datasets import Dataset
    >>> Dataset.filter_uniform is _dataset_method
    True
"""

from __future__ import annotations

import logging
from typing import Any

from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)


def _dataset_method(self: Any, k: int | float | None = None, **kwargs: Any) -> Any:
    """``ds.filter_uniform(k, **kwargs)``: see :func:`hf_uniform.filter_uniform`."""
    from .integration import filter_uniform

    return filter_uniform(self, k, **kwargs)


def _rank_method(self: Any, k: int | float | None = None, **kwargs: Any) -> Any:
    """``ds.add_uniform_rank(k=None, **kwargs)``: see :func:`hf_uniform.add_uniform_rank`."""
    from .integration import add_uniform_rank

    return add_uniform_rank(self, k, **kwargs)


_METHODS = {"filter_uniform": _dataset_method, "add_uniform_rank": _rank_method}


def register_dataset_methods(quiet: bool = False) -> None:
    """Add ``filter_uniform`` and ``add_uniform_rank`` to ``Dataset`` and ``DatasetDict`` (``import hf_uniform`` calls it);
    calling it again changes nothing.

    Args:
        quiet: on a ``filter_uniform`` that is not ours, log a warning instead of raising.

    Raises:
        ImportError: a method of that name that is not ours is already there (it is left as it is).

    Example:
        >>> register_dataset_methods(); register_dataset_methods()
        >>> DatasetDict.filter_uniform is _dataset_method
        True
    """
    for cls in (Dataset, DatasetDict):
        for name, method in _METHODS.items():
            existing = getattr(cls, name, None)
            if existing is not None and existing is not method:
                message = (f"{cls.__name__}.{name} already exists; hf_uniform will not overwrite it "
                           f"(call hf_uniform.{name}(ds, ...) instead)")
                if quiet:
                    logger.warning("%s", message)
                    continue
                raise ImportError(message)
            setattr(cls, name, method)
