"""Every method, streamed or not, one or two ranks, replayed against an independent float64 greedy.

"Exact" (README, issue 11): each pick attains the float64 maximum of the min-distance array of the float32
rows the engine sees (relative 1e-6), ties go to the lowest row index, duplicates get radius 0. The replay
below uses the oracle :mod:`hf_uniform.engine.reference` (independent of the engines): float32 rows prepared
as documented (cosine: divided by the float32 of the float64 norm), then every distance in float64 from
differences (``0.5 |a - b|^2`` of unit rows for cosine), so that duplicates are exactly 0 and ties are exact
on lattices.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hf_uniform import maxmin_select
from hf_uniform.engine.reference import reference_distances, reference_rows


def replay(x: np.ndarray, metric: str, indices, radii, n_starts: int, coverage: float | None = None) -> None:
    """Assert the exactness definition at every step of a selection."""
    rows = reference_rows(x, metric)
    n = len(x)
    m = np.full(n, np.inf)
    chosen = np.zeros(n, dtype=bool)
    for j, p in enumerate(np.asarray(indices).tolist()):
        assert not chosen[p], f"row {p} chosen twice"
        if j >= n_starts:
            live = ~chosen
            best = m[live].max()
            assert m[p] >= best * (1 - 1e-6) - 1e-12, f"step {j}: picked {p} at {m[p]!r}, best {best!r}"
            first = int(np.flatnonzero(live & (m == best))[0])
            assert p <= first, f"step {j}: tie rule: picked {p} but row {first} attains the maximum {best!r}"
        if j >= 1:
            assert radii[j] == pytest.approx(m[p], rel=1e-6, abs=1e-12), f"step {j}: radius"
            if m[p] == 0.0:
                assert radii[j] == 0.0, f"step {j}: a duplicate must get radius 0, got {radii[j]!r}"
        chosen[p] = True
        m = np.minimum(m, reference_distances(rows, p, metric))
    if coverage is not None and not chosen.all():
        assert coverage == pytest.approx(m[~chosen].max(), rel=1e-6, abs=1e-12)


def _datasets() -> dict[str, tuple[np.ndarray, str, int, list[int]]]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 8)).astype(np.float32)
    dup = base[rng.integers(60, size=240)]  # every row about 4 times
    lattice3 = np.array(list(itertools.product(range(6), repeat=3)), dtype=np.float32)
    sphere = np.array(list(itertools.product([-1, 0, 1], repeat=4)), dtype=np.float32)
    sphere = sphere[(sphere != 0).any(axis=1)]
    sphere = np.concatenate([sphere, sphere[::7] * 2.5])  # scaled copies: cosine duplicates
    d1 = rng.integers(0, 40, size=(300, 1)).astype(np.float32)  # 1-D with many repeats and ties
    d2 = rng.normal(size=(400, 2)).astype(np.float32)
    d3 = rng.normal(size=(400, 3)).astype(np.float32)
    return {  # name: (rows, metric, k, start)
        "duplicates-cosine": (dup, "cosine", 240, [5]),
        "duplicates-euclidean": (dup, "euclidean", 240, [5]),
        "lattice-euclidean": (lattice3, "euclidean", 216, [0]),
        "sphere-lattice-cosine": (sphere, "cosine", len(sphere), [3]),
        "d1-euclidean": (d1, "euclidean", 300, [7]),
        "d1-cosine-signs": (np.concatenate([d1 + 1, -(d1 + 1)]), "cosine", 20, [0]),
        "d2-cosine": (d2, "cosine", 300, [11]),
        "d3-euclidean": (d3, "euclidean", 250, [0, 1, 2]),
    }


DATA = _datasets()
METHODS = ["plain", "sweep", "lazy"]


@pytest.mark.parametrize("streamed", [False, True], ids=["memory", "streamed"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(DATA))
def test_every_method_replays_the_float64_greedy(name, method, streamed):
    x, metric, k, start = DATA[name]
    # lazy: a budget that holds its per-row state (smaller ones raise); plain/sweep stream at any budget
    kw = {"max_memory": 400_000 if method == "lazy" else 256, "chunk_size": 97} if streamed else {}
    sel = maxmin_select(x, k, metric=metric, start=start, method=method, **kw)
    assert sel.info["streamed"] == streamed
    replay(x, metric, sel.indices, sel.min_distances, len(start), sel.coverage_radius)
    lazy = maxmin_select(x, k, metric=metric, start=start, method="lazy")
    assert sel.indices.tolist() == lazy.indices.tolist()  # one exact kernel on the CPU: the same picks
    np.testing.assert_array_equal(sel.min_distances, lazy.min_distances)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_issue_reproducer_plain_and_sweep_step_450(metric):
    # issue 11: float32 `1 - x.c` made plain pick a row 0.5 % below the maximum at step 450
    x = np.random.default_rng(0).normal(size=(2000, 2)).astype(np.float32)
    ref = maxmin_select(x, 1000, metric=metric, start=[11], method="lazy")
    replay(x, metric, ref.indices, ref.min_distances, 1, ref.coverage_radius)
    for method in ("plain", "sweep"):
        sel = maxmin_select(x, 1000, metric=metric, start=[11], method=method)
        assert sel.indices.tolist() == ref.indices.tolist(), method
        np.testing.assert_array_equal(sel.min_distances, ref.min_distances)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("method", ["plain", "sweep"])
def test_reduced_precision_storage_is_only_a_filter(method, dtype):
    # float16 / bfloat16 rows make the pass coarser; the picks stay those of the float32 rows
    x, metric, k, start = DATA["d2-cosine"]
    ref = maxmin_select(x, k, metric=metric, start=start, method="lazy")
    sel = maxmin_select(x, k, metric=metric, start=start, method=method, dtype=dtype)
    assert sel.indices.tolist() == ref.indices.tolist()
    np.testing.assert_array_equal(sel.min_distances, ref.min_distances)
    x, metric, k, start = DATA["duplicates-euclidean"]
    sel = maxmin_select(x, k, metric=metric, start=start, method=method, dtype=dtype)
    replay(x, metric, sel.indices, sel.min_distances, 1, sel.coverage_radius)


@pytest.mark.parametrize("method", ["plain", "sweep"])
def test_min_min_baseline_is_exact_too(method):
    from hf_uniform.baselines import minmin_select

    x, metric, _, start = DATA["d2-cosine"]
    sel = minmin_select(x, 100, metric=metric, start=start, method=method)
    rows = reference_rows(x, metric)
    m = reference_distances(rows, start[0], metric)
    chosen = np.zeros(len(x), dtype=bool)
    chosen[start[0]] = True
    for j, p in enumerate(sel.indices[1:], start=1):
        live = np.where(chosen, np.inf, m)
        assert m[p] <= live.min() * (1 + 1e-6) + 1e-12
        assert p <= int(np.flatnonzero(live == live.min())[0])
        assert sel.min_distances[j] == pytest.approx(m[p], rel=1e-6, abs=1e-12)
        chosen[p] = True
        m = np.minimum(m, reference_distances(rows, p, metric))


def test_torch_backend_of_the_exact_picker_matches_numba():
    # the accelerator path (float64 torch) runs here on the CPU: same picks as the numba kernel, duplicates and
    # same-direction rows at radius 0 (normalisation-free cosine)
    from hf_uniform.engine.driver import drive
    from hf_uniform.engine.sweep import pass_engine

    cpu = torch.device("cpu")
    for name in ("d2-cosine", "duplicates-euclidean", "lattice-euclidean", "sphere-lattice-cosine",
                 "duplicates-cosine"):
        x, metric, k, start = DATA[name]
        for dtype in (torch.float32, torch.float16):
            run = drive(pass_engine(x, None, metric=metric, k=k, device=cpu, dtype=dtype, backend="torch"), k=k,
                        starts=start)
            replay(x, metric, run.indices, run.radii, len(start))
            ref = maxmin_select(x, k, metric=metric, start=start, method="lazy")
            assert run.indices == ref.indices.tolist(), (name, dtype)
            np.testing.assert_array_equal(run.radii, ref.min_distances)


# ---------------------------------------------------------------------------------------------- two ranks
DIST_CASES = [(name, method, streamed) for name in ("duplicates-cosine", "lattice-euclidean", "d1-euclidean",
                                                    "d2-cosine") for method in METHODS
              for streamed in (False, True)]


def _worker(rank: int, world: int, tmp: str) -> None:
    os.environ["HF_UNIFORM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        out = {}
        for name, method, streamed in DIST_CASES:
            x, metric, k, start = DATA[name]
            kw = {"max_memory": 400_000 if method == "lazy" else 256, "chunk_size": 97} if streamed else {}
            sel = maxmin_select(x, k, metric=metric, start=start, method=method, distributed=True, **kw)
            out[f"{name}/{method}/{streamed}"] = {
                "indices": sel.indices.tolist(), "radii": sel.min_distances[1:].tolist(),
                "cov": sel.coverage_radius, "world": sel.info["world_size"], "shards": sel.info["shard_sizes"]}
        (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exact2")
    mp.spawn(_worker, args=(2, str(tmp)), nprocs=2, join=True)
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("case", DIST_CASES, ids=["/".join(map(str, c)) for c in DIST_CASES])
def test_two_gloo_ranks_equal_one_process_bit_for_bit(two_ranks, case):
    name, method, streamed = case
    x, metric, k, start = DATA[name]
    kw = {"max_memory": 400_000 if method == "lazy" else 256, "chunk_size": 97} if streamed else {}
    one = maxmin_select(x, k, metric=metric, start=start, method=method, **kw)
    for res in two_ranks:
        got = res["/".join(map(str, case))]
        assert got["world"] == 2 and sum(got["shards"]) == len(x)
        assert got["indices"] == one.indices.tolist()
        np.testing.assert_array_equal(np.array(got["radii"]), one.min_distances[1:])
        assert got["cov"] == one.coverage_radius
    replay(x, metric, one.indices, one.min_distances, len(start))


def test_the_replay_catches_the_old_float32_loop():
    # the replay is not vacuous: the float32 `1 - x.c` loop the issue reported fails it
    x = np.random.default_rng(0).normal(size=(2000, 2)).astype(np.float32)
    rows = torch.from_numpy(reference_rows(x, "cosine").astype(np.float32))
    m = torch.full((2000,), float("inf"))
    idx, rad = [11], [float("inf")]
    for _ in range(999):
        m = torch.minimum(m, (1.0 - rows @ rows[idx[-1]]).clamp(min=0))
        m[idx] = -float("inf")
        i = int(torch.argmax(m))
        idx.append(i)
        rad.append(float(m[i]))
    with pytest.raises(AssertionError):
        replay(x, "cosine", idx, rad, 1)


# ---------------------------------------------------------------------------------------------- validation
def _angles(*deg: float) -> list[list[float]]:
    return [[np.cos(np.radians(a)), np.sin(np.radians(a))] for a in deg]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("streamed", [False, True])
def test_issue_reproducers_raise_one_line_errors(method, streamed):
    from hf_uniform import UniformError

    kw = {"method": method, "max_memory": (400_000 if method == "lazy" else 16) if streamed else None}
    a = _angles(25.8, 0.0, -15.0)
    subnormal = np.array([a[0], [1e-45, 1e-45], a[1], a[2]], dtype=np.float32)  # float32 norm 2e-45
    with pytest.raises(UniformError, match=r"rows \[1\] have a float32 norm below 1.2e-38 .*subnormal.*rescale"):
        maxmin_select(subnormal, 3, metric="cosine", start=[0, 1], **kw)
    x64 = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(UniformError, match=r"rows \[0, 1, 2.*beyond the float32 range.*rescale"):
        maxmin_select(x64 * 1e39, 5, **kw)
    with pytest.raises(UniformError, match=r"rows \[0, 1, 2.*underflow to zero in float32.*rescale"):
        maxmin_select(x64 * 1e-50, 5, metric="cosine", **kw)
    big = np.array([[1.0, 0.0], [3e38, 3e38], [0.0, 1.0]], dtype=np.float32)  # finite, norm 4.2e38
    with pytest.raises(UniformError, match=r"rows \[1\] have a norm beyond the float32 range"):
        maxmin_select(big, 2, metric="cosine", **kw)
    with pytest.raises(UniformError, match=r"rows \[1\] have a norm above 1e18"):
        maxmin_select(big, 2, metric="euclidean", **kw)
    for bad in (subnormal, x64 * 1e39, big):  # one line each
        try:
            maxmin_select(bad, 2, metric="cosine", **kw)
        except UniformError as e:
            assert "\n" not in str(e)


def test_subnormal_reproducer_rescaled_gives_the_float64_answer():
    # the issue's rows, scaled into the normal range: every method gives the float64 greedy [0, 1, 3]
    a = _angles(25.8, 0.0, -15.0)
    rows = np.array([a[0], [1e-30, 1e-30], a[1], a[2]], dtype=np.float32)
    for method in METHODS:
        sel = maxmin_select(rows, 3, metric="cosine", start=[0, 1], method=method)
        assert sel.indices.tolist() == [0, 1, 3], method
        replay(rows, "cosine", sel.indices, sel.min_distances, 2)


def test_float64_input_is_selected_exactly_on_its_float32_rows(caplog):
    x64 = np.random.default_rng(4).normal(size=(300, 3)) * 1e-20  # tiny but normal in float32
    with caplog.at_level("INFO", logger="hf_uniform.selection"):
        sel = maxmin_select(x64, 100, metric="euclidean", start=0, method="plain")
    replay(x64.astype(np.float32), "euclidean", sel.indices, sel.min_distances, 1, sel.coverage_radius)
    assert sel.indices.tolist() == maxmin_select(x64.astype(np.float32), 100, metric="euclidean", start=0).indices.tolist()
    x = x64 * 1e20
    for method in METHODS:
        sel = maxmin_select(x, 100, metric="cosine", seed=1, method=method)
        replay(x.astype(np.float32), "cosine", sel.indices, sel.min_distances, 1, sel.coverage_radius)
