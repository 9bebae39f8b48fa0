"""The core engine, metrics and baselines against independent float64 / scipy references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from hf_uniform import UniformError, maxmin_select, uniform_rank
from hf_uniform.baselines import first_k, minmin_select, mixed_subset, random_subset
from hf_uniform.engine.reference import reference_select
from hf_uniform.metrics import coverage_radius, mean_nn_distance, min_pairwise_distance, uniformity_report


def scipy_metric(metric: str) -> str:
    return "cosine" if metric == "cosine" else "euclidean"


def assert_greedy_invariant(x: np.ndarray, indices: np.ndarray, metric: str, tol: float = 1e-5) -> None:
    """At every step the chosen row's min-distance equals the max min-distance over unchosen rows."""
    d = cdist(x.astype(np.float64), x.astype(np.float64), scipy_metric(metric))
    m = d[indices[0]].copy()
    chosen = np.zeros(len(x), dtype=bool)
    chosen[indices[0]] = True
    for i in indices[1:]:
        best = m[~chosen].max()
        assert m[i] >= best - tol, f"step picked {i} at {m[i]} but the best was {best}"
        chosen[i] = True
        m = np.minimum(m, d[i])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_float64_brute_force_on_random_data(metric):
    x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    sel = maxmin_select(x, 60, metric=metric, start=7)
    assert sel.indices.tolist() == reference_select(x, 60, metric=metric, start=[7])[0]
    ref = cdist(x.astype(np.float64), x.astype(np.float64), scipy_metric(metric))
    for j in range(1, sel.k):  # the radius trace is each pick's distance to the rows before it
        assert sel.min_distances[j] == pytest.approx(ref[sel.indices[j], sel.indices[:j]].min(), abs=1e-5)
    assert np.isinf(sel.min_distances[0])


def test_greedy_invariant_on_real_embeddings(shared_data):
    x = np.load(shared_data("embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"))[:2000].astype(np.float32)
    sel = maxmin_select(x, 500, seed=3)
    assert_greedy_invariant(x, sel.indices, "cosine")
    assert sel.h == pytest.approx(pdist(x[sel.indices].astype(np.float64), "cosine").min(), abs=1e-5)


def test_greedy_invariant_with_ties():
    # a lattice has many exactly equal distances; the invariant must hold and ties go to the lowest index
    g = np.array(list(itertools.product(range(5), repeat=2)), dtype=np.float32)
    sel = maxmin_select(g, 12, metric="euclidean", start=0)
    assert_greedy_invariant(g, sel.indices, "euclidean")
    assert sel.indices[:2].tolist() == [0, 24]  # (0,0) then the farthest corner (4,4)
    assert sel.indices[2] == 4  # (0,4) and (4,0) tie at distance 4: the lower index wins


def test_seeded_start_is_reproducible_and_seed_dependent():
    x = np.random.default_rng(0).normal(size=(200, 8))
    a, b = maxmin_select(x, 10, seed=5), maxmin_select(x, 10, seed=5)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.indices[0] == np.random.default_rng(5).integers(200)


def test_prefix_property_and_uniform_rank():
    x = np.random.default_rng(2).normal(size=(400, 12))
    long, short = maxmin_select(x, 120, seed=1), maxmin_select(x, 40, seed=1)
    assert long.indices[:40].tolist() == short.indices.tolist()
    p = long.prefix(40)
    assert p.indices.tolist() == short.indices.tolist()
    assert p.h == pytest.approx(short.h)
    assert p.coverage_radius == pytest.approx(short.coverage_radius, abs=1e-6)
    rank = uniform_rank(x, 120, seed=1)
    assert np.flatnonzero((rank >= 0) & (rank < 40)).tolist() == sorted(short.indices.tolist())
    assert (rank >= 0).sum() == 120


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_results_do_not_depend_on_chunk_size(metric):
    x = np.random.default_rng(3).normal(size=(500, 24)).astype(np.float32)
    ref = maxmin_select(x, 80, metric=metric, seed=0)
    for chunk in (1, 7, 64, 499, 10_000):
        sel = maxmin_select(x, 80, metric=metric, seed=0, chunk_size=chunk)
        assert sel.indices.tolist() == ref.indices.tolist()
        np.testing.assert_allclose(sel.min_distances, ref.min_distances, rtol=1e-6)


def test_start_rows_extend_an_earlier_selection():
    x = np.random.default_rng(4).normal(size=(300, 10))
    first = maxmin_select(x, 20, seed=0)
    extended = maxmin_select(x, 50, start=first.indices.tolist())
    full = maxmin_select(x, 50, seed=0)
    assert extended.indices.tolist() == full.indices.tolist()
    assert extended.h == pytest.approx(full.h)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_h_and_coverage_agree_with_scipy(metric):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 9))
    sel = maxmin_select(x, 50, metric=metric, seed=2)
    sub = x[sel.indices]
    assert sel.h == pytest.approx(pdist(sub, scipy_metric(metric)).min(), abs=1e-5)
    cov = cdist(x, sub, scipy_metric(metric)).min(axis=1).max()
    assert sel.coverage_radius == pytest.approx(cov, abs=1e-5)
    assert min_pairwise_distance(sub, metric=metric) == pytest.approx(pdist(sub, scipy_metric(metric)).min(), abs=1e-9)
    assert coverage_radius(sub, x, metric=metric) == pytest.approx(cov, abs=1e-9)
    d = cdist(sub, sub, scipy_metric(metric))
    np.fill_diagonal(d, np.inf)
    assert mean_nn_distance(sub, metric=metric) == pytest.approx(d.min(axis=1).mean(), abs=1e-9)


def test_faiss_backend_matches_torch_metrics():
    pytest.importorskip("faiss")
    x = np.random.default_rng(6).normal(size=(300, 16)).astype(np.float32)
    sub = x[:40]
    for metric in ("cosine", "euclidean"):
        assert min_pairwise_distance(sub, metric=metric, backend="faiss") == pytest.approx(
            min_pairwise_distance(sub, metric=metric), abs=1e-4)
        assert coverage_radius(sub, x, metric=metric, backend="faiss") == pytest.approx(
            coverage_radius(sub, x, metric=metric), abs=1e-4)


@pytest.mark.parametrize("n,k", [(9, 3), (10, 4), (8, 5)])
def test_h_is_at_least_half_the_optimum_on_tiny_sets(n, k):
    for trial in range(5):
        x = np.random.default_rng(100 + trial).normal(size=(n, 3))
        best = max(pdist(x[list(c)]).min() for c in itertools.combinations(range(n), k))
        for seed in range(3):
            sel = maxmin_select(x, k, metric="euclidean", seed=seed)
            assert sel.h >= best / 2 - 1e-9


def test_duplicates_are_legal_and_give_h_zero():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    sel = maxmin_select(x, 3, start=0)
    assert sel.h == 0.0
    assert sel.to_dict()["duplicates_selected"] is True
    assert sorted(sel.indices.tolist()) == [0, 1, 2]


def test_k_as_fraction_and_everything_selected():
    x = np.random.default_rng(7).normal(size=(40, 3))
    assert maxmin_select(x, 0.25).k == 10
    sel = maxmin_select(x, 40)
    assert sorted(sel.indices.tolist()) == list(range(40))
    assert sel.coverage_radius == 0.0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 4)), "empty"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), r"NaN or inf at rows \[0\]"),
    (np.array([[1.0, 2.0], [np.inf, 2.0]]), r"NaN or inf at rows \[1\]"),
    (np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]), r"zero vector.*rows \[1\].*drop_zero_vectors"),
    (np.ones(5), "2-D"),
])
def test_bad_embeddings_raise_one_line_errors(bad, match):
    with pytest.raises(UniformError, match=match) as info:
        maxmin_select(bad, 1)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("k, match", [(0, "at least 1"), (-3, "at least 1"), (11, "n=10"),
                                      (1.5, "strictly between 0 and 1"), (0.01, "rounds to 0 rows"),
                                      ("3", "int or a fraction")])
def test_bad_k(k, match):
    with pytest.raises(UniformError, match=match):
        maxmin_select(np.random.default_rng(0).normal(size=(10, 3)), k)


def test_bad_start_and_metric():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(UniformError, match="out of range"):
        maxmin_select(x, 3, start=[10])
    with pytest.raises(UniformError, match="exceed k"):
        maxmin_select(x, 1, start=[1, 2])
    with pytest.raises(UniformError, match="unknown metric"):
        maxmin_select(x, 3, metric="manhattan")


def test_baselines():
    assert random_subset(100, 10, seed=3).tolist() == sorted(
        np.random.default_rng(3).choice(100, size=10, replace=False).tolist())
    assert first_k(10, 0.3).tolist() == [0, 1, 2]
    x = np.random.default_rng(8).normal(size=(120, 6))
    mixed = mixed_subset(x, 20, metric="euclidean", seed=4)
    half = np.random.default_rng(4).choice(120, size=10, replace=False).tolist()
    assert mixed[:10].tolist() == half
    assert mixed.tolist() == reference_select(x, 20, metric="euclidean", start=half, nearest=True)[0]
    mm = minmin_select(x, 20, metric="euclidean", start=half)
    np.testing.assert_allclose(mm.min_distances, reference_select(x, 20, metric="euclidean", start=half,
                                                                  nearest=True)[1], rtol=1e-6)
    # the min-min half packs rows together: its h is far below the max-min subset's
    assert pdist(x[mixed]).min() < maxmin_select(x, 20, metric="euclidean", seed=4).h


def test_uniformity_report_compares_against_random_of_same_size():
    x = np.random.default_rng(9).normal(size=(300, 5))
    sel = maxmin_select(x, 30, metric="euclidean")
    rep = uniformity_report(x[sel.indices], x, metric="euclidean", seed=0)
    assert rep["subset"]["k"] == rep["random"]["k"] == 30
    assert rep["subset"]["h"] > rep["random"]["h"]
    assert rep["subset"]["coverage_radius"] < rep["random"]["coverage_radius"]
    assert rep["full"]["coverage_radius"] == 0.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_filtered_nearest_is_the_float64_answer(metric):
    from hf_uniform.metrics import nearest_distances

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 48)) + (5.0 if metric == "euclidean" else 0.0)
    x[100:150] = x[:50]  # duplicates
    x[200:210] = x[300:310] + 1e-7  # near-duplicates, below float32 resolution of the GEMM filter
    for q, ex in ((x, True), (x[::7], False)):
        ref = cdist(q, x, scipy_metric(metric))
        if ex:
            np.fill_diagonal(ref, np.inf)
        got = nearest_distances(q, x, metric=metric, exclude_self=ex)
        np.testing.assert_allclose(got, ref.min(axis=1), rtol=0, atol=1e-12)
        assert (got[100:150] <= 1e-12).all() if ex else True  # duplicates: 0 up to float64 rounding


def test_selection_report_uses_the_trace_and_states_its_samples():
    from hf_uniform.metrics import selection_report, subset_stats

    x = np.random.default_rng(2).normal(size=(800, 6))
    sel = maxmin_select(x, 40, metric="euclidean", seed=0)
    rnd = np.arange(0, 800, 20)
    rep, info = selection_report(x, {"subset": sel.indices, "random": rnd}, metric="euclidean",
                                 known={"subset": (sel.h, sel.coverage_radius)})
    ref = subset_stats(x[sel.indices], x, metric="euclidean", backend="torch")
    assert rep["subset"]["h"] == pytest.approx(ref["h"], rel=1e-6)  # from the trace
    assert rep["subset"]["coverage_radius"] == pytest.approx(ref["coverage_radius"], rel=1e-6)
    assert rep["subset"]["mean_nn_distance"] == pytest.approx(ref["mean_nn_distance"], abs=1e-12)
    for name, want in (("random", subset_stats(x[rnd], x, metric="euclidean", backend="torch")),
                       ("full", subset_stats(x, x, metric="euclidean", backend="torch"))):
        for key in ("h", "coverage_radius", "mean_nn_distance"):
            assert rep[name][key] == pytest.approx(want[key], abs=1e-12), (name, key)
        assert "estimated" not in rep[name]
    assert set(info["seconds"]) == {"subset", "random", "full"}
    # above max_pairs: estimates from a stated sample, with the documented direction of each bound
    est, _ = selection_report(x, {"random": rnd}, metric="euclidean", max_pairs=20000)
    full = subset_stats(x, x, metric="euclidean", backend="torch")
    assert "sample of 25 of 800" in est["full"]["estimated"]["h"]
    assert est["full"]["h"] >= full["h"]  # a sample's smallest NN distance bounds h from above
    assert "sample of 500 of 800 pool rows" in est["random"]["estimated"]["coverage_radius"]
    assert est["random"]["coverage_radius"] <= rep["random"]["coverage_radius"]
