"""hf-uniform: data uniformity as a one-line step in Hugging Face fine-tuning pipelines.

Select the subset whose examples are spread out (exact greedy max-min distance, as in "Data Uniformity
Improves Training Efficiency and More, with a Convergence Framework Beyond the NTK Regime", 2025):

>>> import hf_uniform  # adds Dataset.filter_uniform
>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"instruction": ["add 1 and 2", "name a colour", "add 2 and 2"],
...                         "output": ["3", "red", "4"]})
>>> len(ds.filter_uniform(k=2, progress=False))
2

Importing the package is cheap: the public names below are loaded on first use. ``import hf_uniform`` adds
``Dataset.filter_uniform`` and ``DatasetDict.filter_uniform`` in one place,
:func:`hf_uniform.dataset_methods.install` (at once if ``datasets`` is imported, else as soon as it is); no
other class of another library is changed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "first_k": "baselines", "mixed_subset": "baselines", "random_subset": "baselines",
    "coreset_select": "coreset",
    "Embedder": "embed", "Model2VecEmbedder": "embed_static", "SentenceTransformerEmbedder": "embed",
    "Word2VecEmbedder": "embed", "resolve_embedder": "embed",
    "UniformError": "errors",
    "embed": "integration", "embedding_matrix": "integration", "filter_uniform": "integration",
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


class _Package(types.ModuleType):
    """The package module: keeps the public function ``hf_uniform.embed`` when the submodule of that name loads.

    The import system binds every loaded submodule as an attribute of its package, which would replace the
    lazily exported :func:`hf_uniform.integration.embed` with the module ``hf_uniform.embed``. Import the
    submodule's names with ``from hf_uniform.embed import ...``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "embed" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


from .dataset_methods import install as _install  # noqa: E402 - the one place we patch datasets (documented there)

_install()
