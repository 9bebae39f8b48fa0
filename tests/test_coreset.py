"""Composable core-set mode: valid subsets within the documented approximation bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from hf_uniform import UniformError, maxmin_select
from hf_uniform.coreset import coreset_select


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    return (centres[rng.integers(20, size=n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_coreset_within_the_guarantees(metric):
    x = blobs(3000, 16)
    k = 60
    exact = maxmin_select(x, k, metric=metric, seed=0)
    for shards, kp in ((4, k), (6, 2 * k)):
        cs = coreset_select(x, k, shards=shards, k_prime=kp, metric=metric)
        assert cs.k == k and len(set(cs.indices.tolist())) == k
        assert cs.info["union_size"] == shards * kp
        h = pdist(x[cs.indices].astype(np.float64), metric).min()
        assert cs.h == pytest.approx(h, abs=1e-5)
        cov = cdist(x.astype(np.float64), x[cs.indices].astype(np.float64), metric).min(axis=1).max()
        cov_exact = exact.coverage_radius
        if metric == "euclidean":  # h >= OPT_h/6 >= h_greedy/6; coverage <= 4 OPT_r <= 4 r_greedy
            assert h >= exact.h / 6 and cov <= 4 * cov_exact + 1e-6
        else:  # chord distance sqrt(2 d_cos) is the metric: factors square
            assert h >= exact.h / 36 and cov <= 16 * cov_exact + 1e-6
        assert h >= 0.5 * exact.h  # in practice close to the exact greedy


def test_coreset_explicit_shards_and_errors():
    x = blobs(400, 8, seed=1)
    parts = [np.arange(0, 400, 2), np.arange(1, 400, 2)]
    cs = coreset_select(x, 10, shards=parts, metric="euclidean")
    assert cs.info["shards"] == 2 and set(cs.indices.tolist()) <= set(range(400))
    with pytest.raises(UniformError, match="disjoint"):
        coreset_select(x, 10, shards=[[0, 1], [1, 2]])
    with pytest.raises(UniformError, match="only 4 rows"):
        coreset_select(x, 10, shards=2, k_prime=2)
    with pytest.raises(UniformError, match="does not take"):
        coreset_select(x, 10, start=[0])
