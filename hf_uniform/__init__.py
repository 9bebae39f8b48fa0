"""hf-uniform: data uniformity as a one-line step in Hugging Face fine-tuning pipelines.

Select the subset whose examples are spread out (exact greedy max-min distance, as in "Data Uniformity
Improves Training Efficiency and More, with a Convergence Framework Beyond the NTK Regime", 2025):

>>> import hf_uniform  # adds Dataset.filter_uniform
>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"instruction": ["add 1 and 2", "name a colour", "add 2 and 2"],
...                         "output": ["3", "red", "4"]})
>>> len(ds.filter_uniform(k=2, progress=False))
2
"""

from __future__ import annotations

from .baselines import first_k, mixed_subset, random_subset
from .coreset import coreset_select
from .embed import (
    Embedder,
    Model2VecEmbedder,
    SentenceTransformerEmbedder,
    Word2VecEmbedder,
    resolve_embedder,
)
from .errors import UniformError
from .integration import embed, embedding_matrix, filter_uniform, register_dataset_methods
from .metrics import coverage_radius, mean_nn_distance, min_pairwise_distance, uniformity_report
from .selection import Selection, maxmin_select, uniform_rank
from .text import TextRenderer

__version__ = "0.1.0"

register_dataset_methods()

__all__ = [
    "Embedder",
    "Model2VecEmbedder",
    "SentenceTransformerEmbedder",
    "Selection",
    "TextRenderer",
    "UniformError",
    "Word2VecEmbedder",
    "coreset_select",
    "coverage_radius",
    "embed",
    "embedding_matrix",
    "filter_uniform",
    "first_k",
    "maxmin_select",
    "mean_nn_distance",
    "min_pairwise_distance",
    "mixed_subset",
    "random_subset",
    "resolve_embedder",
    "uniform_rank",
    "uniformity_report",
]
