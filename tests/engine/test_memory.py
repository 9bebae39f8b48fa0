"""Issue 11 items 3 and 5: the lazy engine's full-sweep fallback is exact, and max_memory bounds its own state.

The fallback is forced with ``fallback="always"`` (it switches at the first flush, so every run below does
lazy steps first and full sweeps after) and replayed against the float64 oracle of
:mod:`hf_uniform.engine.reference`; the memory checks are arithmetic on the budget split and a tracemalloc
peak (numpy allocations) of a streamed run, not timings.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
import torch

from hf_uniform import UniformError, maxmin_select
from hf_uniform.engine.lazy import STATE_BYTES_PER_ROW, LazyEngine, memory_plan
from hf_uniform.engine.reference import reference_distances, reference_rows, reference_select
from hf_uniform.engine.store import InMemorySource, StreamSource


def _data() -> dict[str, tuple[np.ndarray, str, int, list[int]]]:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    dup = base[rng.integers(40, size=300)]  # every row about 7 times: radius 0 and ties after step 40
    lattice = np.array(list(itertools.product(range(5), repeat=3)), dtype=np.float32)  # exact ties
    flat = rng.normal(size=(400, 48)).astype(np.float32)  # i.i.d. Gaussian: uniform on the sphere under cosine
    lowd = rng.normal(size=(400, 2)).astype(np.float32)
    return {"duplicates-cosine": (dup, "cosine", 200, [4]),
            "lattice-euclidean": (lattice, "euclidean", 125, [0]),
            "lattice-cosine": (lattice + 0.5, "cosine", 100, [7]),
            "flat-cosine": (flat, "cosine", 200, [1]),
            "lowd-euclidean": (lowd, "euclidean", 250, [0, 9])}


DATA = _data()


def replay(x: np.ndarray, metric: str, indices: list[int], radii: np.ndarray, n_starts: int) -> None:
    """Every pick attains the float64 maximum of the min-distance array (relative 1e-6), ties to the lowest
    row, duplicates at radius 0 -- replayed on the oracle's float64 distances."""
    rows = reference_rows(x, metric)
    m = np.full(len(x), np.inf)
    chosen = np.zeros(len(x), dtype=bool)
    for j, p in enumerate(indices):
        assert not chosen[p]
        if j >= n_starts:
            best = m[~chosen].max()
            assert m[p] >= best * (1 - 1e-6) - 1e-12, f"step {j}: picked {p} at {m[p]!r}, best {best!r}"
            assert p <= int(np.flatnonzero(~chosen & (m == best))[0]), f"step {j}: tie rule"
            assert radii[j] == pytest.approx(m[p], rel=1e-6, abs=1e-12)
            assert (radii[j] == 0.0) == (m[p] == 0.0), f"step {j}: duplicates get radius 0"
        chosen[p] = True
        m = np.minimum(m, reference_distances(rows, p, metric))


@pytest.mark.parametrize("filter_dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name", list(DATA))
def test_full_sweep_fallback_replays_the_float64_greedy(name, filter_dtype):
    x, metric, k, start = DATA[name]
    runs = {}
    for fallback in ("never", "always"):
        eng = LazyEngine(InMemorySource(x, metric), k, metric, block=16, fallback=fallback,
                         filter_dtype=filter_dtype)
        for s in start:
            eng.add(eng.vector(s), s, eng.value_of(s))
        eng.run(k)
        idx, rad = eng.selected()
        runs[fallback] = (idx.tolist(), rad, eng.coverage(), eng.stats["path"])
    assert runs["never"][3] == "lazy" and runs["always"][3].startswith("lazy, then full sweeps from step")
    replay(x, metric, runs["always"][0], runs["always"][1], len(start))
    # both paths use one exact kernel: the same picks, bit-identical radii and coverage
    assert runs["never"][0] == runs["always"][0]
    np.testing.assert_array_equal(runs["never"][1], runs["always"][1])
    assert runs["never"][2] == runs["always"][2]


def test_fallback_state_and_steps_after_the_switch():
    x, metric, k, start = DATA["flat-cosine"]
    eng = LazyEngine(InMemorySource(x, metric), k, metric, block=8, fallback="always")
    eng.add(eng.vector(start[0]), start[0], float("inf"))
    eng.run(50)
    assert eng.swept
    # single steps through best()/add() (the distributed driver's calls) continue the same greedy
    for _ in range(20):
        val, row = eng.best()
        assert val == eng.value_of(row)
        eng.add(eng.vector(row), row, val)
    st = eng.state_dict()
    assert (st["ep"][st["m"] > -np.inf] == eng.t).all()
    idx, rad = eng.selected()
    replay(x, metric, idx.tolist(), rad, len(start))
    ref_idx, _ = reference_select(x, 70, metric=metric, start=start)
    assert idx.tolist() == list(ref_idx)  # flat data: no near-ties


def test_fallback_mode_is_checked():
    with pytest.raises(ValueError, match="fallback"):
        LazyEngine(InMemorySource(np.eye(3), "cosine"), 2, "cosine", fallback="sometimes")


def test_budget_below_the_per_row_state_is_a_one_line_error_before_any_work():
    x = np.random.default_rng(0).normal(size=(5000, 8)).astype(np.float32)
    with pytest.raises(UniformError, match=r"at least [0-9.]+MB; raise max_memory") as err:
        maxmin_select(x, 10, max_memory="50KB")
    assert "\n" not in str(err.value) and "5000 rows" in str(err.value)
    need = float(str(err.value).split("at least ")[1].split("MB")[0]) * 1e6
    assert need >= STATE_BYTES_PER_ROW * 5000
    assert maxmin_select(x, 10, max_memory=int(need * 1.1)).info["streamed"]


@pytest.mark.parametrize("budget", [6 * 10**6, 8 * 10**6, 64 * 10**6])
def test_budget_split_counts_state_centres_and_buffers(budget):
    n, d, k = 50_000, 64, 400
    plan = memory_plan(n, d, k, budget, torch.float32)
    if not plan["stream"]:
        assert n * d * 4 + STATE_BYTES_PER_ROW * n < budget
        return
    state = STATE_BYTES_PER_ROW * n + (k + 1) * d * 8
    gemm = plan["chunk_rows"] * 512 * 4
    active = plan["max_active"] * (d * 4 + 48)
    # the flush holds at most a few copies of the active rows: the plan leaves 8 of them room
    assert state + gemm + 8 * active <= budget


def test_streamed_run_keeps_its_numpy_peak_within_the_budget(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(40, 32))[rng.integers(40, size=30_000)] + 0.3 * rng.normal(size=(30_000, 32)))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    budget = 35 * 10**5  # the rows alone are 3.84 MB
    warm = LazyEngine(StreamSource(mm[:3000], "cosine"), 30, "cosine", max_memory=10**6, filter_dtype=torch.float32)
    warm.add(warm.vector(0), 0, float("inf"))
    warm.run(30)  # numba loads its compiled kernels on first use (Python allocations tracemalloc would count)
    src = StreamSource(mm, "cosine", chunk_rows=4096)
    tracemalloc.start()
    try:
        eng = LazyEngine(src, 300, "cosine", max_memory=budget, filter_dtype=torch.float32)
        eng.add(eng.vector(0), 0, float("inf"))
        eng.run(300)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.1 * budget, peak  # the goal: the engine's own peak within ~10 % of the budget
    ref = maxmin_select(x.astype(np.float32), 300, start=0)
    assert eng.selected()[0].tolist() == ref.indices.tolist()


def test_filter_dtype_cost_model(monkeypatch):
    from hf_uniform.engine import _lazy_support as S

    monkeypatch.delenv("HF_UNIFORM_FILTER_DTYPE", raising=False)
    monkeypatch.setattr(S, "cpu_has_fast_bf16", lambda: True)
    assert S.default_filter_dtype(128, 300) == torch.float32  # measured slower there (RESULTS.md 0b)
    assert S.default_filter_dtype(128, 50_000) == torch.float32
    assert S.default_filter_dtype(384, 300) == torch.float32
    assert S.default_filter_dtype(384, 1000) == torch.bfloat16
    assert S.default_filter_dtype() == torch.float32
    monkeypatch.setattr(S, "cpu_has_fast_bf16", lambda: False)
    assert S.default_filter_dtype(768, 10**5) == torch.float32  # AVX2: never
    monkeypatch.setenv("HF_UNIFORM_FILTER_DTYPE", "bfloat16")
    assert S.default_filter_dtype(8, 1) == torch.bfloat16
    eng = LazyEngine(InMemorySource(np.eye(4, dtype=np.float32), "cosine"), 2, "cosine")
    assert eng.fdt == torch.bfloat16


@pytest.mark.parametrize("budget", [6 * 10**6, 16 * 10**6, 64 * 10**6])
def test_bf16_budget_split_counts_the_padded_gemm_buffers_and_kernels(budget):
    from hf_uniform.engine._lazy_support import GEMM_KERNEL_BYTES

    n, d, k = 50_000, 128, 400
    plan = memory_plan(n, d, k, budget, torch.bfloat16)
    if plan.get("filter_dtype") == torch.float32:  # too small for the bf16 extras: the float32 plan
        assert budget < STATE_BYTES_PER_ROW * n + GEMM_KERNEL_BYTES + 64 * (1024 + 2 * d)
        assert plan == {**memory_plan(n, d, k, budget, torch.float32), "filter_dtype": torch.float32}
        return
    if not plan["stream"]:
        assert n * (d * 4 + STATE_BYTES_PER_ROW) + 2048 * (d * 6 + 1024) + GEMM_KERNEL_BYTES < budget
        return
    state = STATE_BYTES_PER_ROW * n + (k + 1) * d * 4 + (k + 513) * d * 2
    gemm = plan["chunk_rows"] * (512 * 2 + d * 2)  # bf16 output and the padded bf16 rows
    active = plan["max_active"] * (d * 4 + d * 2 + 48)  # float32 row and its bf16 copy
    assert state + GEMM_KERNEL_BYTES + gemm + 8 * active <= budget


@pytest.mark.parametrize("streamed", [False, True])
def test_bf16_gemms_use_a_few_padded_shapes(streamed, monkeypatch):
    # oneDNN keeps ~0.7 MB per bf16 GEMM shape it has seen (issue 21: 16MB budgets peaked at 78 MB): the
    # engine pads rows and centres to a few sizes, and the selection stays the float32 filter's
    shapes = set()
    mm = torch.mm

    def spy(a, b, out=None):
        if a.dtype == torch.bfloat16:
            shapes.add((a.shape[0], b.shape[1]))
        return mm(a, b, out=out)

    rng = np.random.default_rng(4)
    x = (rng.normal(size=(60, 48))[rng.integers(60, size=6000)] + 0.4 * rng.normal(size=(6000, 48))).astype(np.float32)
    src = StreamSource(x, "cosine", chunk_rows=700) if streamed else InMemorySource(x, "cosine")
    monkeypatch.setattr(torch, "mm", spy)
    eng = LazyEngine(src, 1500, "cosine", filter_dtype=torch.bfloat16, block=96,
                     max_memory=8 * 10**6 if streamed else None)
    eng.add(eng.vector(0), 0, float("inf"))
    eng.run(1500)
    monkeypatch.setattr(torch, "mm", mm)
    assert eng.fdt == torch.bfloat16 and (eng.max_active is not None) == streamed
    assert 0 < len(shapes) <= 6, shapes
    assert eng.selected()[0].tolist() == maxmin_select(x, 1500, start=0, method="plain").indices.tolist()


def test_streamed_runs_default_to_the_float32_filter(monkeypatch):
    from hf_uniform.engine import _lazy_support as S

    monkeypatch.delenv("HF_UNIFORM_FILTER_DTYPE", raising=False)
    monkeypatch.setattr(S, "cpu_has_fast_bf16", lambda: True)
    plan = S.memory_plan(100_000, 384, 2000, 32 * 10**6)
    assert plan["stream"] and plan["filter_dtype"] == torch.float32
    assert S.memory_plan(1000, 384, 2000, 10**9) == {"stream": False}  # in memory: the default (bf16) stays
    monkeypatch.setenv("HF_UNIFORM_FILTER_DTYPE", "bfloat16")  # an explicit choice is kept when it fits
    assert "filter_dtype" not in S.memory_plan(100_000, 384, 2000, 32 * 10**6)
