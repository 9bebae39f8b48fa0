"""Every engine against the float64 brute-force greedy: same indices on tie-free data, greedy invariant always."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from hf_uniform import UniformError, maxmin_select
from hf_uniform.engine import _kernels as K
from hf_uniform.engine.lazy import LazyEngine, gemm_threads
from hf_uniform.engine.reference import reference_select
from hf_uniform.engine.store import InMemorySource

METHODS = ["lazy", "sweep", "plain"]


def assert_greedy_invariant(x: np.ndarray, indices: np.ndarray, metric: str, tol: float = 1e-5) -> None:
    """At every step the chosen row's min-distance equals the max over unchosen rows (float64, within tol)."""
    d = cdist(x.astype(np.float64), x.astype(np.float64), metric)
    m = d[indices[0]].copy()
    chosen = np.zeros(len(x), dtype=bool)
    chosen[indices[0]] = True
    for i in indices[1:]:
        assert not chosen[i], f"row {i} chosen twice"
        best = m[~chosen].max()
        assert abs(m[i] - best) <= tol, f"step picked {i} at {m[i]} but the best was {best}"
        chosen[i] = True
        m = np.minimum(m, d[i])


def lazy_run(x: np.ndarray, k: int, start: int, metric: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    eng = LazyEngine(InMemorySource(x, metric), k, metric, **kw)
    with gemm_threads():
        eng.add(eng.vector(start), start, eng.value_of(start))
        eng.run(k)
    return eng.selected()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("method", METHODS)
def test_same_indices_as_float64_brute_force(method, metric):
    x = np.random.default_rng(1).normal(size=(400, 24)).astype(np.float32)
    sel = maxmin_select(x, 150, metric=metric, start=7, method=method)
    assert sel.info["method"] == method
    assert sel.indices.tolist() == reference_select(x, 150, metric=metric, start=[7])[0]
    ref = cdist(x.astype(np.float64), x.astype(np.float64), metric)
    for j in range(1, sel.k):
        assert sel.min_distances[j] == pytest.approx(ref[sel.indices[j], sel.indices[:j]].min(), abs=1e-5)
    live = np.setdiff1d(np.arange(len(x)), sel.indices)
    assert sel.coverage_radius == pytest.approx(ref[np.ix_(live, sel.indices)].min(axis=1).max(), abs=1e-5)


def test_auto_picks_lazy_on_cpu_and_matches_plain_on_real_data(shared_data):
    x = np.load(shared_data("embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"))[:3000]
    fast = maxmin_select(x, 1500, seed=3)
    assert fast.info["method"] == "lazy"
    assert_greedy_invariant(x, fast.indices, "cosine")
    plain = maxmin_select(x, 1500, seed=3, method="plain")
    # same greedy up to float32 near-ties: identical radius trace within rounding, same h
    np.testing.assert_allclose(fast.min_distances[1:], plain.min_distances[1:], atol=2e-6)
    assert (fast.indices == plain.indices).mean() > 0.95
    assert fast.coverage_radius == pytest.approx(plain.coverage_radius, abs=2e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_lazy_does_not_depend_on_block_chunk_or_filter_precision(metric):
    x = np.random.default_rng(5).normal(size=(1200, 16)).astype(np.float32)
    ref_idx, ref_rad = lazy_run(x, 500, 3, metric)
    for kw in ({"block": 2}, {"block": 7, "chunk_rows": 5}, {"block": 64, "chunk_rows": 100},
               {"block": 2048}, {"filter_dtype": torch.float32, "block": 33}, {"max_active": 50, "block": 16}):
        idx, rad = lazy_run(x, 500, 3, metric, **kw)
        assert idx.tolist() == ref_idx.tolist(), kw
        assert np.array_equal(rad, ref_rad), kw  # bit-identical: one exact kernel decides everything


def test_greedy_invariant_and_tie_rule_on_a_lattice():
    g = np.array(list(itertools.product(range(7), repeat=3)), dtype=np.float32)  # many exact ties
    for method in METHODS:
        sel = maxmin_select(g, 60, metric="euclidean", start=0, method=method)
        assert_greedy_invariant(g, sel.indices, "euclidean")
        plain = maxmin_select(g, 60, metric="euclidean", start=0, method="plain")
        assert sel.indices.tolist() == plain.indices.tolist(), method  # ties to the lowest index everywhere


def test_cosine_ties_on_sphere_lattice_and_duplicates():
    pts = np.array(list(itertools.product([-1, 0, 1], repeat=4)), dtype=np.float32)
    pts = pts[(pts != 0).any(axis=1)]  # 80 directions with many exactly equal angles
    a = maxmin_select(pts, len(pts), start=3, method="lazy")
    b = maxmin_select(pts, len(pts), start=3, method="plain")
    assert a.indices.tolist() == b.indices.tolist()
    assert_greedy_invariant(pts, a.indices, "cosine")
    # exact duplicates: the lazy kernel gives exactly 0 (1 - <x,x>/sqrt(|x|^2|x|^2)), so they come last,
    # in index order, and h is exactly 0
    x = np.concatenate([pts, pts[:10] * 3.0])
    sel = maxmin_select(x, len(x), start=3)
    assert_greedy_invariant(x, sel.indices, "cosine")
    assert sel.indices[-10:].tolist() == list(range(80, 90))
    assert sel.h == 0.0 and (sel.min_distances[-10:] == 0.0).all()
    assert maxmin_select(x, 80, start=3).h > 0.0  # the 80 distinct directions come first


def test_euclidean_far_from_origin_stays_exact():
    # large norms make the GEMM filter loose; the exact re-check must still decide correctly
    x = (np.random.default_rng(2).normal(size=(300, 8)) + 1000.0).astype(np.float32)
    sel = maxmin_select(x, 80, metric="euclidean", start=0)
    assert_greedy_invariant(x, sel.indices, "euclidean", tol=1e-3)
    assert sel.indices.tolist() == maxmin_select(x, 80, metric="euclidean", start=0, method="plain").indices.tolist()


def test_start_lists_prefix_fraction_and_full_selection():
    x = np.random.default_rng(3).normal(size=(500, 12)).astype(np.float32)
    first = maxmin_select(x, 40, seed=0)
    extended = maxmin_select(x, 120, start=first.indices.tolist())
    assert extended.indices[:40].tolist() == first.indices.tolist()
    assert extended.indices.tolist() == maxmin_select(x, 120, seed=0).indices.tolist()
    many = list(range(0, 500, 2))  # more start rows than one lazy block
    sel = maxmin_select(x, 300, start=many)
    assert sel.indices.tolist() == maxmin_select(x, 300, start=many, method="plain").indices.tolist()
    full = maxmin_select(x, 500, seed=1)
    assert sorted(full.indices.tolist()) == list(range(500)) and full.coverage_radius == 0.0
    assert maxmin_select(x, 0.1).k == 50


def test_filter_error_bound_holds():
    # the bound used to skip exact evaluations must hold for bf16 GEMMs of this torch build
    rng = np.random.default_rng(0)
    for d in (3, 64, 384, 1000):
        x = rng.normal(size=(300, d)).astype(np.float32)
        c = rng.normal(size=(200, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        c[:50] *= 30.0  # euclidean-style norms too
        eng = LazyEngine(InMemorySource(x, "euclidean"), 1, "euclidean", filter_dtype=torch.bfloat16)
        xf, rx = eng._filter_copy(x)
        cf, rc = eng._filter_copy(c)
        S = torch.mm(xf, cf.T).float().numpy().astype(np.float64)
        exact = x.astype(np.float64) @ c.astype(np.float64).T
        xn = np.linalg.norm(x.astype(np.float64), axis=1)[:, None]
        cn = np.linalg.norm(c.astype(np.float64), axis=1)[None, :]
        xh = xn + rx[:, None]
        bound = rx[:, None] * cn + xh * rc[None, :] + eng.gam * xh * (cn + rc[None, :]) + eng.err_out * np.abs(S)
        assert (np.abs(S - exact) <= bound).all()
        assert np.abs(S - exact).max() > 0  # the filter really is inexact


def test_exact_kernel_matches_float64():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 384)).astype(np.float32)
    na, nb = K.dot64(a, a), K.dot64(b, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = 1 - a64 @ b64 / np.sqrt((a64 @ a64) * (b64 @ b64))
    assert K.dist(K.COSINE, a, b, na, nb) == pytest.approx(want, abs=1e-7)
    assert K.dist(K.COSINE, a, a, na, na) == 0.0  # exactly, for any row
    assert K.dist(K.EUCLIDEAN, a, b, na, nb) == pytest.approx(np.linalg.norm(a64 - b64), rel=1e-7)


def test_engine_errors_are_one_line():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(UniformError, match="unknown method"):
        maxmin_select(x, 3, method="fast")
    # without a CUDA device the device check answers first (spine's order); with one, lazy's CPU-only rule
    with pytest.raises(UniformError, match="runs on the CPU|no CUDA device is available"):
        maxmin_select(x, 3, method="lazy", device="cuda")
    with pytest.raises(UniformError, match="max_memory"):
        maxmin_select(x, 3, max_memory="lots")
    with pytest.raises(UniformError, match="chunk_size"):
        maxmin_select(x, 3, chunk_size=0)
    with pytest.raises(UniformError, match="needs checkpoint_dir"):
        maxmin_select(x, 3, resume=True)
    with pytest.raises(UniformError, match="initialised torch.distributed process group"):
        maxmin_select(x, 3, distributed=True)
    # the min-min baseline runs on the pass-per-step engines only
    from hf_uniform.baselines import minmin_select

    with pytest.raises(UniformError, match="min-min baseline runs on method='plain' or 'sweep'"):
        minmin_select(x, 3, method="lazy")
    assert minmin_select(x, 4).info["method"] == "plain"


def test_bf16_threshold_keys_are_conservative_for_every_bit_pattern():
    from hf_uniform.engine.lazy import bf16_floor_keys

    bits = np.arange(-32768, 32768).astype(np.int16)
    vals = torch.from_numpy(bits).view(torch.bfloat16).float().numpy()
    ok = np.isfinite(vals)
    b, fv = bits[ok], vals[ok].astype(np.float64)
    keys = b.astype(np.int32) ^ ((b.astype(np.int32) >> 15) & 0x7FFF)
    assert (np.diff(fv[np.argsort(keys)]) >= 0).all()  # the keys order the values
    assert all(K.bf16_value(x) == y for x, y in zip(b[::7], fv[::7], strict=True))
    rng = np.random.default_rng(0)
    ts = np.concatenate([rng.normal(size=400) * rng.choice([1e-3, 1, 100, 1e-30], 400),
                         [0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 3e38, -3e38]])
    for t in ts:
        assert ((keys >= K.floor_key(float(t))) >= (fv >= t)).all(), t  # flag every pair that may be >= t
        assert ((keys < bf16_floor_keys(np.array([t]))[0]) <= (fv < t)).all(), t  # skip only provably < t


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_one_driver_runs_every_engine_to_the_reference(metric):
    # the engines implement one protocol; the one greedy loop (drive) gives the oracle's picks on each
    from hf_uniform.engine.driver import BulkEngine, Engine, drive
    from hf_uniform.engine.sweep import pass_engine

    x = np.random.default_rng(6).normal(size=(300, 12)).astype(np.float32)
    ref_idx, ref_rad = reference_select(x, 120, metric=metric, start=[4, 9])
    lazy = LazyEngine(InMemorySource(x, metric), 120, metric, block=16)
    passes = pass_engine(x, None, metric=metric, k=120, device=torch.device("cpu"))
    assert isinstance(lazy, BulkEngine) and isinstance(passes, Engine) and not isinstance(passes, BulkEngine)
    for eng in (lazy, passes):
        with gemm_threads():
            run = drive(eng, k=120, starts=[4, 9])
        assert run.indices == ref_idx
        np.testing.assert_allclose(run.radii, ref_rad, rtol=1e-6)
        live = np.setdiff1d(np.arange(300), ref_idx)
        full = cdist(x[live].astype(np.float64), x[ref_idx].astype(np.float64), metric).min(axis=1).max()
        assert run.coverage == pytest.approx(full, rel=1e-5)
