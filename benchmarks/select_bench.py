"""Max-min selection speed: the exact fast engine side by side with plain torch loops, in one run.

CPU mode (default; target 1): real embeddings, ``k = n/2``, cosine.

* ``plain torch loop``: the natural loop ``d = 1 - x @ c; m = min(m, d); i = argmax(m)`` in float32, timed
  with torch's default threads and with one thread (on a shared machine multi-threaded small ops can be
  much slower), plus the best simple variants we found (``(x*c).sum(1)``; float16 ``mv``, which is
  *inexact* -- its agreement with the exact selection is reported);
* the library's ``method="plain"`` and ``method="sweep"`` loops;
* ``method="lazy"`` (the default on CPUs), its greedy invariant checked at every step in float64.

Plus the composable core-set mode against the exact selection (target 6).

GPU mode (``--device cuda``; target 3): synthetic ``n = 10^6, d = 768, k = 10^4``; per-step time of the
device-resident sweep (no host sync per step) in float32/float16/bfloat16 against the bandwidth floor
``n*d*bytes / (measured device-to-device copy bandwidth)``, and the plain loop (host sync per step).
``--gpu-mode --device cpu --n 20000 --d 64 --k 200`` runs the same protocol on the CPU (smoke test).

Usage::

    python benchmarks/select_bench.py                      # CPU, real data, writes benchmarks/results/
    python benchmarks/select_bench.py --quick              # time plain loops on 1500 steps, extrapolate
    python benchmarks/select_bench.py --device cuda        # GPU protocol (where a GPU is present)
    python benchmarks/select_bench.py --sets --plain-steps 1500 --repeats 3   # three real sets, both filters
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_uniform import maxmin_select  # noqa: E402
from hf_uniform.coreset import coreset_select  # noqa: E402
from hf_uniform.metrics import coverage_radius, min_pairwise_distance  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "embeddings" / "alpaca_18k.all-MiniLM-L6-v2.f16.npy"


def torch_loop(x: torch.Tensor, k: int, start: int, variant: str, steps: int | None = None) -> tuple[list[int], float]:
    """The plain greedy loop, written the natural way; returns (indices, seconds for ``steps`` steps)."""
    n = x.shape[0]
    m = torch.full((n,), math.inf)
    i = start
    out = [i]
    todo = k - 1 if steps is None else min(k - 1, steps)
    t0 = time.perf_counter()
    for _ in range(todo):
        c = x[i]
        if variant == "mv":
            d = 1.0 - x @ c
        elif variant == "mulsum":
            d = 1.0 - (x * c).sum(1)
        else:  # float16 / bfloat16 matrix-vector product, rounded output
            d = 1.0 - (x @ c).float()
        torch.minimum(m, d, out=m)
        m[i] = -math.inf
        i = int(torch.argmax(m))
        out.append(i)
    return out, time.perf_counter() - t0


def check_invariant_f64(x: np.ndarray, idx: np.ndarray, tol: float = 1e-5, block: int = 512) -> float:
    """Largest |m[chosen] - max over unchosen m| over all steps, in float64 (cosine); asserts <= tol."""
    X = x.astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    m = np.full(len(X), np.inf)
    worst = 0.0
    for j0 in range(0, len(idx), block):
        D = 1.0 - X @ X[idx[j0:j0 + block]].T
        for jj, i in enumerate(idx[j0:j0 + block]):
            if j0 + jj > 0:
                best = m.max()
                worst = max(worst, abs(m[i] - best))
            m[i] = -np.inf
            np.minimum(m, D[:, jj], out=m)
    assert worst <= tol, f"greedy invariant violated by {worst}"
    return worst


def timed(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_mode(args: argparse.Namespace) -> dict:
    raw = np.load(args.data)
    n, d = raw.shape
    k = args.k or n // 2
    start = int(np.random.default_rng(0).integers(n))  # maxmin_select's seeded start (seed=0)
    x32 = torch.from_numpy(raw).float()
    x32 = x32 / torch.linalg.vector_norm(x32, dim=1, keepdim=True)
    rows = []
    steps = 1500 if args.quick else None
    default_threads = torch.get_num_threads()

    # warm-up: numba compile/cache load, BLAS init
    maxmin_select(raw[:2000], 200, seed=0)
    print(f"data {args.data.name}: n={n} d={d} k={k} cosine; torch threads default={default_threads}", flush=True)

    lazy_time, lazy = timed(lambda: maxmin_select(raw, k, seed=0), args.repeats)
    idx_lazy = lazy.indices
    rows.append({"name": "hf_uniform lazy (exact, default)", "seconds": lazy_time, "exact": True,
                 "h": lazy.h, "info": {k2: v for k2, v in lazy.info.items() if k2 != "start"}})
    print(f"  lazy: {lazy_time:.3f}s  h={lazy.h:.6f}", flush=True)

    def loop_row(name: str, variant: str, x: torch.Tensor, threads: int, exact: bool) -> None:
        torch.set_num_threads(threads)
        try:
            idx, secs = torch_loop(x, k, start, variant, steps)
        finally:
            torch.set_num_threads(default_threads)
        est = secs * (k - 1) / min(k - 1, steps) if steps else secs
        agree = float(np.mean(np.array(idx) == idx_lazy[:len(idx)]))
        rows.append({"name": f"{name} [{threads} thr]", "seconds": est, "extrapolated": bool(steps),
                     "exact": exact, "agreement_with_lazy": agree})
        print(f"  {name} [{threads} thr]: {est:.2f}s{' (extrapolated)' if steps else ''} agree={agree:.4f}",
              flush=True)

    for thr in sorted({default_threads, 1}, reverse=True):
        loop_row("plain torch loop: 1 - x@c (float32)", "mv", x32, thr, True)
    loop_row("variant: 1 - (x*c).sum(1) (float32)", "mulsum", x32, 1, True)
    loop_row("variant: float16 mv (inexact)", "half", x32.half(), 1, False)
    if not args.quick:
        for method in ("plain", "sweep"):
            secs, sel = timed(lambda m=method: maxmin_select(raw, k, seed=0, method=m), 1)
            rows.append({"name": f"hf_uniform method={method}", "seconds": secs, "exact": True, "h": sel.h,
                         "agreement_with_lazy": float(np.mean(sel.indices == idx_lazy))})
            print(f"  method={method}: {secs:.2f}s", flush=True)

    t0 = time.perf_counter()
    worst = check_invariant_f64(raw, idx_lazy)
    print(f"  greedy invariant (float64, every step): max deviation {worst:.2e} ({time.perf_counter() - t0:.1f}s)")
    plain_rows = [r for r in rows if r["name"].startswith("plain torch loop")]
    plain_best = min(r["seconds"] for r in plain_rows)
    simple_best = min(r["seconds"] for r in rows if r["exact"] and r is not rows[0])
    for r in rows:
        r["speedup_of_lazy"] = r["seconds"] / lazy_time
    res = {"mode": "cpu", "n": n, "d": d, "k": k, "metric": "cosine", "rows": rows,
           "lazy_seconds": lazy_time, "plain_loop_seconds": plain_best,
           "speedup_vs_plain_loop": plain_best / lazy_time, "speedup_vs_best_exact_simple": simple_best / lazy_time,
           "invariant_max_deviation": worst, "lazy_per_step_ms": lazy_time / k * 1e3}
    res["coreset"] = coreset_rows(raw, k if args.coreset_k is None else args.coreset_k, args)
    return res


def coreset_rows(raw: np.ndarray, k: int, args: argparse.Namespace) -> list[dict]:
    t0 = time.perf_counter()
    exact = maxmin_select(raw, k, seed=0)
    t_exact = time.perf_counter() - t0
    cov_exact = coverage_radius(raw[exact.indices], raw, backend="faiss")
    out = [{"mode": "exact greedy", "seconds": t_exact, "h": exact.h, "coverage": cov_exact,
            "h_ratio": 1.0, "coverage_ratio": 1.0}]
    print(f"core-set vs exact (k={k}): exact h={exact.h:.5f} coverage={cov_exact:.5f}")
    for shards in (2, 4, 8):
        for mult in (1, 2):
            t0 = time.perf_counter()
            cs = coreset_select(raw, k, shards=shards, k_prime=mult * k, seed=0)
            secs = time.perf_counter() - t0
            h = min_pairwise_distance(raw[cs.indices], backend="faiss")
            cov = coverage_radius(raw[cs.indices], raw, backend="faiss")
            out.append({"mode": f"coreset shards={shards} k'={mult}k", "seconds": secs, "h": h, "coverage": cov,
                        "h_ratio": h / exact.h, "coverage_ratio": cov / cov_exact})
            print(f"  shards={shards} k'={mult}k: h={h:.5f} ({h / exact.h:.3f}x) coverage={cov:.5f} "
                  f"({cov / cov_exact:.3f}x) {secs:.2f}s", flush=True)
    return out


def bandwidth(dev: torch.device, nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=dev)
    b = torch.empty_like(a)
    best = math.inf
    for _ in range(5):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        b.copy_(a)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * 4 / best


def gpu_mode(args: argparse.Namespace) -> dict:
    dev = torch.device(args.device)
    n, d, k = args.n or 1_000_000, args.d or 768, args.k or 10_000
    g = torch.Generator(device="cpu").manual_seed(0)
    centres = torch.randn(256, d, generator=g)
    lab = torch.randint(0, 256, (n,), generator=g)
    x = centres[lab] + 0.5 * torch.randn(n, d, generator=g)
    x = (x / x.norm(dim=1, keepdim=True)).to(dev)
    bw = bandwidth(dev, min(1 << 30, n * d * 4))
    print(f"{dev}: n={n} d={d} k={k}; copy bandwidth {bw / 1e9:.1f} GB/s", flush=True)
    rows = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        maxmin_select(x[:4096], 16, method="sweep", device=dev, dtype=dtype)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sel = maxmin_select(x, k, method="sweep", device=dev, dtype=dtype, seed=0)
        secs = time.perf_counter() - t0
        per_step = secs / k
        floor = n * d * torch.finfo(dtype).bits // 8 / bw
        rows.append({"name": f"sweep {str(dtype)[6:]}", "seconds": secs, "per_step_ms": per_step * 1e3,
                     "floor_ms": floor * 1e3, "of_floor": per_step / floor, "h": sel.h})
        print(f"  sweep {str(dtype)[6:]}: {per_step * 1e3:.3f} ms/step, floor {floor * 1e3:.3f} ms "
              f"({per_step / floor:.2f}x floor)", flush=True)
    steps = min(k, args.plain_steps)
    t0 = time.perf_counter()
    maxmin_select(x, steps, method="plain", device=dev, seed=0)
    per = (time.perf_counter() - t0) / steps
    rows.append({"name": "plain (host sync per step) float32", "per_step_ms": per * 1e3,
                 "floor_ms": n * d * 4 / bw * 1e3, "measured_steps": steps})
    print(f"  plain float32 (host sync per step): {per * 1e3:.3f} ms/step", flush=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
    return {"mode": "gpu", "device": str(dev), "device_name": name, "n": n, "d": d, "k": k,
            "copy_bandwidth_GBps": bw / 1e9, "rows": rows}


def table(res: dict) -> str:
    lines = []
    if res["mode"] == "cpu":
        lines.append(f"| method | seconds (k={res['k']}) | lazy speed-up | exact | agreement |")
        lines.append("|---|---:|---:|:---:|---:|")
        for r in res["rows"]:
            est = " (extrap.)" if r.get("extrapolated") else ""
            agree = f"{r['agreement_with_lazy']:.4f}" if "agreement_with_lazy" in r else "-"
            lines.append(f"| {r['name']} | {r['seconds']:.2f}{est} | {r['speedup_of_lazy']:.1f}x | "
                         f"{'yes' if r['exact'] else 'no'} | {agree} |")
        lines.append("")
        lines.append("| core-set mode | seconds | h | h / exact | coverage | coverage / exact |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for r in res["coreset"]:
            lines.append(f"| {r['mode']} | {r['seconds']:.2f} | {r['h']:.5f} | {r['h_ratio']:.3f} | "
                         f"{r['coverage']:.5f} | {r['coverage_ratio']:.3f} |")
    else:
        lines.append(f"| engine | ms/step | floor ms/step | x floor |  ({res['device_name']}, "
                     f"{res['copy_bandwidth_GBps']:.0f} GB/s) |")
        lines.append("|---|---:|---:|---:|---|")
        for r in res["rows"]:
            lines.append(f"| {r['name']} | {r['per_step_ms']:.3f} | {r['floor_ms']:.3f} | "
                         f"{r['per_step_ms'] / r['floor_ms']:.2f} | |")
    return "\n".join(lines)


SETS = {"alpaca_18k": DATA,
        "code_chat_3k": ROOT / "out" / "bench_emb" / "code_chat_3k.all-MiniLM-L6-v2.f16.npy",
        "dolly_3k": ROOT / "out" / "bench_emb" / "dolly_3k.all-MiniLM-L6-v2.f16.npy"}


def cpu_flags() -> list[str]:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                f = set(line.split(":", 1)[1].split())
                return sorted(x for x in f if x.startswith(("avx", "amx", "fma", "f16c")))
    except OSError:
        pass
    return []


def sets_mode(args: argparse.Namespace) -> dict:
    """Every contender timed the same way (best of N, same process, same threads) on three real sets."""
    threads = torch.get_num_threads()
    maxmin_select(np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32), 200, seed=0)  # compile
    out = {"mode": "sets", "threads": threads, "repeats": args.repeats, "plain_steps": args.plain_steps,
           "cpu_flags": cpu_flags(), "sets": []}
    for name, path in SETS.items():
        if not Path(path).exists():
            print(f"{name}: {path} missing (python benchmarks/build_bench_embeddings.py)", flush=True)
            continue
        raw = np.load(path)
        n, d = raw.shape
        k = n // 2
        start = int(np.random.default_rng(0).integers(n))
        x32 = torch.from_numpy(raw).float()
        x32 = x32 / torch.linalg.vector_norm(x32, dim=1, keepdim=True)
        steps = min(k - 1, args.plain_steps)
        row = {"set": name, "n": n, "d": d, "k": k}
        # plain float32 torch loop, timed on `steps` steps (constant cost per step), best of N, extrapolated
        per = min(torch_loop(x32, k, start, "mv", steps)[1] for _ in range(args.repeats)) / steps
        row["plain_loop_s"] = per * (k - 1)
        row["plain_loop_timed_steps"] = steps
        for fd in ("float32", "bfloat16"):
            os.environ["HF_UNIFORM_FILTER_DTYPE"] = fd
            os.environ["HF_UNIFORM_THREADS"] = str(threads)
            t, sel = timed(lambda raw=raw, k=k: maxmin_select(raw, k, seed=0), args.repeats)
            row[f"lazy_{fd}_s"] = t
            row[f"lazy_{fd}_speedup"] = row["plain_loop_s"] / t
            row["h"] = sel.h
        os.environ.pop("HF_UNIFORM_FILTER_DTYPE", None)
        os.environ.pop("HF_UNIFORM_THREADS", None)
        # the library's exact pass-per-step engines, timed on the first steps and extrapolated linearly (their
        # exact re-check grows with t, so this underestimates them)
        for method in ("plain", "sweep"):
            kk = min(k, steps + 1)
            t, _ = timed(lambda m=method, raw=raw, kk=kk: maxmin_select(raw, kk, seed=0, method=m),
                         max(1, args.repeats - 1))
            row[f"{method}_exact_s_est"] = t / (kk - 1) * (k - 1)
        out["sets"].append(row)
        print(json.dumps(row), flush=True)
    return out


def sets_table(res: dict) -> str:
    lines = [f"threads {res['threads']}, best of {res['repeats']}; CPU flags {' '.join(res['cpu_flags'])}", "",
             "| set | n | d | k | plain float32 loop (s) | lazy float32 filter (s) | speed-up | lazy bf16 filter (s) "
             "| speed-up | exact `plain` (s, est.) | exact `sweep` (s, est.) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["sets"]:
        lines.append(f"| {r['set']} | {r['n']} | {r['d']} | {r['k']} | {r['plain_loop_s']:.2f} | "
                     f"{r['lazy_float32_s']:.2f} | {r['lazy_float32_speedup']:.1f}x | {r['lazy_bfloat16_s']:.2f} | "
                     f"{r['lazy_bfloat16_speedup']:.1f}x | {r['plain_exact_s_est']:.2f} | {r['sweep_exact_s_est']:.2f} |")
    return "\n".join(lines)


def adversarial_data(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Synthetic float32 rows on which pruning may not pay (see ``ADVERSARIAL``)."""
    rng = np.random.default_rng(seed)
    if name.startswith("gauss_"):  # i.i.d. Gaussian = uniform on the sphere under cosine: flat distances
        return rng.normal(size=(n, int(name.split("_")[1]))).astype(np.float32)
    if name == "lowd_3":  # low-dimensional: many rows at nearly the same distance once the sphere is covered
        return rng.normal(size=(n, 3)).astype(np.float32)
    if name == "neardup_384":  # 50 clusters with tiny noise, and a third of the rows exact duplicates
        c = rng.normal(size=(50, 384))
        x = c[rng.integers(50, size=n)] + 1e-4 * rng.normal(size=(n, 384))
        dup = rng.random(n) < 1 / 3
        x[dup] = x[rng.integers(n, size=int(dup.sum()))]
        return x.astype(np.float32)
    if name == "lattice_8":  # integer lattice points: massive exact ties
        return rng.integers(-3, 4, size=(n, 8)).astype(np.float32) + np.float32(0.5)
    raise ValueError(name)


ADVERSARIAL = ("gauss_384", "gauss_64", "lowd_3", "neardup_384", "lattice_8")


def adversarial_mode(args: argparse.Namespace) -> dict:
    """Lazy (default filter) against the plain float32 loop on data built to defeat pruning; best of N both."""
    threads = torch.get_num_threads()
    n = args.n or 20000
    maxmin_select(np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32), 200, seed=0)  # compile
    out = {"mode": "adversarial", "threads": threads, "repeats": args.repeats, "plain_steps": args.plain_steps,
           "cpu_flags": cpu_flags(), "n": n, "rows": []}
    os.environ["HF_UNIFORM_THREADS"] = str(threads)
    names = args.only.split(",") if args.only else ADVERSARIAL
    for name in names:
        raw = adversarial_data(name, n)
        x32 = torch.from_numpy(raw).float()
        x32 = x32 / torch.linalg.vector_norm(x32, dim=1, keepdim=True)
        start = int(np.random.default_rng(0).integers(n))
        for k in (n // 10, n // 2):
            steps = min(k - 1, args.plain_steps)
            per = min(torch_loop(x32, k, start, "mv", steps)[1] for _ in range(args.repeats)) / steps
            plain = per * (k - 1)
            t, sel = timed(lambda raw=raw, k=k: maxmin_select(raw, k, seed=0), args.repeats)
            row = {"set": name, "n": n, "d": raw.shape[1], "k": k, "plain_loop_s": plain,
                   "plain_loop_timed_steps": steps, "lazy_s": t, "speedup": plain / t, "h": sel.h,
                   "filter_dtype": sel.info.get("filter_dtype"), "engine": sel.info.get("engine_stats")}
            out["rows"].append(row)
            print(json.dumps(row, default=float), flush=True)
    os.environ.pop("HF_UNIFORM_THREADS", None)
    return out


def adversarial_table(res: dict) -> str:
    lines = [f"threads {res['threads']}, best of {res['repeats']}; CPU flags {' '.join(res['cpu_flags'])}", "",
             "| data | n | d | k | plain float32 loop (s) | lazy (s) | speed-up | lazy path |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["rows"]:
        path = (r.get("engine") or {}).get("path", "lazy")
        lines.append(f"| {r['set']} | {r['n']} | {r['d']} | {r['k']} | {r['plain_loop_s']:.2f} | {r['lazy_s']:.2f} "
                     f"| {r['speedup']:.1f}x | {path} |")
    return "\n".join(lines)


def write_results(res: dict, out: Path) -> Path:
    """Add the machine (versions, CPUs, load average) to ``res`` and write it as JSON to ``out``."""
    res["machine"] = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                      "load_avg": os.getloadavg()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", action="store_true",
                    help="three real sets (Alpaca 18k, code+chat 3k, Dolly 3k), both filter dtypes, best of N")
    ap.add_argument("--adversarial", action="store_true",
                    help="synthetic data built to defeat pruning (flat, near-duplicate, low-d, lattice), k=n/10, n/2")
    ap.add_argument("--only", default=None, help="--adversarial: comma-separated subset of the data names")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("HF_UNIFORM_BENCH_DATA", DATA)))
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the fast engine (min is reported)")
    ap.add_argument("--quick", action="store_true", help="time plain loops on 1500 steps and extrapolate")
    ap.add_argument("--coreset-k", type=int, default=2000, help="k for the core-set comparison")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu-mode", action="store_true", help="run the GPU protocol (implied by --device cuda)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--d", type=int, default=None)
    ap.add_argument("--plain-steps", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.sets or args.adversarial:
        res, table_fn, name = ((sets_mode(args), sets_table, "select_sets.json") if args.sets
                               else (adversarial_mode(args), adversarial_table, "select_adversarial.json"))
        out = write_results(res, args.out or ROOT / "benchmarks" / "results" / name)
        print(table_fn(res))
        print(f"wrote {out}")
        return
    gpu = args.gpu_mode or args.device != "cpu"
    res = gpu_mode(args) if gpu else cpu_mode(args)
    out = write_results(res, args.out or ROOT / "benchmarks" / "results" / ("select_gpu.json" if gpu else "select_cpu.json"))
    print()
    print(table(res))
    if not gpu:
        print(f"\nlazy: {res['lazy_seconds']:.3f}s ({res['lazy_per_step_ms']:.3f} ms/step); "
              f"{res['speedup_vs_plain_loop']:.1f}x the plain torch loop, "
              f"{res['speedup_vs_best_exact_simple']:.1f}x the best exact simple variant")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
