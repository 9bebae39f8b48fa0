"""Exact uniformity metrics at scale: h and coverage radius through faiss and through torch, side by side.

Both backends are exact nearest-neighbour searches (faiss: flat index, float32, GPU when present; torch:
blocked float64 on the CPU, the reference). For each case the table shows both timings and the largest
difference between the two results.

Usage::

    python benchmarks/metrics_bench.py                 # real data + synthetic n=10^5 (writes benchmarks/results/)
    python benchmarks/metrics_bench.py --synthetic-n 20000
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

from hf_uniform import maxmin_select  # noqa: E402
from hf_uniform.metrics import nearest_distances  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data" / "embeddings" / "alpaca_18k.all-MiniLM-L6-v2.f16.npy"


def bench_case(name: str, full: np.ndarray, idx: np.ndarray, repeats: int) -> list[dict]:
    sub = full[idx]
    out = []
    for metric_name, fn in (
        ("h (subset NN, exclude self)", lambda b: nearest_distances(sub, sub, exclude_self=True, backend=b).min()),
        ("coverage (pool -> subset NN)", lambda b: nearest_distances(full, sub, backend=b).max()),
    ):
        vals, times = {}, {}
        for backend in ("faiss", "torch"):
            best = float("inf")
            for _ in range(repeats if backend == "faiss" else 1):
                t0 = time.perf_counter()
                vals[backend] = float(fn(backend))
                best = min(best, time.perf_counter() - t0)
            times[backend] = best
        row = {"case": name, "metric": metric_name, "n": len(full), "k": len(idx), "faiss_s": times["faiss"],
               "torch_s": times["torch"], "value": vals["torch"], "abs_diff": abs(vals["faiss"] - vals["torch"])}
        out.append(row)
        print(f"  {name} {metric_name}: faiss {times['faiss']:.2f}s torch {times['torch']:.2f}s "
              f"value {vals['torch']:.6f} |diff| {row['abs_diff']:.1e}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("HF_UNIFORM_BENCH_DATA", DATA)))
    ap.add_argument("--synthetic-n", type=int, default=100_000)
    ap.add_argument("--synthetic-k", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "metrics.json")
    args = ap.parse_args()
    import faiss

    rows = []
    x = np.load(args.data).astype(np.float32)
    n = len(x)
    for k in (2000, n // 2):
        sel = maxmin_select(x, k, seed=0)
        rows += bench_case(f"{args.data.stem} k={k}", x, sel.indices, args.repeats)
    if args.synthetic_n:
        from scaling_bench import blobs_on_sphere  # same synthetic data as the scaling curve

        y = blobs_on_sphere(args.synthetic_n, 384)
        k = int(args.synthetic_k * len(y))
        sel = maxmin_select(y, k, seed=0)
        rows += bench_case(f"blobs n={len(y)} k={k}", y, sel.indices, args.repeats)
    res = {"rows": rows, "faiss": faiss.__version__, "faiss_gpus": faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0,
           "load_avg": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print()
    print("| case | metric | faiss (s) | torch float64 (s) | faiss speed-up | value | abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['metric']} | {r['faiss_s']:.2f} | {r['torch_s']:.2f} | "
              f"{r['torch_s'] / r['faiss_s']:.1f}x | {r['value']:.6f} | {r['abs_diff']:.1e} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
