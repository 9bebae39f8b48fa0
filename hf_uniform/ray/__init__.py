"""Beyond one machine: embed and select on a Ray cluster with Ray Data (``pip install 'hf-uniform[ray]'``).

* :func:`embed_ray` adds the fixed-size float32 embedding column to a ``ray.data.Dataset`` with
  ``map_batches`` over an actor pool: one model per actor (``num_gpus=1`` puts each on a GPU). A corpus-fitted
  embedder (the paper's Word2Vec) is fitted once, on the driver, and shipped to the actors, so every row is
  embedded in the same space. Row ``i`` gets the vector ``ds.map(embedder, batched=True)`` gives it: bit for
  bit for Word2Vec and static (model2vec) models; for transformer models up to float rounding (~1e-7, the
  padding within a batch depends on which rows share it).
* :func:`select_uniform_ray` runs the two-round composable core-set of :func:`hf_uniform.coreset_select`:
  greedy max-min on every contiguous shard in parallel Ray tasks, then greedy on the union of the shard
  selections in one task. With the same shards it returns exactly what ``coreset_select(x, k, shards=S)``
  returns on one machine (same per-shard seeds ``seed + i``, same union order, same second-round start).
  Only ``shards * k_per_shard`` vectors (with their row numbers) travel to the second round; no task holds
  more than one shard. The chosen rows come back in greedy order with ``uniform_rank`` and
  ``uniform_min_distance``, as :func:`hf_uniform.filter_uniform` returns them.
* :func:`read_input` reads a folder of Parquet / JSON Lines files with Ray's readers, or converts a
  ``datasets.Dataset`` (``ray.data.from_huggingface``).

Row order is the dataset's order: :func:`select_uniform_ray` sets ``preserve_order`` on the dataset's Ray
``DataContext`` while it runs, so row ``i`` (and so shard ``i``) means the same thing on every run;
:func:`embed_ray` sets it on the context of the dataset it returns (which Ray shares with its source).

Use ``torchrun`` (``hf_uniform.distributed``) for the *exact* greedy selection on the GPUs of one node; use
Ray when the pool or its embedding outgrows one machine and the core-set guarantees suffice (see
:mod:`hf_uniform.coreset`: coverage within 4x, ``h`` within 6x of the optimum in the worst case, within a few
percent of the exact greedy on real data).

Example:
    >>> import numpy as np, ray
    >>> x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    >>> res = select_uniform_ray(ray.data.from_numpy(x), 5, shards=2, embedding_column="data", progress=False)
    >>> res.selection.indices.tolist() == coreset_select(x, 5, shards=2).indices.tolist()
    True
"""

from __future__ import annotations

from hf_uniform.coreset import coreset_select  # noqa: F401  (the single-machine reference, used in docs)

from ._common import INSTALL_HINT, _ray, cluster_info, init_ray  # noqa: F401 - _ray: the real package
from .embedding import embed_ray
from .reading import from_dataset, read_input
from .select import RaySelection, select_uniform_ray

__all__ = ["INSTALL_HINT", "RaySelection", "cluster_info", "embed_ray", "from_dataset", "init_ray", "read_input",
           "run_selection_ray", "select_uniform_ray"]


def __getattr__(name: str):
    if name == "run_selection_ray":  # imports the pipeline (and the CLI's checks) only when asked for
        from .command import run_selection_ray

        return run_selection_ray
    raise AttributeError(f"module 'hf_uniform.ray' has no attribute {name!r}")
