"""GEMM threads of the lazy engine: ``HF_UNIFORM_THREADS=1`` against ``2`` (issue 21, item "threads").

The lazy engine runs its GEMMs inside :func:`hf_uniform.engine.lazy.gemm_threads` (default one thread;
``HF_UNIFORM_THREADS`` overrides). This script times ``maxmin_select(method="lazy")`` with each thread count
in the same process, alternating (thread counts inside each repeat, best of ``--repeats`` on every side),
asserts that both give the same indices, and records the CPU flags, the core count and the load average
before and after (on a shared machine another process's load decides how much a second thread can help).

Cases: Alpaca 18k MiniLM (real, d = 384, k = n/2; if its embeddings are on disk) and clustered synthetic
sets (1e5 x 128, k = 300; 1e5 x 384, k = 1000).

Usage::

    python benchmarks/threads_bench.py --repeats 4
    python benchmarks/threads_bench.py --threads 1,2 --out benchmarks/results/threads_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_bench import cpu_flags, cpu_model  # noqa: E402

ALPACA = [Path("/work/shared/data/embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"),
          ROOT / "shared/data/embeddings/alpaca_18k.all-MiniLM-L6-v2.f16.npy"]


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, d))
    return (centres[rng.integers(1000, size=n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "threads_bench.json"))
    args = ap.parse_args()
    import torch

    from hf_uniform import maxmin_select
    from hf_uniform.engine.lazy import default_filter_dtype

    threads = [int(t) for t in args.threads.split(",")]
    cases = []
    alp = next((p for p in ALPACA if p.exists()), None)
    if alp is not None:
        x = np.load(alp).astype(np.float32)
        cases.append(("Alpaca 18k MiniLM (real)", x, x.shape[0] // 2))
    cases += [("clustered 1e5 x 128", clustered(100_000, 128), 300),
              ("clustered 1e5 x 384", clustered(100_000, 384), 1000)]
    load_before = os.getloadavg()
    rows = []
    for name, x, k in cases:
        maxmin_select(x[:5000], 600, method="lazy", seed=0)  # compile
        times: dict[int, list[float]] = {t: [] for t in threads}
        first = None
        for _ in range(args.repeats):
            for t in threads:
                os.environ["HF_UNIFORM_THREADS"] = str(t)
                t0 = time.perf_counter()
                sel = maxmin_select(x, k, method="lazy", seed=0)
                times[t].append(time.perf_counter() - t0)
                assert sel.info["threads"] == t, sel.info["threads"]
                if first is None:
                    first = sel.indices.tolist()
                assert sel.indices.tolist() == first, "thread counts gave different selections"
        row = {"case": name, "n": int(x.shape[0]), "d": int(x.shape[1]), "k": int(k),
               "filter_dtype": str(default_filter_dtype(x.shape[1], k)).replace("torch.", ""),
               "seconds": {str(t): v for t, v in times.items()}, "best": {str(t): min(v) for t, v in times.items()}}
        rows.append(row)
        best = row["best"]
        print(f"{name:<26} n={row['n']:>6} d={row['d']:>3} k={row['k']:>5} filter={row['filter_dtype']:<8} "
              + "  ".join(f"{t} thr {best[str(t)]:.2f}s (max {max(times[t]):.2f})" for t in threads)
              + (f"  2/1 = {best['2'] / best['1']:.2f}" if {"1", "2"} <= best.keys() else ""), flush=True)
    os.environ.pop("HF_UNIFORM_THREADS", None)
    out = {"rows": rows, "repeats": args.repeats, "cores": os.cpu_count(), "cpu_model": cpu_model(),
           "cpu_flags": cpu_flags(), "torch_threads_default": torch.get_num_threads(),
           "load_avg_before": load_before, "load_avg_after": os.getloadavg()}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"load average before {load_before}, after {out['load_avg_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
