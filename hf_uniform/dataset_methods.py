"""The one place hf-uniform changes another library: ``Dataset.filter_uniform`` / ``DatasetDict.filter_uniform``.

``import hf_uniform`` calls :func:`install` once. It adds the two methods (:func:`register_dataset_methods`)
right away when ``datasets`` is already imported, and otherwise as soon as it is (an import hook, so
``import hf_uniform`` stays fast and imports neither ``datasets`` nor ``torch``). Nothing else in the package
patches a class of another library. An existing ``filter_uniform`` that is not ours is never overwritten
(:func:`register_dataset_methods` raises ``ImportError``; the import hook leaves it in place). Without the
methods, call :func:`hf_uniform.filter_uniform(ds, k) <hf_uniform.integration.filter_uniform>`.

Example:
    >>> import hf_uniform
    >>> from datasets import Dataset
    >>> Dataset.filter_uniform is _dataset_method
    True
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any


def _dataset_method(self: Any, k: int | float, **kwargs: Any) -> Any:
    """``ds.filter_uniform(k, **kwargs)``: see :func:`hf_uniform.filter_uniform`."""
    from .integration import filter_uniform

    return filter_uniform(self, k, **kwargs)


def register_dataset_methods() -> None:
    """Add ``Dataset.filter_uniform`` and ``DatasetDict.filter_uniform`` (:func:`install` calls it).

    Raises:
        ImportError: a ``filter_uniform`` that is not ours is already there (it is left as it is).

    Example:
        >>> register_dataset_methods()
        >>> from datasets import Dataset
        >>> hasattr(Dataset, "filter_uniform")
        True
    """
    from datasets import Dataset, DatasetDict

    for cls in (Dataset, DatasetDict):
        existing = getattr(cls, "filter_uniform", None)
        if existing is not None and existing is not _dataset_method:
            raise ImportError(f"{cls.__name__}.filter_uniform already exists; hf_uniform will not overwrite it "
                              "(call hf_uniform.filter_uniform(ds, k) instead)")
        cls.filter_uniform = _dataset_method


def _register_quietly() -> None:
    try:
        register_dataset_methods()
    except ImportError:  # someone else's filter_uniform: leave theirs, as register refuses to overwrite
        pass


class _RegisterOnDatasetsImport(importlib.abc.MetaPathFinder):
    """Adds the methods right after ``datasets`` is imported (keeps ``import hf_uniform`` fast)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "datasets":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_register(module: Any) -> None:
            exec_module(module)
            _register_quietly()

        loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Add ``filter_uniform`` to ``datasets``' ``Dataset`` and ``DatasetDict``: now if ``datasets`` is
    imported, else when it is. ``import hf_uniform`` calls this once; calling it again changes nothing.

    Example:
        >>> install(); install()
        >>> from datasets import DatasetDict
        >>> DatasetDict.filter_uniform is _dataset_method
        True
    """
    if "datasets" in sys.modules:
        _register_quietly()
    elif not any(isinstance(f, _RegisterOnDatasetsImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnDatasetsImport())
