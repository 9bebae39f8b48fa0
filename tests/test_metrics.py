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


def test_filtered_cosine_is_normalisation_free_like_the_engine():
    # rows pointing the same way are at distance exactly 0 (issue 21), as the engine's radius trace says
    x = np.array([[1.0, 0.0], [1.0, 3.0], [3.0, 9.0], [-2.0, 1.0]], dtype=np.float32)
    got = nearest_distances(x, x, metric="cosine", exclude_self=True)
    assert got[1] == 0.0 and got[2] == 0.0
    np.testing.assert_allclose(got, _reference(x.astype(np.float64), x.astype(np.float64), "cosine", True),
                               atol=1e-12)
