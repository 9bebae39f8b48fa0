"""hf_uniform.metrics: nearest-neighbour distances on every backend against scipy's float64 distances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from hf_uniform.metrics import nearest_distances


def _reference(q: np.ndarray, p: np.ndarray, metric: str, exclude_self: bool) -> np.ndarray:
    d = cdist(q, p, metric="cosine" if metric == "cosine" else "euclidean")
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@pytest.mark.parametrize("backend", ["torch", "filtered", "faiss"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_distances_match_scipy(backend, metric):
    if backend == "faiss":
        pytest.importorskip("faiss", reason="backend='faiss' needs `pip install 'hf-uniform[faiss]'`")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 24))
    x[7] = x[5]  # an exact duplicate: its nearest neighbour is at 0 even with exclude_self
    q = rng.normal(size=(50, 24))
    tol = 1e-5 if backend == "faiss" else 1e-9  # faiss computes in float32
    got = nearest_distances(x, x, metric=metric, exclude_self=True, backend=backend)
    np.testing.assert_allclose(got, _reference(x, x, metric, True), atol=tol)
    assert got[5] == pytest.approx(0.0, abs=tol) and got[7] == pytest.approx(0.0, abs=tol)
    got_q = nearest_distances(q, x, metric=metric, backend=backend)
    np.testing.assert_allclose(got_q, _reference(q, x, metric, False), atol=tol)
