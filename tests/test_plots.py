"""The figure's nearest-neighbour histogram data against scipy, including the sampled mode for large pools."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from hf_uniform.plots import _nn_distances


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nn_distances_all_rows_and_sampled(metric):
    x = np.random.default_rng(1).normal(size=(300, 5)).astype(np.float32)
    x[7] = x[3]  # a duplicate: its nearest distance is 0, not masked away with the row itself
    d = cdist(x.astype(np.float64), x.astype(np.float64), metric=metric)
    np.fill_diagonal(d, np.inf)
    ref = d.min(axis=1)
    assert np.allclose(_nn_distances(x, metric), ref, atol=1e-5)
    assert _nn_distances(x, metric)[[3, 7]].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    sampled = _nn_distances(x, metric, max_pairs=300 * 40)  # above the limit: 40 seeded query rows
    rows = np.sort(np.random.default_rng(0).choice(300, size=40, replace=False))
    assert len(sampled) == 40 and np.allclose(sampled, ref[rows], atol=1e-5)
