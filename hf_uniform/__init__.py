"""hf-uniform: data uniformity as a one-line step in Hugging Face fine-tuning pipelines.

Select the subset whose examples are spread out (exact greedy max-min distance, as in "Data Uniformity
Improves Training Efficiency and More, with a Convergence Framework Beyond the NTK Regime", 2025):

>>> import hf_uniform  # adds Dataset.filter_uniform
>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"instruction": ["add 1 and 2", "name a colour", "add 2 and 2"],
...                         "output": ["3", "red", "4"]})
>>> len(ds.filter_uniform(k=2, progress=False))
2

``hf_uniform.select_uniform(ds, k)`` returns the :class:`Selection` (indices into ``ds``) and
``ds.filter_uniform(k=k)`` the same rows as a ``Dataset``; every option is a field of :class:`SelectConfig`.

``import hf_uniform`` imports ``datasets`` and adds ``filter_uniform`` and ``add_uniform_rank`` to ``Dataset``
and ``DatasetDict`` (:func:`hf_uniform.dataset_methods.register_dataset_methods`, the one place a
class of another library is changed); the other public names below (and torch) load on first use.
``hf_uniform.embed`` is the function :func:`hf_uniform.integration.embed`; the embedder classes are in
:mod:`hf_uniform.embedders`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "first_k": "baselines", "mixed_subset": "baselines", "random_subset": "baselines",
    "coreset_select": "coreset",
    "Embedder": "embedders", "Model2VecEmbedder": "embed_static", "SentenceTransformerEmbedder": "embedders",
    "Word2VecEmbedder": "embedders", "resolve_embedder": "embedders",
    "UniformError": "errors",
    "embed": "integration", "embedding_matrix": "integration", "filter_uniform": "integration",
    "add_uniform_rank": "integration", "SelectConfig": "spine", "select_uniform": "steps",
    "register_dataset_methods": "dataset_methods",
    "coverage_radius": "metrics", "mean_nn_distance": "metrics", "min_pairwise_distance": "metrics",
    "uniformity_report": "metrics",
    "SelectionRecord": "records", "Provenance": "records", "RunInfo": "records", "run_selection": "pipeline",
    "Selection": "selection", "maxmin_select": "selection", "uniform_rank": "selection",
    "TextRenderer": "text",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_uniform' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


from . import embedders as _embedders  # noqa: E402 - the embedder classes (numpy only)
from .dataset_methods import register_dataset_methods as _register  # noqa: E402 - imports datasets

# ``from hf_uniform.embed import Word2VecEmbedder`` (the module's earlier name) still works, as ``os.path`` is
# ``os``'s: the name is taken in ``sys.modules``, so no ``hf_uniform.embed`` submodule is ever loaded and
# ``hf_uniform.embed`` stays the public function. New code imports from ``hf_uniform.embedders``.
sys.modules.setdefault(f"{__name__}.embed", _embedders)
_register(quiet=True)
